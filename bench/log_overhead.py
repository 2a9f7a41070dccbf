"""The cost of logging in the training loop: unitrack against the backends used directly.

    python -m bench.log_overhead [--steps 20000] [--write-doc]

Every contender logs the same 5 scalars per step. We time each call (median, p99) and the whole
loop including the final flush, each contender in a fresh interpreter, all in one run. MLflow's
synchronous logging costs milliseconds per call, so it logs fewer steps (``--mlflow-sync-steps``)
and its total is extrapolated, which the table says.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import emit, latency_stats, machine, markdown_table, run_contender, update_doc_section

METRICS = ("loss", "acc", "lr", "grad_norm", "throughput")


def values_for(step: int) -> dict[str, float]:
    return {
        "loss": 1.0 / (step + 1),
        "acc": step / (step + 10),
        "lr": 1e-3 * 0.999**step,
        "grad_norm": 1.0 + (step % 7) * 0.1,
        "throughput": 1000.0 + step % 13,
    }


def timed_loop(steps: int, log: Callable[[dict[str, float], int], None]) -> tuple[list[int], float]:
    payloads = [values_for(step) for step in range(steps)]
    samples = []
    clock = time.perf_counter_ns
    started = time.perf_counter()
    for step in range(steps):
        before = clock()
        log(payloads[step], step)
        samples.append(clock() - before)
    return samples, time.perf_counter() - started


def call_latency(log: Callable[[dict[str, float], int], None], steps: int) -> dict[str, float]:
    """Median and p99 of single ``log`` calls, after a warm-up (the first use of each key is validated)."""
    timed_loop(1000, log)
    samples, _ = timed_loop(steps, lambda values, step: log(values, step + 1000))
    return latency_stats(samples)


def result(name: str, steps: int, samples: list[int], loop_s: float, flush_s: float, **extra: Any) -> dict[str, Any]:
    """One contender's figures; ``flush_s`` is the time after the loop until the tool holds everything."""
    stats = latency_stats(samples)
    return {"name": name, "steps": steps, **stats, "loop_s": loop_s, "deliver_s": flush_s, "total_s": loop_s + flush_s, **extra}


def bench_unitrack(steps: int, workdir: Path) -> dict[str, Any]:
    import unitrack as ut

    config = {"store_dir": str(workdir / "store"), "monitoring": {"enabled": False}}
    tracker = ut.ExperimentTracker("bench", config)
    tracker.flush()  # start-up (run folder, git and environment capture) is not part of the loop
    samples, loop_s = timed_loop(steps, lambda values, step: tracker.log_metrics(values, step=step))
    started = time.perf_counter()
    tracker.flush()
    flush_s = time.perf_counter() - started
    tracker.finish()
    return result("unitrack (local store)", steps, samples, loop_s, flush_s)


def bench_tensorboard(steps: int, workdir: Path) -> dict[str, Any]:
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(log_dir=str(workdir / "tb"))

    def log(values: dict[str, float], step: int) -> None:
        for key, value in values.items():
            writer.add_scalar(key, value, step)

    samples, loop_s = timed_loop(steps, log)
    started = time.perf_counter()
    writer.close()
    return result("TensorBoard SummaryWriter.add_scalar x5", steps, samples, loop_s, time.perf_counter() - started)


def bench_wandb(steps: int, workdir: Path) -> dict[str, Any]:
    os.environ["WANDB_SILENT"] = "true"
    import wandb

    run = wandb.init(project="bench", mode="offline", dir=str(workdir), settings=wandb.Settings(console="off"))
    samples, loop_s = timed_loop(steps, lambda values, step: run.log(values, step=step))
    started = time.perf_counter()
    run.finish()
    return result("W&B offline wandb.log", steps, samples, loop_s, time.perf_counter() - started)


