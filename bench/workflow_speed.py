"""How long ``compare`` / ``explain`` take on big runs, and what ``unitrack commit`` adds to a command.

    python -m bench.workflow_speed --write-doc
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

from bench.common import ROOT, machine, markdown_table, update_doc_section

QUIET = {"monitoring": {"enabled": False}, "capture": {"packages": False}}


def make_runs(store: Path, metrics: int, steps: int, params: int) -> list[str]:
    import unitrack as ut

    ids = []
    for variant in (1.0, 2.0):
        with ut.ExperimentTracker("bench", {**QUIET, "store_dir": str(store)}) as tracker:
            tracker.log_hyperparameters({f"p{i}": i * variant for i in range(params)})
            for step in range(steps):
                tracker.log_metrics({f"m{k}/loss": variant / (step + 1 + k) for k in range(metrics)}, step=step)
        ids.append(tracker.run_id)
    return ids


def timed(argv: list[str], env: dict[str, str], repeat: int) -> list[str]:
    """Median wall-clock and CPU (user + system) seconds of a command, formatted.

    CPU time says what the command costs even when other work slows the wall clock down.
    """
    import resource

    walls, cpus = [], []
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(argv, env=env, check=True, capture_output=True)
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return [f"{median(walls):.2f}", f"{median(cpus):.2f}"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--metrics", type=int, default=20)
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--params", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--write-doc", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        store = Path(folder) / "store"
        a, b = make_runs(store, args.metrics, args.steps, args.params)
        env = {**os.environ, "PYTHONPATH": str(ROOT), "UNITRACK_DIR": str(store)}
        env = {k: v for k, v in env.items() if not k.startswith("ANTHROPIC")}
        cli = [sys.executable, "-m", "unitrack.cli.app"]
        rows = [
            ["`unitrack compare A B --json`", *timed([*cli, "compare", a, b, "--json"], env, args.repeat)],
            ["`unitrack compare A B` (tables)", *timed([*cli, "compare", a, b], env, args.repeat)],
            ["`unitrack explain A B` (rules)", *timed([*cli, "explain", a, b, "--provider", "rules"], env, args.repeat)],
            ["`python -c pass`", *timed([sys.executable, "-c", "pass"], env, args.repeat)],
            [
                "`unitrack commit -m x -- python -c pass`",
                *timed([*cli, "commit", "-m", "x", "--", sys.executable, "-c", "pass"], env, args.repeat),
            ],
        ]
    points = args.metrics * args.steps
    body = (
        f"Command: `python -m bench.workflow_speed --write-doc` ({time.strftime('%Y-%m-%d')}, {machine()}). "
        f"Two runs of {args.metrics} metrics × {args.steps:,} steps ({points:,} points each) and {args.params} params; "
        f"median of {args.repeat} wall-clock runs, interpreter start included; "
        f"load average {os.getloadavg()[0]:.1f} on the machine while it ran.\n\n"
        + markdown_table(["command", "wall s", "CPU s"], rows)
        + "\n\n`commit` of a command that does not use unitrack includes creating its run afterwards "
        "(git state, environment) and appending the outcome to the journal. `compare` and `explain` read both "
        "runs' curves from their columnar history (memory-mapped arrays, no JSON parsed; "
        "[architecture.md](architecture.md#the-read-path)): most of their time is start-up."
    )
    print(body)
    if args.write_doc:
        update_doc_section("workflow_speed", body)


if __name__ == "__main__":
    main()
