"""NVIDIA GPUs through NVML (pynvml): names and live utilisation, or nothing when there is no GPU."""

from __future__ import annotations

import threading
from typing import Any

_lock = threading.Lock()
_state: dict[str, Any] = {}


def _nvml() -> Any | None:
    """The initialised pynvml module, or None where NVML is missing (no driver, no GPU)."""
    with _lock:
        if "module" not in _state:
            try:
                import pynvml

                pynvml.nvmlInit()
                _state["module"] = pynvml
            except Exception:
                _state["module"] = None
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
    except Exception:
        return gpus
    return gpus


def gpu_sample() -> dict[str, float]:
    """Utilisation, memory, temperature and power of every GPU, keyed ``gpu/<i>/<what>``."""
    nvml = _nvml()
    if nvml is None:
        return {}
    values: dict[str, float] = {}
    try:
        count = nvml.nvmlDeviceGetCount()
    except Exception:
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
        except Exception:
            continue  # a GPU that does not report a field (power on some boards) keeps the others
    return values
