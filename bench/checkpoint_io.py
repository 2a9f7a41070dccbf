"""Checkpoint I/O: unitrack's checksummed save and verified load against torch.save / torch.load and dd.

    python -m bench.checkpoint_io [--mb 400] [--repeat 7] [--write-doc]

One run, one ~400 MB float32 state dict, medians of ``--repeat`` tries, all in a scratch folder
on the same file system:

* raw sequential write: ``dd if=/dev/zero bs=8M conv=fsync`` of the same size;
* ``torch.save`` + fsync, and unitrack's synchronous save (safetensors, BLAKE3 per file and per
  tensor, manifest, fsync, rename);
* ``torch.load(weights_only=True)`` and unitrack's load with full verification (page cache warm
  for both, as right after a save), and the same two followed by what a user does with them:
  ``load_state_dict`` into a model's tensors;
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


def interleaved(contenders: dict[str, tuple[Callable[[], Any], Callable[[], Any] | None]], repeat: int) -> dict[str, float]:
    """Median seconds of each contender; every try runs all of them in turn, so that a machine
    shared with other jobs slows them alike."""
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(repeat):
        for name, (action, before) in contenders.items():
            if before is not None:
                before()
            start = time.perf_counter()
            action()
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in samples.items()}


def fresh(path: Path) -> None:
    """Remove the previous try's output and let the disk settle (untimed): the freed blocks'
    discards and any writeback would otherwise land on whichever contender writes next."""
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()
    os.sync()


def measure(total_mb: int, repeat: int, scratch: Path) -> dict[str, float]:
    from unitrack.checkpoint.state import TrainingState
    from unitrack.checkpoint.storage import read_checkpoint, write_checkpoint

    tensors = state_dict(total_mb)
    nbytes = sum(t.numel() * t.element_size() for t in tensors.values())
    results: dict[str, float] = {"bytes": nbytes, "load_before": os.getloadavg()[0]}
    dd_file, torch_file, folder = scratch / "dd.bin", scratch / "torch.pt", scratch / "ckpt"
    count = nbytes // (8 << 20)
    dd = ["dd", "if=/dev/zero", f"of={dd_file}", "bs=8M", f"count={count}", "conv=fsync", "status=none"]

    def torch_save() -> None:
        with open(torch_file, "wb") as handle:
            torch.save(tensors, handle)
            handle.flush()
            os.fsync(handle.fileno())

    state = TrainingState(tensors, {}, {"epoch": 0, "step": 0})
    results.update(interleaved({
        "dd": (lambda: subprocess.run(dd, check=True), lambda: fresh(dd_file)),
        "torch_save": (torch_save, lambda: fresh(torch_file)),
        "unitrack_save": (lambda: write_checkpoint(folder, state, "none"), lambda: fresh(folder)),
    }, repeat))
    model = torch.nn.Module()  # the model's own tensors, loaded into as a user's load does
    for name, tensor in tensors.items():
        model.register_buffer(name.replace(".", "_"), torch.empty_like(tensor))

    def into_model(state: dict[str, torch.Tensor]) -> None:
        model.load_state_dict({name.replace(".", "_"): tensor for name, tensor in state.items()})

    results.update(interleaved({
        "torch_load": (lambda: torch.load(torch_file, weights_only=True), None),
        "unitrack_load": (lambda: read_checkpoint(folder), None),
        "torch_restore": (lambda: into_model(torch.load(torch_file, weights_only=True)), None),
        "unitrack_restore": (lambda: into_model(read_checkpoint(folder).model), None),
    }, repeat))
    for path in (folder, torch_file, dd_file):
        fresh(path)

    buffers = {k: torch.empty_like(v) for k, v in tensors.items()}
    results.update(interleaved({
        "clone": (lambda: {k: v.clone() for k, v in tensors.items()}, None),
        "copy_into_buffers": (lambda: [buffers[k].copy_(v) for k, v in tensors.items()], None),
    }, repeat))
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
    first, later, clones = [], [], []
    for _ in range(repeat):
        with ut.experiment_tracking("bench-async", config) as tracker:
            for step in range(3):
                start = time.perf_counter()
                copy = {k: v.clone() for k, v in tensors.items()}
                clones.append(time.perf_counter() - start)
                del copy
                start = time.perf_counter()
                tracker.save_checkpoint(tensors, epoch=0, step=step)
                (first if step == 0 else later).append(time.perf_counter() - start)
                tracker.flush()  # the write finishes outside the measured call
        shutil.rmtree(scratch / "store")
    return {
        "async_first": statistics.median(first),
        "async_later": statistics.median(later),
        "clone_beside_async": statistics.median(clones),
    }


def report(results: dict[str, float], total_mb: int, repeat: int) -> str:
    gb = results["bytes"] / 1e9

    def rate(key: str) -> str:
        return f"{results[key]:.3f} s ({gb / results[key]:.2f} GB/s)"

    rows = [
        ["`dd conv=fsync` (raw sequential write)", rate("dd"), "1x"],
        ["`torch.save` + fsync", rate("torch_save"), f"{results['dd'] / results['torch_save']:.0%} of dd"],
        ["unitrack save (BLAKE3 per file and tensor, fsync, rename)", rate("unitrack_save"),
         f"{results['dd'] / results['unitrack_save']:.0%} of dd"],
        ["`torch.load(weights_only=True)` (warm)", rate("torch_load"), "1x"],
        ["unitrack load, every checksum verified (warm)", rate("unitrack_load"),
         f"{results['torch_load'] / results['unitrack_load']:.2f}x torch.load speed"],
        ["`torch.load` + `load_state_dict` into a model (warm)", rate("torch_restore"), "1x"],
        ["unitrack verified load + `load_state_dict` into a model (warm)", rate("unitrack_restore"),
         f"{results['torch_restore'] / results['unitrack_restore']:.2f}x torch.load + load_state_dict speed"],
        ["`clone()` of the state dict", f"{results['clone']:.3f} s", "1x"],
        ["copy into preallocated buffers", f"{results['copy_into_buffers']:.3f} s",
         f"{results['copy_into_buffers'] / results['clone']:.2f}x clone"],
        ["`clone()`, timed beside each async save below", f"{results['clone_beside_async']:.3f} s", "1x"],
        ["async `save_checkpoint`, blocking time, first save", f"{results['async_first']:.3f} s",
         f"{results['async_first'] / results['clone_beside_async']:.2f}x clone"],
        ["async `save_checkpoint`, blocking time, later saves", f"{results['async_later']:.3f} s",
         f"{results['async_later'] / results['clone_beside_async']:.2f}x clone, "
         f"{results['async_later'] / results['copy_into_buffers']:.2f}x copy into buffers"],
    ]
    table = markdown_table(["operation", "median time", "relative"], rows)
    head = (
        f"Command: `python -m bench.checkpoint_io --mb {total_mb} --repeat {repeat} --write-doc` "
        f"({date.today().isoformat()}, {machine()}). State dict: {results['bytes'] / 1e6:.0f} MB of float32 "
        f"in {TENSOR_MB} MB tensors; medians of {repeat} tries. Load average before the run: {results['load_before']:.1f}, "
        f"when it finished: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (other jobs were running: the ratios "
        "within one run are what to compare)."
    )
    save, load = results["dd"] / results["unitrack_save"], results["torch_load"] / results["unitrack_load"]
    blocking = max(results["async_first"], results["async_later"]) / results["clone_beside_async"]

    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    targets = (
        f"Targets: synchronous save with checksums ≥ 80 % of the dd rate → {verdict(save >= 0.8)} ({save:.0%}); "
        f"verified load ≥ 1.0x torch.load(weights_only=True) → {verdict(load >= 1.0)} ({load:.2f}x; into a model "
        f"{results['torch_restore'] / results['unitrack_restore']:.2f}x); async blocking time ≤ 1.5x clone() → "
        f"{verdict(blocking <= 1.5)} ({blocking:.2f}x, the worse of first and later saves)."
    )
    return f"{head}\n\n{table}\n\n{targets}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=400)
    parser.add_argument("--repeat", type=int, default=7)
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
