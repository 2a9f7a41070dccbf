"""Delivery to the team stack (``unitrack server --db postgresql --artifacts s3``) and checkpoints in its S3.

1. 100,000 metric points (20,000 steps x 5 scalars) into MLflow on PostgreSQL: unitrack's delivery
   after ``finish()`` against MLflow's own asynchronous logging (``log_metrics(synchronous=False)``
   then ``flush_async_logging()``), in the same run, against the same server, each in a fresh interpreter.
2. A checkpoint saved synchronously (``async_save: false``, so the call's time is the save's) to the
   stack's S3 (SeaweedFS on this machine) against the same save to local disk.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.backend_overhead import SERVER_ENV
from bench.common import emit, machine, markdown_table, run_contender, update_doc_section

CHECKPOINT_MB_ENV = "UNITRACK_BENCH_CHECKPOINT_MB"


def _save(workdir: Path, checkpoint_dir: str | None) -> dict[str, Any]:
    import torch

    import unitrack as ut

    megabytes = int(os.environ.get(CHECKPOINT_MB_ENV, "256"))
    width = 4096
    layers = max(1, megabytes * (1 << 20) // (width * width * 4))
    model = torch.nn.Sequential(*(torch.nn.Linear(width, width, bias=False) for _ in range(layers)))
    size = sum(p.numel() * p.element_size() for p in model.parameters())
    config = {"store_dir": str(workdir / "store"), "monitoring": {"enabled": False},
              "checkpointing": {"async_save": False, "checkpoint_dir": checkpoint_dir or str(workdir / "ckpt")}}  # fmt: skip
    times = []
    with ut.experiment_tracking("bench-checkpoint", config) as tracker:
        for epoch in range(3):
            started = time.perf_counter()
            tracker.save_checkpoint(model=model, epoch=epoch, step=epoch)
            times.append(time.perf_counter() - started)
    best = min(times)
    where = "S3 (SeaweedFS, this machine)" if checkpoint_dir else "local disk"
    return {"name": f"save_checkpoint to {where}", "mb": size / 1e6, "seconds": best, "mb_s": size / 1e6 / best}


def bench_save_local(steps: int, workdir: Path) -> dict[str, Any]:
    return _save(workdir, None)


def bench_save_s3(steps: int, workdir: Path) -> dict[str, Any]:
    return _save(workdir, "s3://checkpoints/bench")


CHECKPOINT_CONTENDERS = {"save-local": bench_save_local, "save-s3": bench_save_s3}


def report(results: dict[str, dict[str, Any]], args: argparse.Namespace) -> str:
    rows = []
    for key in ("unitrack-mlflow", "mlflow-async"):
        r = results.get(key)
        if r is None:
            continue
        if "error" in r:
            rows.append([key, "-", "-", f"error: {r['error']}"])
            continue
        rows.append([r["name"], f"{r['median_us']:.2f}", f"{r['loop_s']:.2f}", f"{r['deliver_s']:.2f}"])
    delivery = markdown_table(["contender", "median µs/call", "loop s", "delivered s after the loop"], rows)
    saves = [[r["name"], f"{r['mb']:.0f}", f"{r['seconds']:.2f}", f"{r['mb_s']:.0f}"]
             for key, r in results.items() if key in CHECKPOINT_CONTENDERS and "error" not in r]  # fmt: skip
    saving = markdown_table(["checkpoint save (synchronous, best of 3)", "MB", "s", "MB/s"], saves)
    return "\n".join([
        f"Command: `python -m bench.team_stack --steps {args.steps} --workers {args.workers} --write-doc` "
        f"({time.strftime('%Y-%m-%d')}, {machine()}). {args.steps * 5:,} points; the stack started by this bench "
        f"as `unitrack server --db postgresql --artifacts s3 --workers {args.workers}`.",
        "", delivery, "", saving,
    ])  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--only", nargs="*", choices=["unitrack-mlflow", "mlflow-async", *CHECKPOINT_CONTENDERS])
    parser.add_argument("--contender", choices=sorted(CHECKPOINT_CONTENDERS), help=argparse.SUPPRESS)
    parser.add_argument("--write-doc", action="store_true", help="update docs/performance.md")
    args = parser.parse_args()
    if args.contender:
        workdir = Path(tempfile.mkdtemp(prefix="unitrack-bench-"))
        try:
            emit(CHECKPOINT_CONTENDERS[args.contender](args.steps, workdir))
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        return

    from unitrack.server.stack import Stack, StackOptions

    data = Path(tempfile.mkdtemp(prefix="unitrack-bench-stack-"))
    stack = Stack(StackOptions(data=data, db="postgresql", artifacts="s3", port=0, s3_port=0, workers=args.workers)).start()
    results: dict[str, dict[str, Any]] = {}
    try:
        os.environ.update(stack.env)
        os.environ[SERVER_ENV] = stack.env["MLFLOW_TRACKING_URI"]
        for name in args.only or ["unitrack-mlflow", "mlflow-async", *CHECKPOINT_CONTENDERS]:
            print(f"running {name} ...", file=sys.stderr, flush=True)
            module = "bench.team_stack" if name in CHECKPOINT_CONTENDERS else "bench.backend_overhead"
            results[name] = run_contender(module, name, "--steps", str(args.steps), timeout=1800)
            print(json.dumps(results[name]), file=sys.stderr, flush=True)
    finally:
        stack.stop()
        shutil.rmtree(data, ignore_errors=True)
    text = report(results, args)
    print(text)
    if args.write_doc:
        update_doc_section("team_stack", text)


if __name__ == "__main__":
    main()
