"""Tiny deterministic models and training steps shared by the checkpoint tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from tests.conftest import quiet_config


def make_model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Dropout(0.2), torch.nn.Linear(16, 1))


def train_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> float:
    """One step on a fresh random batch: depends on the torch RNG, so an exact resume needs it restored."""
    x = torch.randn(16, 4)
    y = x.sum(dim=1, keepdim=True)
    optimizer.zero_grad()
    loss = torch.nn.functional.mse_loss(model(x), y)
    loss.backward()
    optimizer.step()
    return loss.item()


def config(**checkpointing: Any) -> dict[str, Any]:
    return quiet_config(checkpointing=checkpointing)


def flip_last_tensor_byte(folder: Path, file_name: str = "model.safetensors") -> None:
    path = folder / file_name
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))
