"""An FSDP2 job on CPU (gloo, an explicit CPU device mesh) for the sharded-checkpoint tests.

``train``: 6 steps, sharded checkpoints at steps 1, 3 and 6 through the tracker (retention keeps the
last two), the losses and the full state dicts gathered at each save written beside (the references). ``resume CHECKPOINT``:
load a checkpoint, run the remaining steps, write the losses. ``best``: ``load_best`` into this
world size (the fallback past a damaged checkpoint). ``fail``: a save that one rank cannot capture
fails on every rank, and the next one works. Started by torchrun, or alone (one rank).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from safetensors.torch import save_file
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard

import unitrack as ut

STEPS = 6
CONFIG = {
    "monitoring": {"enabled": False},
    "capture": {"packages": False},
    "checkpointing": {"monitor": "val_loss", "mode": "min", "async_save": True, "keep_last": 2},
}


def build() -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))
    mesh = init_device_mesh("cpu", (dist.get_world_size(),))
    for layer in model:
        if isinstance(layer, torch.nn.Linear):
            fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    return model, torch.optim.Adam(model.parameters(), lr=0.05)


def train_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, step: int) -> float:
    """One step on a batch fixed by (step, rank); returns the loss averaged over the ranks."""
    generator = torch.Generator().manual_seed(1000 * step + dist.get_rank())
    x = torch.randn(8, 6, generator=generator)
    y = torch.randn(8, 3, generator=generator)
    loss = torch.nn.functional.mse_loss(model(x), y)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    total = loss.detach().clone()
    dist.all_reduce(total)
    return float(total) / dist.get_world_size()


def full_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return {k: v.clone() for k, v in get_model_state_dict(model, options=options).items()}


def main(mode: str, out: Path, *args: str) -> None:
    if "RANK" not in os.environ:  # one process on its own: a world of one
        dist.init_process_group("gloo", init_method=f"file://{out / 'pg'}", rank=0, world_size=1)
    else:
        dist.init_process_group("gloo")
    rank = dist.get_rank()
    model, optimizer = build()
    losses: dict[int, float] = {}
    resume = args[0] if mode == "best" else None  # load_best reads the run's registry
    config = CONFIG
    if mode == "fail":  # warned about, so the job goes on to the next save
        config = {**CONFIG, "checkpointing": {**CONFIG["checkpointing"], "on_error": "warn"}}
    with ut.ExperimentTracker("fsdp", config, resume=resume) as tracker:
        if mode == "train":
            for step in range(1, STEPS + 1):
                losses[step] = train_step(model, optimizer, step)
                if step in (1, 3, 6):
                    reference = full_state(model)  # every rank takes part; rank 0 holds it
                    info = tracker.save_checkpoint(model=model, optimizer=optimizer, epoch=0, step=step,
                                                   val_loss=1.0 / step)
                    if rank == 0:
                        save_file(reference, str(out / f"full_step{step}.safetensors"))
                        print(f"saved {info.name} at {info.path}", flush=True)
        elif mode == "resume":
            _, start = tracker.load_checkpoint(args[0], model, optimizer)
            for step in range(start + 1, STEPS + 1):
                losses[step] = train_step(model, optimizer, step)
        elif mode == "fail":  # rank 1 holds what a checkpoint cannot store: every rank's save fails alike
            train_step(model, optimizer, 1)
            extra = {"hook": print} if rank == 1 else {"hook": 0}
            failed = tracker.save_checkpoint(model=model, optimizer=optimizer, epoch=0, step=1, extra=extra)
            saved = tracker.save_checkpoint(model=model, optimizer=optimizer, epoch=0, step=2)
            tracker.flush()
            losses[1 if failed is None else -1] = 0.0
            losses[2 if saved is not None else -2] = float(len(tracker.list_checkpoints()))
        else:  # the module-level loader, then the tracker's: both fall back past a damaged best
            _, start = ut.load_checkpoint(f"{args[0]}@best", model, optimizer)
            through_module = full_state(model)
            model, optimizer = build()
            _, start = tracker.load_best(model, optimizer)
            reference = full_state(model)
            if rank == 0:
                save_file(through_module, str(out / f"best_module_world{dist.get_world_size()}.safetensors"))
                save_file(reference, str(out / f"best_world{dist.get_world_size()}.safetensors"))
                losses[start] = 0.0
        if rank == 0:
            print(f"rank 0: run {tracker.run_id}", flush=True)
    if rank == 0:
        (out / f"{mode}_losses.json").write_text(json.dumps(losses))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]), *sys.argv[3:])
