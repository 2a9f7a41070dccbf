"""Checkpoint I/O: unitrack's checksummed save and verified load against torch.save / torch.load and dd.

    python -m bench.checkpoint_io [--mb 400] [--repeat 3] [--write-doc]

One run, one ~400 MB float32 state dict, medians of ``--repeat`` tries, all in a scratch folder
on the same file system:

* raw sequential write: ``dd if=/dev/zero bs=8M conv=fsync`` of the same size;
* ``torch.save`` + fsync, and unitrack's synchronous save (safetensors, SHA-256 per file and per
  tensor, manifest, fsync, rename);
* ``torch.load(weights_only=True)`` and unitrack's load with full verification (page cache warm
  for both, as right after a save);
* the time the training thread is blocked by an asynchronous ``save_checkpoint``, first save
  (buffers allocated) and later saves (buffers reused), against ``clone()`` of the state dict and
  a copy into preallocated buffers.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import torch

from bench.common import machine, markdown_table, update_doc_section

TENSOR_MB = 8


def state_dict(total_mb: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    count = max(1, total_mb // TENSOR_MB)
    return {f"layer{i}.weight": torch.randn(TENSOR_MB * 2**18) for i in range(count)}


def median_time(action: Callable[[], Any], repeat: int, before: Callable[[], Any] | None = None) -> float:
    samples = []
    for _ in range(repeat):
        if before is not None:
            before()
        start = time.perf_counter()
        action()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def fresh(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def measure(total_mb: int, repeat: int, scratch: Path) -> dict[str, float]:
    from unitrack.checkpoint.state import TrainingState
    from unitrack.checkpoint.storage import read_checkpoint, write_checkpoint

    tensors = state_dict(total_mb)
    nbytes = sum(t.numel() * t.element_size() for t in tensors.values())
    results: dict[str, float] = {"bytes": nbytes}
    dd_file, torch_file, folder = scratch / "dd.bin", scratch / "torch.pt", scratch / "ckpt"

    count = nbytes // (8 << 20)
    dd = ["dd", "if=/dev/zero", f"of={dd_file}", "bs=8M", f"count={count}", "conv=fsync", "status=none"]
    results["dd"] = median_time(lambda: subprocess.run(dd, check=True), repeat, lambda: fresh(dd_file))

    def torch_save() -> None:
        with open(torch_file, "wb") as handle:
            torch.save(tensors, handle)
            handle.flush()
            os.fsync(handle.fileno())

    results["torch_save"] = median_time(torch_save, repeat, lambda: fresh(torch_file))
    state = TrainingState(tensors, {}, {"epoch": 0, "step": 0})
    results["unitrack_save"] = median_time(lambda: write_checkpoint(folder, state, "none"), repeat, lambda: fresh(folder))
    results["torch_load"] = median_time(lambda: torch.load(torch_file, weights_only=True), repeat)
    results["unitrack_load"] = median_time(lambda: read_checkpoint(folder), repeat)
    fresh(folder)
    fresh(torch_file)
    fresh(dd_file)

    results["clone"] = median_time(lambda: {k: v.clone() for k, v in tensors.items()}, repeat)
    buffers = {k: torch.empty_like(v) for k, v in tensors.items()}
    results["copy_into_buffers"] = median_time(lambda: [buffers[k].copy_(v) for k, v in tensors.items()], repeat)
    results.update(async_blocking(tensors, repeat, scratch))
    return results


def async_blocking(tensors: dict[str, torch.Tensor], repeat: int, scratch: Path) -> dict[str, float]:
    """Blocking time of tracker.save_checkpoint with async_save: the first save, then later ones."""
    import unitrack as ut

    config = {
        "store_dir": str(scratch / "store"),
        "monitoring": {"enabled": False},
        "capture": {"git": False, "packages": False},
        "checkpointing": {"keep_last": 1},
    }
    first, later = [], []
    for _ in range(repeat):
        with ut.experiment_tracking("bench-async", config) as tracker:
            for step in range(3):
                start = time.perf_counter()
                tracker.save_checkpoint(tensors, epoch=0, step=step)
                (first if step == 0 else later).append(time.perf_counter() - start)
                tracker.flush()  # the write finishes outside the measured call
        shutil.rmtree(scratch / "store")
    return {"async_first": statistics.median(first), "async_later": statistics.median(later)}


def report(results: dict[str, float], total_mb: int, repeat: int) -> str:
    gb = results["bytes"] / 1e9

    def rate(key: str) -> str:
        return f"{results[key]:.3f} s ({gb / results[key]:.2f} GB/s)"

    rows = [
        ["`dd conv=fsync` (raw sequential write)", rate("dd"), "1x"],
        ["`torch.save` + fsync", rate("torch_save"), f"{results['dd'] / results['torch_save']:.0%} of dd"],
        ["unitrack save (SHA-256 per file and tensor, fsync, rename)", rate("unitrack_save"),
         f"{results['dd'] / results['unitrack_save']:.0%} of dd"],
        ["`torch.load(weights_only=True)` (warm)", rate("torch_load"), "1x"],
        ["unitrack load, every checksum verified (warm)", rate("unitrack_load"),
         f"{results['torch_load'] / results['unitrack_load']:.2f}x torch.load speed"],
        ["`clone()` of the state dict", f"{results['clone']:.3f} s", "1x"],
        ["copy into preallocated buffers", f"{results['copy_into_buffers']:.3f} s",
         f"{results['copy_into_buffers'] / results['clone']:.2f}x clone"],
        ["async `save_checkpoint`, blocking time, first save", f"{results['async_first']:.3f} s",
         f"{results['async_first'] / results['clone']:.2f}x clone"],
        ["async `save_checkpoint`, blocking time, later saves", f"{results['async_later']:.3f} s",
         f"{results['async_later'] / results['clone']:.2f}x clone"],
    ]
    table = markdown_table(["operation", "median time", "relative"], rows)
    head = (
        f"Command: `python -m bench.checkpoint_io --mb {total_mb} --repeat {repeat} --write-doc` "
        f"({date.today().isoformat()}, {machine()}). State dict: {results['bytes'] / 1e6:.0f} MB of float32 "
        f"in {TENSOR_MB} MB tensors; medians of {repeat} tries."
    )
    targets = (
        "Targets: synchronous save ≥ 80 % of the dd rate; load with verification at least as fast as "
        "torch.load; async blocking time ≤ 1.5x clone() and close to a copy into reused buffers."
    )
    return f"{head}\n\n{table}\n\n{targets}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=400)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None, help="Scratch folder (default: a temporary one here).")
    parser.add_argument("--write-doc", action="store_true")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="ckpt-bench-", dir=args.dir or Path.cwd()))
    try:
        text = report(measure(args.mb, args.repeat, scratch), args.mb, args.repeat)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(text)
    if args.write_doc:
        update_doc_section("checkpoint_io", text)


if __name__ == "__main__":
    main()
