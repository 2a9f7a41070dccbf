"""The docs that are generated from code must match the code."""

from pathlib import Path

from unitrack.config_reference import reference_markdown, render_into

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_configuration_reference_is_current() -> None:
    text = (DOCS / "configuration.md").read_text()
    assert render_into(text) == text, "docs/configuration.md is stale: run `make docs`"


def test_reference_lists_every_section_key() -> None:
    table = reference_markdown()
    for key in ("tracking.use_mlflow", "checkpointing.max_checkpoints", "monitoring.interval", "store_dir"):
        assert f"`{key}`" in table


ROOT = DOCS.parent


def test_the_readme_and_its_server_recipes_promise_no_module_an_install_lacks() -> None:
    # `backends/` is a folder of this repository, not a package unitrack installs: after
    # `pip install unitrack`, `python -m backends.mlflow_server` is "No module named 'backends'"
    for path in (ROOT / "README.md", ROOT / "backends" / "README.md", DOCS / "quickstart.md", DOCS / "backends.md"):
        assert "python -m backends." not in path.read_text(), path


def test_checkpoint_uploads_are_documented_as_done_where_they_work() -> None:
    checkpoints = (DOCS / "checkpoints.md").read_text()
    missing = checkpoints.partition("## Not done yet")[2]
    assert "upload" in checkpoints and "Uploading checkpoints" not in missing


def test_the_license_is_an_spdx_expression_not_the_deprecated_table() -> None:
    import pytest

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["license"] == "Apache-2.0"
    assert any(r.replace(" ", "").startswith("setuptools>=77") for r in project["build-system"]["requires"])
