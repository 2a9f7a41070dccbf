"""Backend libraries speak through their loggers, at WARNING and above.

MLflow logs its database migrations at INFO on its own stderr handler, W&B prints progress and
advice ("Symlinked 1 file...", "Adding directory to artifact...") straight to the terminal: in
the user's training output, that is noise between unitrack's own warnings. Each backend calls
:func:`quiet_loggers` after importing its library; ``UNITRACK_DEBUG=1`` leaves them as they are.
"""

from __future__ import annotations

import logging
import os
from types import SimpleNamespace
from typing import Any

DEBUG_ENV = "UNITRACK_DEBUG"


def debugging() -> bool:
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


def quiet_loggers(*names: str) -> None:
    """Raise each named logger to WARNING (never lower a stricter level the user set)."""
    if debugging():
        return
    for name in names:
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() < logging.WARNING:
            logger.setLevel(logging.WARNING)


def quiet_wandb_terminal(wandb: Any) -> None:
    """Send W&B's terminal messages to the ``wandb.terminal`` logger (at WARNING) instead of stderr.

    W&B's setup resets this on the first ``wandb.init`` of a process, so call it after each init.
    """
    if debugging():
        return
    quiet_loggers("wandb.terminal")
    settings = SimpleNamespace(silent=True, show_info=False, show_warnings=True, show_errors=True)
    wandb.termsetup(settings, logging.getLogger("wandb.terminal"))
