"""What the Optuna callback adds to each logged step, against ``log_metrics`` alone.

    python -m bench.optuna_overhead [--steps 20000] [--write-doc]

The same 5 scalars per step through: the tracker itself; a trial's tracker (``cb.track(trial)``)
logging keys that are not monitored (the wrapper alone); and a trial's tracker whose monitored key
is in every call (each call also reports to the trial and asks the pruner, with an in-memory
storage and a MedianPruner). Median and p99 of single calls, in one process, after a warm-up.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench.common import machine, markdown_table, update_doc_section
from bench.log_overhead import call_latency

Log = Callable[[dict[str, float], int], None]


def contenders(store: Path, stack: ExitStack) -> Iterator[tuple[str, Log]]:
    import optuna

    import unitrack as ut
    from unitrack.integrations.optuna import UnitrackOptunaCallback

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    config = {"store_dir": str(store), "monitoring": {"enabled": False}, "capture": {"packages": False}}
    tracker = stack.enter_context(ut.ExperimentTracker("bench", config))
    yield "tracker.log_metrics", lambda v, s: tracker.log_metrics(v, step=s)

    study = optuna.create_study(pruner=optuna.pruners.MedianPruner(n_warmup_steps=10**9))  # never prunes
    for monitor, label in ((None, "trial tracker, nothing monitored"), ("loss", "trial tracker, monitored key reported")):
        callback = UnitrackOptunaCallback("bench-optuna", config, monitor=monitor)
        stack.callback(callback.close)  # the runs end before the store is removed
        trial = study.ask()
        run = stack.enter_context(callback.track(trial))
        yield label, lambda v, s, run=run: run.log_metrics(v, step=s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20000)
    parser.add_argument("--write-doc", action="store_true")
    options = parser.parse_args()
    rows: list[list[Any]] = []
    base = None
    with tempfile.TemporaryDirectory() as workdir, ExitStack() as stack:
        for name, log in contenders(Path(workdir) / "store", stack):
            stats = call_latency(log, options.steps)
            base = base or stats["median_us"]
            rows.append([name, f"{stats['median_us']:.2f}", f"{stats['p99_us']:.2f}", f"{stats['median_us'] / base:.1f}×"])
    table = markdown_table(["one call of 5 scalars", "median µs", "p99 µs", "vs log_metrics"], rows)
    body = f"{table}\n\n{options.steps} calls each, {machine()}. `python -m bench.optuna_overhead --write-doc`"
    print(body)
    if options.write_doc:
        update_doc_section("optuna", "## Optuna sweeps: the callback's cost per step\n\n" + body)


if __name__ == "__main__":
    main()
