"""The system monitor: a daemon thread sampling CPU, memory, disk and GPUs every few seconds.

A failure is logged once with its cause (never silently swallowed: a run without system metrics
should say why), and never ends monitoring or reaches the training loop.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from unitrack.capture.gpu import gpu_sample, report_once

if TYPE_CHECKING:  # capture depends on no config at run time: config validation imports the backends, which use capture
    from unitrack.config import MonitoringConfig

Sample = dict[str, float]


class SystemMonitor:
    """Calls ``emit(values)`` with one sample at start, one every ``interval`` seconds, and one when stopped.

    The first and last samples make a run shorter than the interval still record its usage.
    """

    def __init__(self, settings: MonitoringConfig, disk_path: Path, emit: Callable[[Sample], None]) -> None:
        self.settings = settings
        self._disk_path = disk_path
        self._emit = emit
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="unitrack-monitor", daemon=True)
        self._process: Any = None

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def sample(self) -> Sample:
        """One sample of everything the settings ask for."""
        import psutil

        if self._process is None:
            self._process = psutil.Process(os.getpid())
            self._process.cpu_percent(None)  # the first call only sets the baseline
        values: Sample = {}
        s = self.settings
        if s.log_cpu_usage:
            values["cpu/process_percent"] = self._process.cpu_percent(None)
            values["cpu/system_percent"] = psutil.cpu_percent(None)
        if s.log_memory_usage:
            memory = psutil.virtual_memory()
            values["memory/process_rss_mb"] = self._process.memory_info().rss / 2**20
            values["memory/system_used_percent"] = memory.percent
            values["memory/system_available_mb"] = memory.available / 2**20
        if s.log_disk_usage:
            try:
                values["disk/used_percent"] = psutil.disk_usage(str(self._disk_path)).percent
            except OSError as exc:
                report_once(f"reading the disk usage of {self._disk_path}", exc)
        if s.log_gpu_usage:
            values.update(gpu_sample())
        return values

    def _run(self) -> None:
        try:
            first = self.sample()  # also the baseline for the CPU percentages
        except Exception as exc:
            report_once("the system monitor's first sample (no system metrics for this run)", exc)
            return
        # CPU percentages need an interval to be measured over: the first sample has none
        self._send(lambda: {k: v for k, v in first.items() if not k.startswith("cpu/")})
        while not self._stop.wait(self.settings.interval):
            self._send(self.sample)
        self._send(self.sample)  # the last one, at stop: usage since the previous sample

    def _send(self, take: Callable[[], Sample]) -> None:
        try:
            values = take()
            if values:
                self._emit(values)
        except Exception as exc:  # one bad sample never ends monitoring
            report_once("a system monitor sample", exc)
