"""W&B model artifacts get the aliases of a registration (``checkpointing.register_model`` and
``tracker.register_model``), read back from the offline run with wandb's own reader."""

from __future__ import annotations

from pathlib import Path

import torch

import unitrack as ut
from tests.backend_services import wandb_records
from tests.conftest import quiet_config


def _artifacts(tmp_path: Path, run_id: str) -> list[dict]:
    (run_dir,) = sorted((tmp_path / "wb" / "wandb").glob(f"offline-run-*-{run_id}"))
    return [r["artifact"] for r in wandb_records(run_dir) if r["type"] == "artifact"]


def test_each_new_best_is_a_version_of_the_registered_model_with_its_aliases(tmp_path: Path) -> None:
    config = quiet_config(
        tracking={"use_wandb": True, "wandb_dir": str(tmp_path / "wb")},
        checkpointing={"register_model": "digits", "register_aliases": ["champion", "prod"], "monitor": "val_loss",
                       "async_save": False},
    )  # fmt: skip
    model = torch.nn.Linear(2, 2)
    with ut.experiment_tracking("wb-registry", config) as tracker:
        for epoch, val_loss in enumerate([0.5, 0.7, 0.3]):
            tracker.save_checkpoint(model, epoch=epoch, step=epoch, val_loss=val_loss)
    artifacts = _artifacts(tmp_path, tracker.run_id)
    registered = [a for a in artifacts if a["name"] == "digits"]
    assert len(registered) == 2  # the two new bests, not the worse checkpoint between them
    for artifact, name in zip(registered, ["epoch0000-step00000000", "epoch0002-step00000002"], strict=True):
        assert {name, "champion", "prod", "best"} <= set(artifact["aliases"])
    assert all(a["type"] == "model" for a in registered)


def test_register_model_by_hand_names_the_artifact_and_its_aliases(tmp_path: Path) -> None:
    config = quiet_config(tracking={"use_wandb": True, "wandb_dir": str(tmp_path / "wb")},
                          checkpointing={"upload": {"wandb": "none"}})  # fmt: skip
    with ut.experiment_tracking("wb-registry", config) as tracker:
        info = tracker.save_checkpoint(torch.nn.Linear(2, 2), epoch=0, step=3, is_best=True)
        registered = tracker.register_model("hand-picked", checkpoint="best", aliases=("champion",))
    assert info is not None and registered.name == info.name
    (artifact,) = _artifacts(tmp_path, tracker.run_id)
    assert artifact["name"] == "hand-picked" and {info.name, "champion"} <= set(artifact["aliases"])
    assert {"model.safetensors", "manifest.json"} <= {e["path"] for e in artifact["manifest"]["contents"]}
