"""What an integration adds to each logging call, and what a non-zero rank pays.

    python -m bench.integrations_overhead [--steps 20000] [--write-doc]

The same 5 scalars per step through: the tracker itself (rank 0), Lightning's
``UnitrackLogger.log_metrics``, the Hugging Face ``UnitrackCallback.on_log`` (which also renames
keys by split), and the tracker of a rank other than 0 under ``rank_policy: rank0`` (a no-op).
Median and p99 of single calls, in one process, after a warm-up.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import machine, markdown_table, update_doc_section
from bench.log_overhead import call_latency

Log = Callable[[dict[str, float], int], None]


def contenders(store: Path) -> list[tuple[str, Log, Callable[[], None]]]:
    import unitrack as ut
    from unitrack.distributed import rendezvous

    config = {"store_dir": str(store), "monitoring": {"enabled": False}, "capture": {"packages": False}}
    tracker = ut.ExperimentTracker("bench", config)

    from unitrack.integrations.lightning import UnitrackLogger

    lightning = UnitrackLogger("bench-lightning", config)

    from transformers import TrainerControl, TrainerState, TrainingArguments

    from unitrack.integrations.huggingface import UnitrackCallback

    callback = UnitrackCallback("bench-hf", config)
    args = TrainingArguments(output_dir=str(store / "hf"), report_to="none", use_cpu=True)
    state, control = TrainerState(), TrainerControl()

    def hf_log(values: dict[str, float], step: int) -> None:
        state.global_step = step
        callback.on_log(args, state, control, logs=values)

    os.environ.update(RANK="1", WORLD_SIZE="2")
    rendezvous._generations.clear()
    follower = ut.ExperimentTracker("bench-rank1", config)
    del os.environ["RANK"], os.environ["WORLD_SIZE"]

    return [
        ("tracker.log_metrics (rank 0)", lambda v, s: tracker.log_metrics(v, step=s), tracker.finish),
        ("Lightning UnitrackLogger.log_metrics", lambda v, s: lightning.log_metrics(v, step=s), lightning.finish),
        ("Hugging Face UnitrackCallback.on_log", hf_log, callback.finish),
        ("rank 1 under rank_policy rank0 (no-op)", lambda v, s: follower.log_metrics(v, step=s), follower.finish),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20000)
    parser.add_argument("--write-doc", action="store_true")
    options = parser.parse_args()
    rows: list[list[Any]] = []
    with tempfile.TemporaryDirectory() as workdir:
        for name, log, finish in contenders(Path(workdir) / "store"):
            stats = call_latency(log, options.steps)
            finish()
            rows.append([name, f"{stats['median_us']:.2f}", f"{stats['p99_us']:.2f}"])
    table = markdown_table(["one call of 5 scalars", "median µs", "p99 µs"], rows)
    body = f"{table}\n\n{options.steps} calls each, {machine()}. `python -m bench.integrations_overhead --write-doc`"
    print(body)
    if options.write_doc:
        update_doc_section("integrations", "## Integrations and distributed ranks\n\n" + body)


if __name__ == "__main__":
    main()
