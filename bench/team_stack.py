"""Delivery to the team stack (``unitrack server --db postgresql --artifacts s3``) and checkpoints in its S3.

1. 100,000 metric points (20,000 steps x 5 scalars) into MLflow on PostgreSQL: unitrack's delivery
   after ``finish()`` against MLflow's own asynchronous logging (``log_metrics(synchronous=False)``
   then ``flush_async_logging()``), in the same run, against the same server, each in a fresh interpreter.
   Beside them, the server's floor: the same points as raw ``log-batch`` requests of 1,000, built
   once before the clock starts and posted by ``--workers`` threads over kept-alive connections —
   no tracking client at all, so its time is the server's own. The server is warmed first (a
   throwaway run of 20,000 points, so every worker has loaded its code and opened its database
   connections): a team's server has been up for a while, and the first contender would otherwise
   pay for the cold start alone.
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
LOG_BATCH = "/api/2.0/mlflow/runs/log-batch"


def _raw_batches(run_id: str, steps: int) -> list[bytes]:
    """``log-batch`` bodies of 200 steps x 5 metrics (1,000 points, MLflow's most per request)."""
    from bench.log_overhead import values_for

    now = int(time.time() * 1000)
    return [
        json.dumps({"run_id": run_id, "metrics": [
            {"key": key, "value": value, "timestamp": now + step, "step": step}
            for step in range(first, min(first + 200, steps)) for key, value in values_for(step).items()
        ]}).encode()
        for first in range(0, steps, 200)
    ]  # fmt: skip


def post_raw(uri: str, experiment: str, steps: int, in_flight: int) -> float:
    """Seconds to post ``steps`` x 5 points as raw requests, ``in_flight`` at a time."""
    from concurrent.futures import ThreadPoolExecutor

    import requests
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    run_id = client.create_run(found.experiment_id if found else client.create_experiment(experiment)).info.run_id
    bodies = _raw_batches(run_id, steps)
    session = requests.Session()
    session.mount("http://", requests.adapters.HTTPAdapter(pool_connections=in_flight, pool_maxsize=in_flight))

    def post(body: bytes) -> None:
        session.post(uri + LOG_BATCH, data=body, headers={"Content-Type": "application/json"}, timeout=120).raise_for_status()

    started = time.perf_counter()
    with ThreadPoolExecutor(in_flight) as pool:
        list(pool.map(post, bodies))
    seconds = time.perf_counter() - started
    client.set_terminated(run_id)
    return seconds


def bench_server_floor(steps: int, workdir: Path) -> dict[str, Any]:
    uri, in_flight = os.environ["MLFLOW_TRACKING_URI"], int(os.environ.get(IN_FLIGHT_ENV, "4"))
    seconds = post_raw(uri, "bench-floor", steps, in_flight)
    return {"name": f"server floor: raw log-batch requests, {in_flight} in flight, no client", "median_us": None,
            "loop_s": 0.0, "deliver_s": seconds}  # fmt: skip


RAW_CONTENDERS = {"server-floor": bench_server_floor}
IN_FLIGHT_ENV = "UNITRACK_BENCH_IN_FLIGHT"


def report(results: dict[str, dict[str, Any]], args: argparse.Namespace) -> str:
    rows = []
    for key in ("unitrack-mlflow", "server-floor", "mlflow-async"):
        r = results.get(key)
        if r is None:
            continue
        if "error" in r:
            rows.append([key, "-", "-", f"error: {r['error']}"])
            continue
        median = "-" if r.get("median_us") is None else f"{r['median_us']:.2f}"
        rows.append([r["name"], median, f"{r['loop_s']:.2f}", f"{r['deliver_s']:.2f}"])
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
    parser.add_argument("--only", nargs="*", choices=["unitrack-mlflow", "server-floor", "mlflow-async", *CHECKPOINT_CONTENDERS])
    parser.add_argument("--contender", choices=sorted({**CHECKPOINT_CONTENDERS, **RAW_CONTENDERS}), help=argparse.SUPPRESS)
    parser.add_argument("--write-doc", action="store_true", help="update docs/performance.md")
    args = parser.parse_args()
    if args.contender:
        workdir = Path(tempfile.mkdtemp(prefix="unitrack-bench-"))
        try:
            emit({**CHECKPOINT_CONTENDERS, **RAW_CONTENDERS}[args.contender](args.steps, workdir))
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
        os.environ[IN_FLIGHT_ENV] = str(args.workers)
        print("warming the server up ...", file=sys.stderr, flush=True)
        post_raw(stack.env["MLFLOW_TRACKING_URI"], "bench-warm-up", 20_000, args.workers)
        for name in args.only or ["unitrack-mlflow", "server-floor", "mlflow-async", *CHECKPOINT_CONTENDERS]:
            module = "bench.team_stack" if name in {**CHECKPOINT_CONTENDERS, **RAW_CONTENDERS} else "bench.backend_overhead"
            results[name] = run_contender(module, name, "--steps", str(args.steps), timeout=1800)
    finally:
        stack.stop()
        shutil.rmtree(data, ignore_errors=True)
    text = report(results, args)
    print(text)
    if args.write_doc:
        update_doc_section("team_stack", text)


if __name__ == "__main__":
    main()
