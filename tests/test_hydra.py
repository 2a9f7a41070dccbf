"""A Hydra app gets its composed config and its command-line overrides recorded."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import run_script

APP = """
import hydra
from omegaconf import DictConfig
import unitrack as ut

@hydra.main(version_base=None, config_path="conf", config_name="train")
def main(cfg: DictConfig) -> None:
    with ut.experiment_tracking("hydra-app", {"monitoring": {"enabled": False}}) as tracker:
        tracker.log_hyperparameters(cfg)
        print("RUN", tracker.run_id)

main()
"""


def test_hydra_config_and_overrides_are_recorded(tmp_path: Path, store_dir: Path) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "train.yaml").write_text("optimizer:\n  lr: 0.01\n  name: sgd\nepochs: 3\napi_token: abc\n")
    result = run_script(APP, tmp_path, "optimizer.lr=0.5", "+wandb_key=s3cr3t", "hydra.run.dir=out")
    assert result.returncode == 0, result.stderr
    run_id = result.stdout.split("RUN ")[1].split()[0]
    params = json.loads((store_dir / "runs" / run_id / "params.json").read_text())
    assert params["optimizer/lr"] == 0.5 and params["optimizer/name"] == "sgd" and params["epochs"] == 3
    assert params["hydra/overrides"][0] == "optimizer.lr=0.5"
    assert "s3cr3t" not in json.dumps(params) and "abc" not in json.dumps(params)
    assert params["hydra/overrides"][1].startswith("+wandb_key=")
