"""Distributed data-parallel training on the CPU (gloo), tracked by unitrack: one run, owned by rank 0.

    torchrun --nproc_per_node 2 examples/train_ddp.py --epochs 2
    torchrun --nproc_per_node 2 examples/train_ddp.py --rank-policy all   # every rank's system samples too

Every rank makes its tracker the same way; rank 0 creates the run, the other ranks join it.
With the default policy (rank0) their logging calls are no-ops, so the loop needs no
``if rank == 0``; with ``--rank-policy all`` their system samples and losses arrive labelled by rank.
"""

from __future__ import annotations

import argparse

import torch
import torch.distributed as dist
import torch.nn as nn
from sklearn.datasets import load_digits
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

import unitrack as ut


def digits() -> TensorDataset:
    data = load_digits()
    images = torch.tensor(data.data, dtype=torch.float32) / 16.0
    return TensorDataset(images, torch.tensor(data.target, dtype=torch.long))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--limit-batches", type=int, default=None, help="stop each epoch after this many batches")
    parser.add_argument("--rank-policy", choices=["rank0", "all"], default="rank0")
    parser.add_argument("--monitor-interval", type=float, default=1.0, help="seconds between system samples")
    args = parser.parse_args()

    dist.init_process_group("gloo")
    rank = dist.get_rank()
    torch.manual_seed(0)
    dataset = digits()
    sampler = DistributedSampler(dataset, shuffle=True, seed=0)
    loader = DataLoader(dataset, batch_size=args.batch_size, sampler=sampler)
    model = DistributedDataParallel(nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10)))
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr)
    loss_fn = nn.CrossEntropyLoss()
    config = {
        "tracking": {"rank_policy": args.rank_policy},
        "monitoring": {"interval": args.monitor_interval},
        "capture": {"packages": False},
    }

    with ut.experiment_tracking("digits-ddp", config) as tracker:
        tracker.log_hyperparameters({**vars(args), "world_size": dist.get_world_size()})  # rank 0's are kept
        tracker.watch(model.module, optimizer=optimizer, loss_fn=loss_fn)
        step = 0
        for epoch in range(args.epochs):
            sampler.set_epoch(epoch)
            for batch, (x, y) in enumerate(loader):
                if args.limit_batches is not None and batch >= args.limit_batches:
                    break
                loss = loss_fn(model(x), y)
                optimizer.zero_grad()
                loss.backward()  # DDP averages the gradients across ranks here
                optimizer.step()
                tracker.log_metrics({"train/loss": loss.detach()}, step=step)
                step += 1
            tracker.save_checkpoint(model.module, epoch=epoch, step=step, optimizer=optimizer)  # written by rank 0
        dist.barrier()
        print(f"rank {rank}: run {tracker.run_id}", flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
