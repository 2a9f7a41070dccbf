"""Another rank's events through torch.distributed's store: what a call costs, and that all arrive.

    python -m bench.rank_channel [--steps 20000] [--write-doc]

Rank 0 and rank 1 of a pretend ``torchrun`` job live in one process around a real TCPStore (the
one torchrun's agent holds): rank 1 logs 5 scalars per step under ``rank_policy: all``, rank 0
merges what it sends. We time rank 1's calls (median, p99), then the time from rank 1's
``finish()`` until rank 0's run holds every point, and count them (nothing lost, nothing twice).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import latency_stats, machine, markdown_table, update_doc_section
from bench.log_overhead import METRICS, timed_loop


def run(steps: int, workdir: Path) -> dict[str, Any]:
    import torch.distributed as dist

    import unitrack as ut
    from unitrack.distributed import rendezvous
    from unitrack.store.journal import read_journal

    server = dist.TCPStore("127.0.0.1", 0, is_master=True, wait_for_workers=False)  # as torchrun's agent holds it
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(server.port), TORCHELASTIC_USE_AGENT_STORE="True",
                      WORLD_SIZE="2")  # fmt: skip
    config = {"store_dir": str(workdir / "store"), "monitoring": {"enabled": False}, "capture": {"packages": False},
              "tracking": {"rank_policy": "all"}}  # fmt: skip
    os.environ["RANK"] = "0"
    owner = ut.ExperimentTracker("bench-ranks", config)
    os.environ["RANK"] = "1"
    rendezvous._generations.clear()
    follower = ut.ExperimentTracker("bench-ranks", config)
    samples, _ = timed_loop(steps, lambda values, step: follower.log_metrics(values, step=step))
    started = time.perf_counter()
    follower.finish()
    owner.finish()
    delivered = time.perf_counter() - started
    records = read_journal(owner.run_dir / "events.jsonl", 0).records
    points = [r["step"] for r in records if r["kind"] == "metric" and f"rank1/{METRICS[0]}" in r["values"]]
    del server
    return {**latency_stats(samples), "delivered_s": delivered, "points": len(points), "unique": len(set(points))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20000)
    parser.add_argument("--write-doc", action="store_true")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        result = run(options.steps, Path(workdir))
    table = markdown_table(
        ["rank 1, rank_policy all, through the store", "median µs", "p99 µs", "finish → all in rank 0's run", "points arrived"],
        [["log_metrics, 5 scalars", f"{result['median_us']:.2f}", f"{result['p99_us']:.2f}",
          f"{result['delivered_s']:.2f} s", f"{result['points']} of {options.steps} ({result['unique']} distinct)"]],
    )  # fmt: skip
    body = (f"{table}\n\nThe time from finish includes rank 0's whole finish (its journal, summary and index of "
            f"the merged points). {machine()}. `python -m bench.rank_channel --write-doc`")
    print(body)
    if options.write_doc:
        update_doc_section("rank-channel", "## Another rank's events through torch.distributed's store\n\n" + body)


if __name__ == "__main__":
    main()
