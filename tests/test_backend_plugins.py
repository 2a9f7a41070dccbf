"""Third-party backends: registered through the `unitrack.backends` entry point, checked by the conformance kit."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import unitrack as ut
from tests.conftest import quiet_config
from unitrack.backends import registry
from unitrack.errors import ConfigError
from unitrack.testing import ConformanceError, check_backend

PLUGINS = Path(__file__).parent / "plugins"


@pytest.fixture
def toy_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The toy backend as an installed distribution would be: a dist-info with its entry point, on sys.path."""
    site = tmp_path / "site"
    dist_info = site / "toy_unitrack_backend-0.1.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-unitrack-backend\nVersion: 0.1\n")
    (dist_info / "entry_points.txt").write_text("[unitrack.backends]\ntoy = toy_unitrack_backend:ToyBackend\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.syspath_prepend(str(PLUGINS))
    monkeypatch.setenv("PYTHONPATH", f"{site}:{PLUGINS}:{Path.cwd()}")
    registry.refresh()
    yield tmp_path / "toy-service"
    registry.refresh()
    sys.modules.pop("toy_unitrack_backend", None)


def toy_config(directory: Path, **tracking: object) -> dict[str, object]:
    directory.mkdir(parents=True, exist_ok=True)
    return quiet_config(
        tracking={"backends": ["local", "toy"], "toy": {"directory": str(directory)}, **tracking},
        checkpointing={"upload": {"toy": "all"}},
    )


def test_a_registered_backend_with_only_the_required_methods_gets_a_whole_run(toy_installed: Path) -> None:
    import toy_unitrack_backend as toy

    model = torch.nn.Linear(3, 2)
    with ut.experiment_tracking("plugin", toy_config(toy_installed)) as tracker:
        tracker.log_hyperparameters({"lr": 0.1})
        for step in range(50):
            tracker.log_metrics({"loss": 1.0 / (step + 1)}, step=step)
        (Path.cwd() / "notes.txt").write_text("an artifact")
        tracker.log_artifact("notes.txt")  # the toy stores no files: declared by the safe default
        tracker.save_checkpoint(model, epoch=0, step=49, val_loss=0.5, is_best=True)
    lines = toy.read_lines(toy_installed, tracker.run_id)
    assert toy.read_metrics(toy_installed, tracker.run_id)["loss"] == [(s, 1.0 / (s + 1)) for s in range(50)]
    assert {"params": {"lr": 0.1}} in lines
    assert lines[-1] == {"status": "completed"}
    shown = CliRunner().invoke(ut_app(), ["show", tracker.run_id, "--json"])
    delivery = json.loads(shown.stdout)["delivery"]["toy"]
    assert delivery["in_sync"] and delivery["owed"] == 0 and not delivery["last_error"]


def test_its_settings_are_validated_by_the_model_it_declares(toy_installed: Path) -> None:
    with pytest.raises(ConfigError, match=r"tracking\.toy\.directory"):
        ut.load_config({"tracking": {"backends": ["local", "toy"], "toy": {"folder": "x"}}})
    with pytest.raises(ConfigError, match="unknown backend 'nope'"):
        ut.load_config({"tracking": {"backends": ["local", "nope"]}})


def test_sync_rebuilds_it_from_the_runs_recorded_config(toy_installed: Path) -> None:
    import toy_unitrack_backend as toy

    config = toy_config(toy_installed, retry_attempts=1, retry_max_wait=0.05, finish_timeout=2)
    (toy_installed / "down").write_text("")
    with ut.experiment_tracking("plugin", config) as tracker:
        for step in range(20):
            tracker.log_metrics({"loss": float(step)}, step=step)
    assert toy.read_metrics(toy_installed, tracker.run_id) == {}
    (toy_installed / "down").unlink()
    result = CliRunner().invoke(ut_app(), ["sync", tracker.run_id, "--json"])
    assert result.exit_code == 0, result.output
    assert toy.read_metrics(toy_installed, tracker.run_id)["loss"] == [(s, float(s)) for s in range(20)]
    assert toy.read_lines(toy_installed, tracker.run_id)[-1] == {"status": "completed"}


def test_the_conformance_kit_passes_the_toy_and_fails_one_that_drops_points(toy_installed: Path) -> None:
    import toy_unitrack_backend as toy

    settings = {"directory": str(toy_installed)}
    toy_installed.mkdir()
    report = check_backend(toy.ToyBackend, lambda run_id: toy.read_metrics(toy_installed, run_id), settings=settings)
    assert report.ok, str(report)
    with pytest.raises(ConformanceError, match="every metric point arrives once") as failed:
        check_backend(toy.DroppingToyBackend, lambda run_id: toy.read_metrics(toy_installed, run_id), settings=settings)
    assert "missing" in str(failed.value)


def ut_app() -> object:
    from unitrack.cli.app import app

    return app


def docs_blocks(language: str) -> list[str]:
    """The code blocks of docs/backends.md's "Writing a backend" section, in order."""
    text = (Path(__file__).parents[1] / "docs" / "backends.md").read_text()
    section = text.split("## Writing a backend", 1)[1].split("\n## ", 1)[0]
    blocks = section.split(f"```{language}\n")[1:]
    return [block.split("\n```", 1)[0] + "\n" for block in blocks]


def test_the_writing_a_backend_example_works_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module, test_code = docs_blocks("python")
    assert len(module.splitlines()) < 60
    package = tmp_path / "package"
    package.mkdir()
    (package / "my_backend.py").write_text(module)
    (toml,) = docs_blocks("toml")
    entry_point = toml.split("]\n", 1)[1]  # `jsonl = "my_backend:JsonlBackend"`, as pip would install it
    dist_info = package / "my_backend-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: my-backend\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text("[unitrack.backends]\n" + entry_point.replace('"', ""))
    monkeypatch.syspath_prepend(str(package))
    registry.refresh()
    try:
        (yaml_block,) = docs_blocks("yaml")
        (tmp_path / "jsonl.yaml").write_text(yaml_block + "monitoring: {enabled: false}\n")
        with ut.experiment_tracking("docs", tmp_path / "jsonl.yaml") as tracker:
            tracker.log_metrics({"loss": 0.5}, step=3)
        import my_backend

        assert my_backend.read_metrics(tracker.run_id, "runs-as-jsonl") == {"loss": [(3, 0.5)]}
        namespace: dict[str, object] = {}
        exec(compile(test_code, "docs/backends.md", "exec"), namespace)
        (tmp_path / "kit").mkdir()
        namespace["test_jsonl_backend_conforms"](tmp_path / "kit", monkeypatch)  # type: ignore[operator]
    finally:
        registry.refresh()
        sys.modules.pop("my_backend", None)
