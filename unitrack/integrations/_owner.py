"""The tracker an integration logs to: one you pass in (yours to finish) or one it creates and owns."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from unitrack.config import ConfigSource
from unitrack.tracker import ExperimentTracker


class TrackerOwner:
    """Creates the run on first use (in the process that trains), or wraps the tracker given.

    A framework builds its callbacks before it starts worker processes; creating the run lazily
    makes it belong to the process that actually trains. Only a run created here is finished here.
    """

    def __init__(
        self,
        tracker: ExperimentTracker | None,
        name: str,
        config: ConfigSource,
        run_name: str | None,
        tags: Mapping[str, str] | Sequence[str] | None,
    ) -> None:
        self._tracker = tracker
        self._owns = tracker is None
        self._name = name
        self._config = config
        self._run_name = run_name
        self._tags = tags

    @property
    def created(self) -> bool:
        return self._tracker is not None

    @property
    def tracker(self) -> ExperimentTracker:
        if self._tracker is None:
            self._tracker = ExperimentTracker(self._name, self._config, run_name=self._run_name, tags=self._tags)
        return self._tracker

    def finish(self, status: str) -> None:
        """Finish the run if it was created here; a tracker you passed in stays open for you."""
        if self._owns and self._tracker is not None:
            self._tracker.finish(status)


def check_schedules(**every: int | None) -> None:
    """Each ``every_n_...`` setting is a positive count, or None for off: say which one is not."""
    for key, value in every.items():
        if value is not None and value < 1:
            raise ValueError(f"{key} must be at least 1 (or None to turn it off), not {value}")
