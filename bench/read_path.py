"""The read path: whole-process times of the reading commands, ``open_run().history()`` in process,
the history's size on disk, and MLflow's own listing and metric history for reference.

    python -m bench.read_path --write-doc            # add --no-mlflow to skip the MLflow server

Stores: 1,000 runs for ``ls`` (one real run, cloned with its own ids and params, then indexed);
two runs of 20,000 steps × 5 metrics for ``compare`` / ``explain`` / ``export``; one run of one
metric × 100,000 steps for ``history()`` and MLflow's ``get_metric_history``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import ROOT, machine, markdown_table, update_doc_section

QUIET = {"monitoring": {"enabled": False}, "capture": {"packages": False}}
UNITRACK = str(Path(sys.executable).with_name("unitrack"))


def make_run(store: Path, name: str, params: dict[str, Any], metrics: int, steps: int, variant: float) -> str:
    import unitrack as ut

    with ut.ExperimentTracker(name, {**QUIET, "store_dir": str(store)}) as tracker:
        tracker.log_hyperparameters(params)
        keys = [f"m{k}/loss" for k in range(metrics)]
        for step in range(steps):
            tracker.log_metrics({key: variant / (step + 1 + k) for k, key in enumerate(keys)}, step=step)
    return tracker.run_id


def clone_runs(store: Path, count: int) -> None:
    """``count`` runs made by copying one real run folder under fresh ids, then indexed."""
    from unitrack.names import new_run_id
    from unitrack.store.runs import RunStore

    source_id = make_run(store, "sweep", {"lr": 0.1, "batch": 32, "opt": "adam"}, 5, 50, 1.0)
    source = store / "runs" / source_id
    for i in range(count - 1):
        run_id = new_run_id()
        target = store / "runs" / run_id
        shutil.copytree(source, target)
        run = json.loads((target / "run.json").read_text())
        run.update(run_id=run_id, name=f"sweep-{i}", tags={"seed": str(i % 7)})
        (target / "run.json").write_text(json.dumps(run))
        (target / "params.json").write_text(json.dumps({"lr": 0.1 / (1 + i % 10), "batch": 32 * (1 + i % 4), "opt": "adam"}))
    RunStore(store).reindex()


def timed(argv: list[str], env: dict[str, str], repeat: int) -> tuple[float, float]:
    """Median wall-clock and CPU (user + system) seconds of a whole process, after one warm-up run
    (which also writes the bytecode a user's installation has).

    The CPU time says what a command costs even when other work on the machine slows the wall clock.
    """
    import resource

    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    walls, cpus = [], []
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(walls), statistics.median(cpus)


def history_in_process(store: Path, ref: str, key: str, repeat: int) -> float:
    """Median seconds of ``open_run(ref).history(key)``, touching every value, in this process."""
    import unitrack as ut

    ut.open_run(ref, store=store).history(key)  # imports and the first catch-up out of the way
    walls = []
    for _ in range(repeat):
        start = time.perf_counter()
        steps, values = ut.open_run(ref, store=store).history(key)
        float(values.sum()) + int(steps[-1])
        walls.append(time.perf_counter() - start)
    return statistics.median(walls)


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def mlflow_reference(folder: Path, steps: int, repeat: int) -> list[list[str]]:
    """``mlflow runs list`` and ``MlflowClient().get_metric_history`` of one 100,000-point metric on a local server."""
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    command = [
        sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--backend-store-uri", f"sqlite:///{folder}/mlflow.db", "--default-artifact-root", str(folder / "mlruns"),
    ]  # fmt: skip
    # its own process group: the server's workers and job runner are stopped with it
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        from mlflow.entities import Metric
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=uri)
        deadline = time.monotonic() + 180
        while True:
            try:
                experiment = client.create_experiment("bench")
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)
        run = client.create_run(experiment)
        now = int(time.time() * 1000)
        for start in range(0, steps, 1000):
            batch = [Metric("m0/loss", 1.0 / (s + 1), now + s, s) for s in range(start, min(steps, start + 1000))]
            client.log_batch(run.info.run_id, metrics=batch)
        client.set_terminated(run.info.run_id)
        env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
        listing, _ = timed([sys.executable, "-m", "mlflow", "runs", "list", "--experiment-id", experiment], env, repeat)
        walls = []
        for _ in range(repeat):
            start = time.perf_counter()
            points = MlflowClient(tracking_uri=uri).get_metric_history(run.info.run_id, "m0/loss")
            walls.append(time.perf_counter() - start)
        assert len(points) == steps
        return [
            ["`mlflow runs list` (1 run, local server)", f"{listing:.2f} s"],
            [f"`MlflowClient().get_metric_history` ({steps:,} points, local server)", f"{statistics.median(walls) * 1000:.0f} ms"],
        ]
    finally:
        import signal

        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--long", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-mlflow", action="store_true")
    parser.add_argument("--write-doc", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        many, two = folder / "many", folder / "two"
        clone_runs(many, args.runs)
        a = make_run(two, "bench", {f"p{i}": i for i in range(20)}, 5, args.steps, 1.0)
        b = make_run(two, "bench", {f"p{i}": i * 2 for i in range(20)}, 5, args.steps, 2.0)
        long_run = make_run(two, "long", {}, 1, args.long, 1.0)
        # bytecode is written as an installed package has it (some shells set PYTHONDONTWRITEBYTECODE)
        drop = ("ANTHROPIC", "UNITRACK", "PYTHONDONTWRITEBYTECODE")
        base = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
        env_many = {**base, "PYTHONPATH": str(ROOT), "UNITRACK_DIR": str(many)}
        env_two = {**base, "PYTHONPATH": str(ROOT), "UNITRACK_DIR": str(two)}
        for ref in (a, b, long_run):  # a first read builds nothing: the writer kept each history
            subprocess.run([UNITRACK, "show", ref, "--json"], env=env_two, check=True, stdout=subprocess.DEVNULL)
        rows = [
            ["`unitrack --help`", timed([UNITRACK, "--help"], env_many, args.repeat), 0.25],
            [f"`unitrack ls` ({args.runs:,} runs)", timed([UNITRACK, "ls"], env_many, args.repeat), 0.25],
            [f"`unitrack ls --json` ({args.runs:,} runs)", timed([UNITRACK, "ls", "--json"], env_many, args.repeat), None],
            ["`unitrack show latest`", timed([UNITRACK, "show", "latest"], env_many, args.repeat), 0.25],
            ["`unitrack compare A B --json`", timed([UNITRACK, "compare", a, b, "--json"], env_two, args.repeat), 0.5],
            ["`unitrack explain A B --json`", timed([UNITRACK, "explain", a, b, "--json"], env_two, args.repeat), 0.5],
            ["`unitrack export A --json`", timed([UNITRACK, "export", a, "--json"], env_two, args.repeat), 0.6],
            ["`python -c pass` (the interpreter alone)", timed([sys.executable, "-c", "pass"], env_two, args.repeat), None],
        ]
        load = os.getloadavg()[0]  # over the last minute: while the commands above ran, before MLflow's server
        history_s = history_in_process(two, long_run, "m0/loss", args.repeat * 4)
        journal = (two / "runs" / long_run / "events.jsonl").stat().st_size
        history_size = folder_bytes(two / "runs" / long_run / "history")
        journal_a = (two / "runs" / a / "events.jsonl").stat().st_size
        history_a = folder_bytes(two / "runs" / a / "history")
        reference = [] if args.no_mlflow else mlflow_reference(folder, args.long, args.repeat)
    table = markdown_table(
        ["command (whole process)", "wall s", "CPU s", "target"],
        [[name, f"{wall:.2f}", f"{cpu:.2f}", f"≤ {target} s" if target else ""] for name, (wall, cpu), target in rows],
    )
    body = (
        f"Command: `python -m bench.read_path {' '.join(sys.argv[1:])}` ({time.strftime('%Y-%m-%d')}, {machine()}); "
        f"median of {args.repeat} runs after a warm-up, warm page cache, load average {load:.1f} while the commands ran "
        "(CPU = user + system time of the process, what it costs whatever else the machine runs). "
        f"A and B: 5 metrics × {args.steps:,} steps ({5 * args.steps:,} points each).\n\n"
        + table
        + "\n\n"
        + markdown_table(
            ["in process / on disk", "figure"],
            [
                [f"`open_run(ref).history(key)`, {args.long:,} points", f"{history_s * 1000:.1f} ms (target ≤ 20 ms)"],
                [f"journal of the {args.long:,}-point run", f"{journal / 1e6:.1f} MB"],
                ["its columnar history", f"{history_size / 1e6:.1f} MB ({history_size / journal:.0%} of the journal)"],
                [f"journal of A ({5 * args.steps:,} points, 5 per line)", f"{journal_a / 1e6:.1f} MB"],
                ["A's columnar history", f"{history_a / 1e6:.1f} MB ({history_a / journal_a:.0%} of the journal)"],
                *reference,
            ],
        )
    )
    print(body)
    if args.write_doc:
        update_doc_section("read_path", body)


if __name__ == "__main__":
    main()
