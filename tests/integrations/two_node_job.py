"""A tiny DDP job (gloo, CPU) for the two-node tests: every rank logs ``train/loss`` per step under
``rank_policy: all`` and samples the system often. ``--mlflow URI`` adds an MLflow backend;
``--vanish`` makes every rank but 0 end without finishing its tracker (as a killed rank would)."""

from __future__ import annotations

import argparse
import os

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

import unitrack as ut

STEPS = 12


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mlflow", default=None)
    parser.add_argument("--vanish", action="store_true")
    args = parser.parse_args()
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    torch.manual_seed(0)
    model = DistributedDataParallel(torch.nn.Linear(4, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    tracking: dict[str, object] = {"rank_policy": "all", "rank_join_timeout": 5 if args.vanish else 120}
    if args.mlflow:
        tracking.update(use_mlflow=True, mlflow_tracking_uri=args.mlflow)
    config = {"tracking": tracking, "monitoring": {"interval": 0.05}, "capture": {"packages": False}}
    tracker = ut.ExperimentTracker("two-nodes", config)
    generator = torch.Generator().manual_seed(rank)
    for step in range(STEPS):
        x = torch.randn(8, 4, generator=generator)
        loss = torch.nn.functional.mse_loss(model(x), x.sum(1, keepdim=True))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        tracker.log_metrics({"train/loss": loss.detach()}, step=step)
    dist.barrier()
    if args.vanish and rank > 0:
        os._exit(0)  # no finish: rank 0 must not wait for this rank beyond rank_join_timeout
    tracker.finish()
    print(f"rank {rank}: run {tracker.run_id}", flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
