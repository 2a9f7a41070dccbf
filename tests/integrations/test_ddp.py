"""Two processes under torchrun (gloo, CPU) make one run: rank 0 owns it, rank 1 joins it."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PROCESS_TIMEOUT_S, journal
from unitrack.store.runs import RunStore

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "train_ddp.py"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def torchrun(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--master_addr", "127.0.0.1", "--master_port", str(free_port()),
        str(EXAMPLE), "--epochs", "2", *args,
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(EXAMPLE.parents[1]), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=PROCESS_TIMEOUT_S, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def run_ids_printed(output: str) -> set[str]:
    return set(re.findall(r"rank \d: run ([0-9a-z]{13})", output))  # the ranks' lines may interleave


@pytest.mark.slow
def test_rank0_policy_one_run_no_duplicates(tmp_path: Path, store_dir: Path) -> None:
    result = torchrun(tmp_path, "--limit-batches", "3")
    runs = RunStore(store_dir).run_ids()
    assert len(runs) == 1 and run_ids_printed(result.stdout) == set(runs)
    run_dir = store_dir / "runs" / runs[0]
    events = journal(run_dir)
    steps = [e["step"] for e in events if e["kind"] == "metric" and "train/loss" in e["values"]]
    assert steps == list(range(6))  # rank 0's points only, each once
    assert not any(key.startswith("rank1/") for e in events if e["kind"] == "metric" for key in e["values"])
    assert [e["step"] for e in events if e["kind"] == "checkpoint"] == [3, 6]  # rank 0 alone wrote them
    assert RunStore(store_dir).load(runs[0]).status == "completed"


@pytest.mark.slow
def test_rank_policy_all_labels_rank1_system_samples_and_metrics(tmp_path: Path, store_dir: Path) -> None:
    result = torchrun(tmp_path, "--rank-policy", "all", "--monitor-interval", "0.05")
    runs = RunStore(store_dir).run_ids()
    assert len(runs) == 1 and run_ids_printed(result.stdout) == set(runs)
    events = journal(store_dir / "runs" / runs[0])
    system_ranks = {e.get("rank") for e in events if e["kind"] == "system"}
    assert 1 in system_ranks
    own = [e["step"] for e in events if e["kind"] == "metric" and "train/loss" in e["values"]]
    rank1 = [e["step"] for e in events if e["kind"] == "metric" and "rank1/train/loss" in e["values"]]
    assert own == rank1 == list(range(30))  # 15 batches x 2 epochs per rank: each point once, labelled by rank
    params = RunStore(store_dir).load(runs[0]).params
    assert params["world_size"] == 2


LIGHTNING_DDP = """
import torch, lightning.pytorch as pl
from torch.utils.data import DataLoader, TensorDataset
from unitrack.integrations.lightning import UnitrackCheckpoint, UnitrackLogger

class Regressor(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Linear(4, 1)

    def training_step(self, batch, batch_idx):
        loss = torch.nn.functional.mse_loss(self.net(batch[0]), batch[1])
        self.log("train/loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

if __name__ == "__main__":
    x = torch.randn(64, 4, generator=torch.Generator().manual_seed(0))
    data = DataLoader(TensorDataset(x, x.sum(1, keepdim=True)), batch_size=8)
    logger = UnitrackLogger("lightning-ddp", {"monitoring": {"enabled": False}, "capture": {"packages": False}})
    trainer = pl.Trainer(max_epochs=2, logger=logger, strategy="ddp", devices=2, accelerator="cpu",
                         log_every_n_steps=1, enable_progress_bar=False, enable_checkpointing=False,
                         callbacks=[UnitrackCheckpoint()])
    trainer.fit(Regressor(), data)
    print(f"rank {trainer.global_rank}: run {logger.version}", flush=True)
    logger.finish()
"""


@pytest.mark.slow
def test_lightning_ddp_strategy_makes_one_run(tmp_path: Path, store_dir: Path) -> None:
    pytest.importorskip("lightning")
    script = tmp_path / "lightning_ddp.py"
    script.write_text(LIGHTNING_DDP)
    env = {**os.environ, "PYTHONPATH": str(EXAMPLE.parents[1]), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=PROCESS_TIMEOUT_S, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    runs = RunStore(store_dir).run_ids()
    assert len(runs) == 1 and run_ids_printed(result.stdout) == set(runs)
    events = journal(store_dir / "runs" / runs[0])
    steps = [e["step"] for e in events if e["kind"] == "metric" and "train/loss" in e["values"]]
    assert steps == list(range(8))  # 32 samples per rank, batches of 8, two epochs: rank 0's points once
    assert [e["epoch"] for e in events if e["kind"] == "checkpoint"] == [0, 1]
