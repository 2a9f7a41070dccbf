"""What a tracker holds for weights: one snapshot writer, the optimizer watcher, plots at finish."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from unitrack.config import Config
from unitrack.events import RecordSink
from unitrack.store.artifacts import RunArtifacts
from unitrack.weights.activations import ActivationWatcher
from unitrack.weights.snapshots import SnapshotInfo, SnapshotWriter
from unitrack.weights.watcher import WeightWatcher, snapshot_interval

log = logging.getLogger("unitrack")

PLOTS_ARTIFACT_DIR = "plots"
SETTLE_WAIT_S = 15.0  # at finish, how long the plots wait for the snapshots and metrics still being written


class WeightsSession:
    def __init__(
        self,
        store_root: Path,
        run_dir: Path,
        config: Config,
        emit: RecordSink,
        log_metrics: Callable[[dict[str, float], int], None],
        submit: Callable[..., None] | None = None,
    ) -> None:
        settings = config.weights
        histograms = settings.histograms
        self.histograms = "tensorboard" in config.tracking.remote_backends if histograms == "auto" else bool(histograms)
        self.writer = SnapshotWriter(
            store_root,
            run_dir,
            keep_recent=settings.keep_recent,
            thin_every=settings.thin_every,
            histograms=self.histograms,
            emit=emit,
            submit=submit,
            log_metrics=log_metrics,
        )
        self._emit = emit
        self._log_metrics = log_metrics
        self._settings = settings
        self.watcher: WeightWatcher | None = None
        self.activations: ActivationWatcher | None = None

    def snapshot(self, model: Any, step: int, tag: str | None) -> SnapshotInfo:
        return self.writer.take(model, step, tag)

    def watch(self, model: Any, optimizer: Any, dataloader: Any, every: Any, gradients: bool, log_every: int) -> None:
        interval = snapshot_interval(every, dataloader)
        if self.watcher is not None:
            self.watcher.close()
        self.watcher = WeightWatcher(
            model,
            optimizer,
            self.writer,
            interval=interval,
            gradients=gradients,
            log_every=log_every,
            log_metrics=self._log_metrics,
            emit=self._emit,
            histograms=self.histograms,
        )

    def watch_activations(self, model: Any, every: int | None, modules: Any) -> None:
        """Sample module outputs every ``every`` steps (else the config's); replaces an earlier watch."""
        settings = self._settings
        every = every if every is not None else settings.activations_every
        if every is None:
            raise ValueError("watch activations: give activations_every=N (or weights.activations_every in the config)")
        histograms = settings.activations_histograms
        if self.activations is not None:
            self.activations.close()
        self.activations = ActivationWatcher(
            model,
            every,
            self._log_metrics,
            self._emit,
            modules=modules if modules is not None else settings.activations_modules,
            histograms=self.histograms if histograms == "auto" else bool(histograms),
        )

    def close(self) -> None:
        if self.activations is not None:
            self.activations.close()
            self.activations = None
        if self.watcher is not None:
            self.watcher.close()
            self.watcher = None
        self.writer.close()


def make_finish_plots(store: Any, run_id: str, artifacts_dir: Path) -> list[tuple[str, Path]]:
    """Draw the run's plots into ``artifacts/plots/``; return (artifact name, path) of each."""
    from unitrack.weights.plots import plot_run

    folder = Path(artifacts_dir) / PLOTS_ARTIFACT_DIR
    return [(f"{PLOTS_ARTIFACT_DIR}/{path.name}", path) for path in plot_run(store, run_id, folder)]


def finish_weights(
    session: WeightsSession | None,
    plots: bool,
    settle: tuple[Callable[[float], bool], Callable[[float], bool]],
    store: Any,
    run_id: str,
    artifacts: RunArtifacts,
) -> None:
    """At a run's finish: the final snapshot of watched weights, then (``plots``) the run's plots,
    each announced as an artifact. ``settle`` holds the waits for what the plots read and is still
    being written (the snapshots, the metrics), each called with a bound in seconds. A failure
    here is a warning, never a failed finish."""
    try:
        if session is not None:
            session.close()
        if plots:
            for wait in settle:
                wait(SETTLE_WAIT_S)
            for name, path in make_finish_plots(store, run_id, artifacts.folder):
                artifacts.announce(name, path)
    except Exception as exc:
        log.warning("unitrack: weights at finish failed: %s: %s", type(exc).__name__, exc)
