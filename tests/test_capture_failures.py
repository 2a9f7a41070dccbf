"""The system monitor and the GPU probe say once, with the cause, when they cannot measure."""

from __future__ import annotations

import logging
import sys
import types
from pathlib import Path

import pytest

from unitrack.capture import gpu
from unitrack.capture.system import SystemMonitor
from unitrack.config import MonitoringConfig


@pytest.fixture
def fresh_gpu_state(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gpu, "_state", {})
    monkeypatch.setattr(gpu, "_reported", set())


class NVMLError_Unknown(Exception):  # named as pynvml names its errors
    pass


def _broken_pynvml(error: Exception) -> types.ModuleType:
    module = types.ModuleType("pynvml")

    def init() -> None:
        raise error

    module.nvmlInit = init  # type: ignore[attr-defined]
    return module


def test_nvml_failure_is_a_warning_with_its_cause_logged_once(
    fresh_gpu_state: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", _broken_pynvml(NVMLError_Unknown("driver/library version mismatch")))
    caplog.set_level(logging.INFO, logger="unitrack")
    assert gpu.gpu_sample() == {}
    assert gpu.gpu_inventory() == []
    records = [r for r in caplog.records if "NVML" in r.getMessage()]
    assert len(records) == 1
    assert records[0].levelno == logging.WARNING
    assert "NVMLError_Unknown" in records[0].getMessage() and "version mismatch" in records[0].getMessage()


def test_no_gpu_driver_is_only_info(
    fresh_gpu_state: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    not_found = type("NVMLError_LibraryNotFound", (Exception,), {})("NVML Shared Library Not Found")
    monkeypatch.setitem(sys.modules, "pynvml", _broken_pynvml(not_found))
    caplog.set_level(logging.INFO, logger="unitrack")
    assert gpu.gpu_sample() == {}
    (record,) = [r for r in caplog.records if "NVML" in r.getMessage()]
    assert record.levelno == logging.INFO


def test_a_failing_sample_is_reported_once_and_monitoring_goes_on(
    fresh_gpu_state: None, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    samples: list[dict[str, float]] = []
    settings = MonitoringConfig(interval=0.01, log_gpu_usage=False)
    monitor = SystemMonitor(settings, tmp_path / "no-such-disk", samples.append)
    caplog.set_level(logging.WARNING, logger="unitrack")
    for _ in range(3):
        samples.append(monitor.sample())
    assert all("cpu/process_percent" in s and "disk/used_percent" not in s for s in samples)
    disk = [r for r in caplog.records if "disk usage" in r.getMessage()]
    assert len(disk) == 1 and "FileNotFoundError" in disk[0].getMessage()
