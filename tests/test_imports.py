"""``import unitrack`` and ``unitrack --help`` stay light: no torch, no backend, no pydantic."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("torch", "mlflow", "wandb", "tensorboard", "anthropic", "numpy", "pydantic", "matplotlib", "optuna")


def loaded_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return set(done.stdout.split())


def test_import_unitrack_loads_nothing_heavy() -> None:
    assert loaded_after("import unitrack") == set()


def test_cli_help_loads_no_torch_or_backend() -> None:
    code = "from unitrack.cli.app import app\ntry:\n    app(['--help'])\nexcept SystemExit:\n    pass"
    assert loaded_after(code) & {"torch", "mlflow", "wandb", "tensorboard", "anthropic"} == set()


def test_public_names_resolve_and_typos_do_not() -> None:
    import unitrack

    assert callable(unitrack.ExperimentTracker) and callable(unitrack.experiment_tracking)
    assert callable(unitrack.load_config)
    with pytest.raises(AttributeError, match="no attribute 'ExperimentTraker'"):
        unitrack.ExperimentTraker  # noqa: B018
    assert "ExperimentTracker" in dir(unitrack)


def test_console_script_help() -> None:
    exe = Path(sys.executable).with_name("unitrack")
    done = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    for command in ("ls", "show", "export"):
        assert command in done.stdout
