"""NVIDIA GPUs through NVML (pynvml): names and live utilisation, or nothing when there is no GPU.

Every failure is logged once with its cause: without that, an NVML problem on a GPU machine
(a driver mismatch, a permission) would make the run look like it ran on a CPU, with no hint why.
A machine without the NVML library or driver is the ordinary CPU case and is logged at INFO.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

log = logging.getLogger("unitrack")

_lock = threading.Lock()
_state: dict[str, Any] = {}
_reported: set[str] = set()
# NVML's own names for "this machine has no NVIDIA driver": expected on CPU machines
_NO_GPU_ERRORS = ("NVMLError_LibraryNotFound", "NVMLError_DriverNotLoaded", "ModuleNotFoundError", "ImportError")


def report_once(what: str, exc: BaseException, level: int = logging.WARNING) -> None:
    """Log ``what`` failed, with its cause, the first time this (what, cause type) happens."""
    key = f"{what}:{type(exc).__name__}"
    with _lock:
        if key in _reported:
            return
        _reported.add(key)
    log.log(level, "unitrack: %s failed (%s: %s); reported once", what, type(exc).__name__, exc)


def _nvml() -> Any | None:
    """The initialised pynvml module, or None where NVML is missing (no driver, no GPU)."""
    with _lock:
        if "module" in _state:
            return _state["module"]
    try:
        import pynvml

        pynvml.nvmlInit()
        module: Any = pynvml
    except Exception as exc:
        level = logging.INFO if type(exc).__name__ in _NO_GPU_ERRORS else logging.WARNING
        report_once("NVML initialisation (no GPU metrics or inventory)", exc, level)
        module = None
    with _lock:
        _state.setdefault("module", module)
        return _state["module"]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def gpu_inventory() -> list[dict[str, Any]]:
    """The GPUs of this machine with their name, memory and driver version."""
    nvml = _nvml()
    if nvml is None:
        return []
    gpus = []
    try:
        driver = _text(nvml.nvmlSystemGetDriverVersion())
        for index in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            memory = nvml.nvmlDeviceGetMemoryInfo(handle)
            gpus.append(
                {
                    "index": index,
                    "name": _text(nvml.nvmlDeviceGetName(handle)),
                    "memory_total_mb": round(memory.total / 2**20),
                    "driver": driver,
                }
            )
    except Exception as exc:
        report_once("the GPU inventory", exc)
    return gpus


def gpu_sample() -> dict[str, float]:
    """Utilisation, memory, temperature and power of every GPU, keyed ``gpu/<i>/<what>``."""
    nvml = _nvml()
    if nvml is None:
        return {}
    values: dict[str, float] = {}
    try:
        count = nvml.nvmlDeviceGetCount()
    except Exception as exc:
        report_once("counting the GPUs", exc)
        return values
    for index in range(count):
        prefix = f"gpu/{index}/"
        try:
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            rates = nvml.nvmlDeviceGetUtilizationRates(handle)
            memory = nvml.nvmlDeviceGetMemoryInfo(handle)
            values[prefix + "utilization_percent"] = float(rates.gpu)
            values[prefix + "memory_used_mb"] = memory.used / 2**20
            values[prefix + "memory_percent"] = 100.0 * memory.used / memory.total if memory.total else 0.0
            values[prefix + "temperature_c"] = float(nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU))
            values[prefix + "power_w"] = nvml.nvmlDeviceGetPowerUsage(handle) / 1000.0
        except Exception as exc:  # a GPU that does not report a field (power on some boards) keeps the others
            report_once(f"sampling GPU {index}", exc)
    return values
