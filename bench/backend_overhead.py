"""The cost in the loop of unitrack with each backend on, against that backend used directly, in one run.

Every contender logs the same 5 scalars per step in a fresh interpreter. For each we time every
call in the loop, then how long it takes until the backend holds everything (``finish()`` for
unitrack, the backend's own flush / finish when used directly). MLflow contenders share one real
``mlflow server`` (SQLite store, one worker) started here, so delivery crosses HTTP as in use.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import emit, machine, markdown_table, run_contender, update_doc_section
from bench.log_overhead import bench_tensorboard, bench_wandb, mlflow_direct, result, timed_loop

SERVER_ENV = "UNITRACK_BENCH_MLFLOW_URI"


def _unitrack(backend: str, steps: int, workdir: Path) -> dict[str, Any]:
    import unitrack as ut

    tracking: dict[str, Any] = {"backends": [backend], "finish_timeout": 600}
    if backend == "mlflow":
        tracking["mlflow_tracking_uri"] = os.environ[SERVER_ENV]
    elif backend == "tensorboard":
        tracking["tensorboard_log_dir"] = str(workdir / "tb")
    else:
        tracking["wandb_dir"] = str(workdir / "wb")
        tracking["wandb_mode"] = "offline"
    config = {"store_dir": str(workdir / "store"), "monitoring": {"enabled": False}, "tracking": tracking}
    tracker = ut.ExperimentTracker(f"bench-{backend}", config)
    tracker.flush()
    samples, loop_s = timed_loop(steps, lambda values, step: tracker.log_metrics(values, step=step))
    started = time.perf_counter()
    tracker.finish()
    deliver_s = time.perf_counter() - started
    state = json.loads((tracker.run_dir / "run.json").read_text())["backends"][backend]
    return result(f"unitrack -> {backend}", steps, samples, loop_s, deliver_s, in_sync=state["in_sync"])


def bench_unitrack_mlflow(steps: int, workdir: Path) -> dict[str, Any]:
    return _unitrack("mlflow", steps, workdir)


def bench_unitrack_tensorboard(steps: int, workdir: Path) -> dict[str, Any]:
    return _unitrack("tensorboard", steps, workdir)


def bench_unitrack_wandb(steps: int, workdir: Path) -> dict[str, Any]:
    return _unitrack("wandb", steps, workdir)


def bench_mlflow_async(steps: int, workdir: Path) -> dict[str, Any]:
    return mlflow_direct(steps, os.environ[SERVER_ENV], synchronous=False)


def bench_mlflow_sync(steps: int, workdir: Path) -> dict[str, Any]:
    return mlflow_direct(steps, os.environ[SERVER_ENV], synchronous=True)


CONTENDERS: dict[str, Callable[[int, Path], dict[str, Any]]] = {
    "unitrack-mlflow": bench_unitrack_mlflow,
    "mlflow-async": bench_mlflow_async,
    "mlflow-sync": bench_mlflow_sync,
    "unitrack-tensorboard": bench_unitrack_tensorboard,
    "tensorboard": bench_tensorboard,
    "unitrack-wandb": bench_unitrack_wandb,
    "wandb": bench_wandb,
}
PAIRS = {"mlflow-async": "unitrack-mlflow", "mlflow-sync": "unitrack-mlflow", "tensorboard": "unitrack-tensorboard", "wandb": "unitrack-wandb"}


def report(results: dict[str, dict[str, Any]], args: argparse.Namespace) -> str:
    header = ["contender", "steps", "median µs/call", "p99 µs/call", "loop s", "delivered s after the loop", "median: direct / unitrack"]
    rows = []
    for key, r in results.items():
        if "error" in r:
            rows.append([r["name"], "-", "-", "-", "-", f"error: {r['error']}", "-"])
            continue
        ours = results.get(PAIRS.get(key, ""), {})
        ratio = f"{r['median_us'] / ours['median_us']:.0f}x" if ours.get("median_us") else "-"
        deliver = f"{r['deliver_s']:.2f}"
        if r["steps"] < args.steps and key == "mlflow-sync":
            deliver = f"{(r['loop_s'] + r['deliver_s']) * args.steps / r['steps']:.1f} (whole run, extrapolated from {r['steps']} steps)"
        rows.append([r["name"], r["steps"], f"{r['median_us']:.2f}", f"{r['p99_us']:.2f}", f"{r['loop_s']:.2f}", deliver, ratio])
    lines = [
        f"Command: `python -m bench.backend_overhead --steps {args.steps} --write-doc` ({time.strftime('%Y-%m-%d')}, {machine()}). "
        f"5 scalars per step ({args.steps * 5:,} points); each contender in a fresh interpreter; MLflow contenders against "
        "one local `mlflow server` (SQLite store, `--workers 1`).",
        "",
        markdown_table(header, rows),
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--mlflow-sync-steps", type=int, default=500)
    parser.add_argument("--only", nargs="*", choices=sorted(CONTENDERS), help="run only these contenders")
    parser.add_argument("--contender", choices=sorted(CONTENDERS), help=argparse.SUPPRESS)
    parser.add_argument("--write-doc", action="store_true", help="update docs/performance.md with the table")
    args = parser.parse_args()

    if args.contender:
        workdir = Path(tempfile.mkdtemp(prefix="unitrack-bench-"))
        try:
            emit(CONTENDERS[args.contender](args.steps, workdir))
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        return

    from backends.mlflow_server import MlflowServer

    server_dir = Path(tempfile.mkdtemp(prefix="unitrack-bench-mlflow-"))
    results: dict[str, dict[str, Any]] = {}
    with MlflowServer(server_dir) as server:
        os.environ[SERVER_ENV] = server.uri
        for name in args.only or list(CONTENDERS):
            steps = min(args.steps, args.mlflow_sync_steps) if name == "mlflow-sync" else args.steps
            results[name] = run_contender("bench.backend_overhead", name, "--steps", str(steps), timeout=1800)
    shutil.rmtree(server_dir, ignore_errors=True)
    text = report(results, args)
    print(text)
    if args.write_doc:
        update_doc_section("backend_overhead", text)


if __name__ == "__main__":
    main()
