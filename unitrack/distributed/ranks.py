"""This process's place in a distributed job: its rank and the world size.

Read from ``torch.distributed`` when it is initialised, else from ``RANK``, ``LOCAL_RANK`` or
``SLURM_PROCID`` (the first one set, as Lightning reads them) and ``WORLD_SIZE`` / ``SLURM_NTASKS``.
torch is never imported here: a process without it is rank 0.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from unitrack.errors import UnitrackError

RANK_ENV = ("RANK", "LOCAL_RANK", "SLURM_PROCID")
WORLD_SIZE_ENV = ("WORLD_SIZE", "SLURM_NTASKS")


@dataclass(frozen=True)
class RankInfo:
    """This process's place in the job."""

    rank: int
    world_size: int

    @property
    def distributed(self) -> bool:
        return self.world_size > 1 or self.rank > 0


def current_rank() -> RankInfo:
    """The rank and world size: from ``torch.distributed`` when initialised, else the environment."""
    dist = sys.modules.get("torch.distributed")  # never imported here: a process without torch is rank 0
    if dist is not None and dist.is_available() and dist.is_initialized():
        return RankInfo(dist.get_rank(), dist.get_world_size())
    rank = _first_int(RANK_ENV, 0)
    return RankInfo(rank, max(_first_int(WORLD_SIZE_ENV, 1), rank + 1))


def _first_int(names: Sequence[str], default: int) -> int:
    for name in names:
        text = os.environ.get(name, "").strip()
        if text:
            try:
                return int(text)
            except ValueError:
                raise UnitrackError(f"environment variable {name}={text!r} is not an integer") from None
    return default
