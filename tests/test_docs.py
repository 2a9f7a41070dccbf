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
