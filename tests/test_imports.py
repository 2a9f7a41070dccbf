"""``import unitrack`` and ``unitrack --help`` stay light: no torch, no backend, no pydantic."""

from __future__ import annotations

import os
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


@pytest.mark.parametrize(
    ("command", "allowed"),
    [(["ls"], set()), (["show", "latest"], set()), (["export", "latest"], {"numpy"}),
     (["compare", "latest~1", "latest", "--json"], {"numpy"}), (["explain", "latest~1", "latest", "--json"], {"numpy"})],
)  # fmt: skip
def test_reading_commands_load_only_what_they_need(command: list[str], allowed: set[str], tmp_path: Path) -> None:
    """Start-up is most of what a reading command costs: ls and show load no numpy, none of them
    pydantic (the analysis settings are a plain dataclass unless a config file is given)."""
    import unitrack as ut
    from tests.conftest import quiet_config

    for seed in (1, 2):
        with ut.experiment_tracking("imports", quiet_config()) as tracker:
            tracker.log_hyperparameters({"lr": 0.1 * seed, "seed": seed})
            for step in range(3):
                tracker.log_metrics({"loss": 1.0 / (step + seed)}, step=step)
    code = "\n".join(
        [
            "import io, sys",
            f"sys.argv, sys.stdout = {['unitrack', *command]!r}, io.StringIO()",
            "from unitrack.cli.app import main",
            "try:\n    main()\nexcept SystemExit as exit:\n    assert not exit.code, exit.code",
            "sys.stdout = sys.__stdout__",
        ]
    )
    assert loaded_after(code) <= allowed


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts threads through /proc")
def test_reading_commands_import_numpy_with_one_blas_thread_and_leave_the_environment_alone() -> None:
    code = (
        "import os\nfrom unitrack.cli.common import import_numpy_one_blas_thread\nimport_numpy_one_blas_thread()\n"
        "print(len(os.listdir('/proc/self/task')), os.environ.get('OPENBLAS_NUM_THREADS'))"
    )
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "None"]
