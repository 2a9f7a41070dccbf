"""The backends stay out of the user's terminal and working folder: no W&B advice or MLflow migration
chatter on stderr, no ``mlruns/`` where training started (MLflow on a SQLite file, W&B offline)."""

from __future__ import annotations

import os
from pathlib import Path

from tests.conftest import run_script

NOISY_RUN = """
import torch, unitrack as ut
config = {"monitoring": {"enabled": False}, "capture": {"packages": False},
          "tracking": {"use_mlflow": True, "mlflow_tracking_uri": "sqlite:///mlflow.db",
                       "use_wandb": True, "wandb_dir": "wb"},
          "checkpointing": {"upload": {"mlflow": "all", "wandb": "all"}, "async_save": False}}
for name in ("a.txt", "b.txt", "c.txt"):
    open(name, "w").write(name)
with ut.experiment_tracking("quiet", config) as tracker:
    for step in range(3):
        tracker.log_metrics({"loss": 1.0 / (step + 1)}, step=step)
    for name in ("a.txt", "b.txt", "c.txt"):
        tracker.log_artifact(name)
    tracker.save_checkpoint(torch.nn.Linear(2, 2), epoch=0, step=2, val_loss=1.0, is_best=True)
print(tracker.run_id)
"""


def test_mlflow_and_wandb_print_nothing_and_leave_no_mlruns_in_the_working_folder(tmp_path: Path) -> None:
    done = run_script(NOISY_RUN, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "", done.stderr  # our own warnings only, and there is none to give here
    assert not (tmp_path / "mlruns").exists()
    artifacts = tmp_path / "store" / "mlflow-artifacts"
    assert any(p.name == "a.txt" for p in artifacts.rglob("*")), "MLflow's artifacts live in the unitrack store"
    assert any((tmp_path / "wb" / "wandb").glob("offline-run-*/files/a.txt"))


def test_unitrack_debug_lets_the_libraries_speak(tmp_path: Path) -> None:
    mlflow_only = NOISY_RUN.replace('"use_wandb": True', '"use_wandb": False')
    done = run_script(mlflow_only, tmp_path, env={**os.environ, "UNITRACK_DEBUG": "1"})
    assert done.returncode == 0, done.stderr
    assert "Creating initial MLflow database tables" in done.stderr