def mlflow_direct(steps: int, tracking_uri: str, synchronous: bool, where: str = "") -> dict[str, Any]:
    """MLflow's own ``log_metrics`` in the loop, then its flush (the asynchronous queue)."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment("bench")
    with mlflow.start_run():
        samples, loop_s = timed_loop(steps, lambda values, step: mlflow.log_metrics(values, step=step, synchronous=synchronous))
        started = time.perf_counter()
        if not synchronous:
            mlflow.flush_async_logging()
    mode = "synchronous" if synchronous else "asynchronous"
    return result(f"MLflow log_metrics, {mode}{where}", steps, samples, loop_s, time.perf_counter() - started)


def bench_mlflow_sync(steps: int, workdir: Path) -> dict[str, Any]:
    return mlflow_direct(steps, f"sqlite:///{workdir / 'mlflow.db'}", synchronous=True, where=" (SQLite)")


def bench_mlflow_async(steps: int, workdir: Path) -> dict[str, Any]:
    return mlflow_direct(steps, f"sqlite:///{workdir / 'mlflow.db'}", synchronous=False, where=" (SQLite)")


CONTENDERS: dict[str, Callable[[int, Path], dict[str, Any]]] = {
    "unitrack": bench_unitrack,
    "tensorboard": bench_tensorboard,
    "wandb": bench_wandb,
    "mlflow-async": bench_mlflow_async,
    "mlflow-sync": bench_mlflow_sync,
}


def startup_costs() -> dict[str, float]:
    """Best of five: ``python -c "import unitrack"`` and ``unitrack --help``, and whether torch came along."""

    def best(command: list[str]) -> float:
        times = []
        for _ in range(5):
            started = time.perf_counter()
            subprocess.run(command, capture_output=True, check=True)
            times.append(time.perf_counter() - started)
        return min(times)

    exe = str(Path(sys.executable).with_name("unitrack"))
    probe = "import sys, unitrack; print('torch' in sys.modules)"
    torch_loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True).stdout.strip()
    return {
        "python_baseline_s": best([sys.executable, "-c", "pass"]),
        "import_s": best([sys.executable, "-c", "import unitrack"]),
        "help_s": best([exe, "--help"]),
        "torch_imported": torch_loaded == "True",
    }


def report(results: list[dict[str, Any]], startup: dict[str, float], args: argparse.Namespace) -> str:
    ours = next(r for r in results if r["name"].startswith("unitrack"))
    others = [r for r in results if r is not ours and "error" not in r]
    fastest = min(others, key=lambda r: r["median_us"]) if others else None
    rows = []
    for r in results:
        if "error" in r:
            rows.append([r["name"], "error: " + r["error"], "", "", "", ""])
            continue
        total = r["total_s"] * args.steps / r["steps"]
        note = "" if r["steps"] == args.steps else f" (extrapolated from {r['steps']} steps)"
        rows.append(
            [
                r["name"],
                f"{r['median_us']:.2f}",
                f"{r['p99_us']:.2f}",
                f"{total:.2f}{note}",
                f"{r['median_us'] / ours['median_us']:.0f}x" if r is not ours else "1x",
                f"{r['p99_us'] / ours['p99_us']:.0f}x" if r is not ours else "1x",
            ]
        )
    table = markdown_table(
        ["contender", "median µs/call", "p99 µs/call", f"total s, {args.steps} steps + final flush", "median vs unitrack", "p99 vs unitrack"],
        rows,
    )
    lines = [
        f"Command: `python -m bench.log_overhead --steps {args.steps} --write-doc` "
        f"({time.strftime('%Y-%m-%d')}, {machine()}). 5 scalars per step; each contender in a fresh interpreter.",
        "",
        table,
        "",
    ]
    if fastest:
        lines.append(
            f"unitrack's median call is {fastest['median_us'] / ours['median_us']:.0f}x below the fastest other "
            f"contender ({fastest['name']}); targets: median ≤ 3 µs, ≥ 30x below the fastest other, p99 ≤ 50 µs, "
            "total < 0.5 s."
        )
    lines.append(
        f"Start-up: `python -c \"import unitrack\"` {startup['import_s']:.3f} s "
        f"(bare interpreter {startup['python_baseline_s']:.3f} s; target < 0.15 s; torch imported: "
        f"{'yes' if startup['torch_imported'] else 'no'}), `unitrack --help` {startup['help_s']:.3f} s (target < 0.5 s)."
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--mlflow-sync-steps", type=int, default=1_000)
    parser.add_argument("--mlflow-async-steps", type=int, default=5_000)
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

    steps_for = {"mlflow-sync": min(args.steps, args.mlflow_sync_steps), "mlflow-async": min(args.steps, args.mlflow_async_steps)}
    results = []
    for name in args.only or list(CONTENDERS):
        results.append(run_contender("bench.log_overhead", name, "--steps", str(steps_for.get(name, args.steps))))
    text = report(results, startup_costs(), args)
    print(text)
    if args.write_doc:
        update_doc_section("log_overhead", text)


if __name__ == "__main__":
    main()
