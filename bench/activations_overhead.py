"""What activation statistics cost a training step: a small CNN with ``activations_every`` 1, 10 and off.

    python -m bench.activations_overhead [--steps 300] [--write-doc]

One training step (forward, backward, SGD step, ``log_metrics``) of a small CNN on a batch of 64
8x8 images, on the CPU. The three set-ups run interleaved, in rounds, so that the machine's load
drifts over all of them alike. For ``every 10`` the steps between samples are also timed alone:
the cost a run pays on the steps it does not sample.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import machine, markdown_table, update_doc_section

ROUNDS = 5


def make_setup(store: Path, every: int | None) -> tuple[Any, Any]:
    import torch
    from torch import nn

    import unitrack as ut

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(32 * 64, 64), nn.ReLU(), nn.Linear(64, 10),
    )  # fmt: skip
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    config = {"store_dir": str(store), "monitoring": {"enabled": False}, "capture": {"packages": False}}
    tracker = ut.ExperimentTracker("bench-activations", config)
    if every is not None:
        tracker.watch(model, activations_every=every, log_params=False)
    loss_fn = nn.CrossEntropyLoss()
    x, y = torch.randn(64, 1, 8, 8), torch.randint(0, 10, (64,))
    step = [0]

    def train_step() -> None:
        loss = loss_fn(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        tracker.log_metrics({"loss": loss.detach()}, step=step[0])
        step[0] += 1

    return train_step, tracker


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="steps per set-up and round")
    parser.add_argument("--write-doc", action="store_true")
    options = parser.parse_args()
    torch.set_num_threads(1)
    setups = {"off": None, "every 10": 10, "every 1": 1}
    times: dict[str, list[float]] = {name: [] for name in setups}
    between: list[float] = []  # every 10: the steps it does not sample
    with tempfile.TemporaryDirectory() as workdir:
        made = {name: make_setup(Path(workdir) / "store", every) for name, every in setups.items()}
        for train_step, _ in made.values():
            for _ in range(20):  # warm-up
                train_step()
        for _ in range(ROUNDS):
            for name, (train_step, _) in made.items():
                for index in range(options.steps):
                    started = time.perf_counter()
                    train_step()
                    elapsed = time.perf_counter() - started
                    times[name].append(elapsed)
                    if name == "every 10" and index % 10:
                        between.append(elapsed)
        for _, tracker in made.values():
            tracker.finish()
    off = statistics.median(times["off"])
    rows = [[name, f"{1e3 * statistics.median(v):.3f}", f"{statistics.median(v) / off:.2f}×"] for name, v in times.items()]
    rows.append(["every 10, steps not sampled", f"{1e3 * statistics.median(between):.3f}", f"{statistics.median(between) / off:.2f}×"])
    table = markdown_table(["activations", "median step ms", "vs off"], rows)
    body = (
        f"{table}\n\n{ROUNDS} interleaved rounds of {options.steps} steps each, one torch thread, {machine()}. "
        "`python -m bench.activations_overhead --write-doc`"
    )
    print(body)
    if options.write_doc:
        update_doc_section("activations", "## Activation statistics\n\n" + body)


if __name__ == "__main__":
    main()
