"""Training progress with an ETA: a rich bar in a terminal, throughput and ETA as metrics always.

The bar follows the tracker's step counter from its own thread, so the training loop pays
nothing for it: no call per step, no lock. Outside a terminal (CI logs, nohup) the bar stays
quiet and only the metrics are logged.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

THROUGHPUT_KEY = "progress/steps_per_s"
ETA_KEY = "progress/eta_s"
FRACTION_KEY = "progress/fraction"


@dataclass(frozen=True)
class ProgressSample:
    """Where training stands: steps done out of ``total``, at what rate, and the time left."""

    done: int
    total: int
    steps_per_s: float
    eta_s: float

    def as_metrics(self) -> dict[str, float]:
        return {THROUGHPUT_KEY: self.steps_per_s, ETA_KEY: self.eta_s, FRACTION_KEY: self.done / self.total}


def estimate(done: int, total: int, started_step: int, elapsed_s: float) -> ProgressSample:
    """Throughput since the bar started and the ETA it implies (inf until a step has been made)."""
    made = max(0, done - started_step)
    rate = made / elapsed_s if elapsed_s > 0 else 0.0
    left = max(0, total - done)
    eta = left / rate if rate > 0 else float("inf")
    return ProgressSample(done=min(done, total), total=total, steps_per_s=rate, eta_s=eta)


class ProgressReporter:
    """Samples ``read_step()`` every ``interval`` seconds; draws the bar and reports samples.

    ``report`` receives each sample with the step it belongs to (the tracker logs it as metrics).
    """

    def __init__(
        self,
        total: int,
        read_step: Callable[[], int],
        report: Callable[[ProgressSample, int], None],
        *,
        description: str = "training",
        interval: float = 1.0,
        stream: TextIO | None = None,
    ) -> None:
        if type(total) is not int or total <= 0:
            raise ValueError(f"progress total must be a positive int, not {total!r}")
        self.total = total
        self._read_step = read_step
        self._report = report
        self._interval = interval
        self._stream = stream or sys.stderr
        self._description = description
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="unitrack-progress", daemon=True)
        self._first_step = read_step()
        self._started = time.monotonic()
        self._bar: Any = None
        self._task: Any = None

    @property
    def interactive(self) -> bool:
        isatty = getattr(self._stream, "isatty", None)
        return bool(isatty and isatty())

    def start(self) -> ProgressReporter:
        if self.interactive:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"),
                TimeRemainingColumn(),
                console=Console(file=self._stream),
                transient=False,
            )
            self._task = self._bar.add_task(self._description, total=self.total, rate="")
            self._bar.start()
        self._thread.start()
        return self

    def sample(self) -> ProgressSample:
        return estimate(self._read_step(), self.total, self._first_step, time.monotonic() - self._started)

    def stop(self) -> None:
        """Stop sampling, report a last sample and close the bar; safe to call twice."""
        if self._stop.is_set():
            return
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2 * self._interval + 1)
        self._tick()
        if self._bar is not None:
            self._bar.stop()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._tick()

    def _tick(self) -> None:
        sample = self.sample()
        if self._bar is not None:
            self._bar.update(self._task, completed=sample.done, rate=f"{sample.steps_per_s:,.1f} steps/s")
        if sample.done > self._first_step:
            self._report(sample, max(0, sample.done - 1))
