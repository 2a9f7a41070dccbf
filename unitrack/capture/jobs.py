"""The tracker's slow captures, run on one background thread so that the training loop never waits.

What is captured at a run's start (git state and patch, the environment) and by ``watch`` (the
model, its loss and data, their sources) can take seconds. :class:`CaptureJobs` runs such jobs
one after the other; a failing job is a warning, never a failed run. ``flush()`` and ``finish()``
wait for them, bounded.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from pathlib import Path
from typing import TYPE_CHECKING, Any

from unitrack.capture.environment import capture_environment
from unitrack.capture.git import capture_git
from unitrack.capture.model import (
    describe_dataloader,
    describe_loss,
    describe_model,
    describe_optimizer,
    describe_scheduler,
    setup_params,
)
from unitrack.capture.source import model_sources
from unitrack.params import flatten_params
from unitrack.store.artifacts import RunArtifacts
from unitrack.store.fsio import atomic_write_json
from unitrack.store.runfile import RunFile

if TYPE_CHECKING:  # see capture/system.py
    from unitrack.config import CaptureConfig

log = logging.getLogger("unitrack")


class CaptureJobs:
    """One worker thread for capture jobs; :meth:`wait` bounds how long a caller waits for them."""

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="unitrack-capture")
        self._futures: list[Future[Any]] = []

    def submit(self, job: Callable[..., Any], *args: Any) -> None:
        self._futures = [f for f in self._futures if not f.done()]
        self._futures.append(self._executor.submit(_guarded, job, *args))

    def wait(self, timeout: float | None) -> bool:
        """True once every job submitted so far has ended; False when ``timeout`` passed first."""
        pending = [f for f in self._futures if not f.done()]
        if not pending:
            return True
        _, not_done = wait_futures(pending, timeout)
        return not not_done

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False)


def _guarded(job: Callable[..., Any], *args: Any) -> None:
    try:
        job(*args)
    except Exception as exc:  # a capture problem is worth a warning, never a failed run
        log.warning("unitrack: %s failed: %s: %s", getattr(job, "__name__", job), type(exc).__name__, exc)


def capture_start(
    capture: CaptureConfig,
    run_file: RunFile,
    artifacts: RunArtifacts,
    store_root: Path,
    git_done: threading.Event,
) -> None:
    """The run's git state (into ``run.json``, its patch as ``git.patch``) and its environment.

    ``git_done`` is set once the git state is in ``run.json`` (or failed): the backends are told
    the run's git commit when they open it, and wait for that, briefly.
    """
    try:
        if capture.git:
            git, patch = capture_git(ignore=store_root)
            run_file.update(git=git)
            if patch:
                artifacts.write_text("git.patch", patch)
    finally:
        git_done.set()
    if capture.environment:
        atomic_write_json(artifacts.paths.environment_json, capture_environment(include_packages=capture.packages))


def training_setup(optimizer: Any, scheduler: Any) -> dict[str, Any]:
    """The optimizer's and scheduler's settings as they are now (``watch`` reads them on the caller's
    thread: the learning rate and the scheduler's state change as training goes on)."""
    setup: dict[str, Any] = {}
    if optimizer is not None:
        setup["optimizer"] = describe_optimizer(optimizer)
    if scheduler is not None:
        setup["scheduler"] = describe_scheduler(scheduler)
    return setup


def record_setup(artifacts: RunArtifacts, model: Any, loss_fn: Any, dataloader: Any, setup: dict[str, Any]) -> dict[str, Any]:
    """Store what ``watch`` was given as ``model/`` artifacts; return its key facts as flat params.

    ``setup`` already holds what changes during training (:func:`training_setup`).
    """
    setup["model"] = describe_model(model)
    if loss_fn is not None:
        setup["loss"] = describe_loss(loss_fn)
    if dataloader is not None:
        setup["data"] = describe_dataloader(dataloader)
    artifacts.write_text("model/architecture.txt", setup["model"]["repr"] + "\n")
    artifacts.write_text("model/summary.json", json.dumps(setup, indent=2, sort_keys=True) + "\n")
    sources = model_sources(model)
    artifacts.write_text("model/sources.json", json.dumps(sources, indent=2, sort_keys=True) + "\n")
    return flatten_params(setup_params(setup))
