"""The environment a run ran in: interpreter, OS, host, packages, torch / CUDA / cuDNN, GPUs."""

from __future__ import annotations

import os
import platform
import socket
import sys
from importlib import metadata
from typing import Any

from unitrack.capture.gpu import gpu_inventory
from unitrack.redact import redact_argv


def installed_packages() -> dict[str, str]:
    """Every installed distribution and its version, sorted by name."""
    packages: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            packages[name] = dist.version
    return dict(sorted(packages.items(), key=lambda item: item[0].lower()))


def torch_info() -> dict[str, Any]:
    """torch, CUDA and cuDNN versions; torch is inspected only if the program already imported it."""
    torch = sys.modules.get("torch")
    if torch is None:
        try:
            return {"version": metadata.version("torch"), "imported": False}
        except metadata.PackageNotFoundError:
            return {}
    info: dict[str, Any] = {"version": str(torch.__version__), "imported": True}
    info["cuda"] = getattr(torch.version, "cuda", None)
    try:
        info["cudnn"] = torch.backends.cudnn.version()
        info["cuda_available"] = bool(torch.cuda.is_available())
        info["device_count"] = torch.cuda.device_count() if info["cuda_available"] else 0
    except Exception:
        pass
    return info


def capture_environment(include_packages: bool = True) -> dict[str, Any]:
    """A JSON-ready description of where this process runs."""
    import psutil

    info: dict[str, Any] = {
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "executable": sys.executable,
        "platform": platform.platform(),
        "os": platform.system(),
        "os_release": platform.release(),
        "machine": platform.machine(),
        "hostname": socket.gethostname(),
        "cpu_count": os.cpu_count(),
        "memory_total_mb": round(psutil.virtual_memory().total / 2**20),
        "cwd": os.getcwd(),
        "argv": redact_argv(list(sys.argv)),
        "torch": torch_info(),
        "gpus": gpu_inventory(),
    }
    if include_packages:
        info["packages"] = installed_packages()
    return info
