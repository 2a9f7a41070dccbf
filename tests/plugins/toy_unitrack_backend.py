"""A third-party backend as a user would write it: only the required methods, settings from tracking.toy.

It stores each run's points, params, tags and status as JSON lines in ``directory``; a file called
``down`` in that directory makes it fail like an unreachable service.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel

from unitrack.backends.base import Backend, RunInfo
from unitrack.events import Event, MetricEvent, ParamsEvent, TagsEvent


class ToySettings(BaseModel):
    directory: str


class ToyBackend(Backend):
    name = "toy"
    settings_model = ToySettings

    def open(self, run: RunInfo) -> None:
        self.folder = Path(self.settings.directory)
        if (self.folder / "down").exists():
            raise ConnectionError("the toy service is down")
        self.file = self.folder / f"{run.run_id}.jsonl"

    def write(self, events: Sequence[Event]) -> None:
        if (self.folder / "down").exists():
            raise ConnectionError("the toy service is down")
        with open(self.file, "a") as out:
            for event in events:
                if isinstance(event, MetricEvent):
                    for key, value in event.values.items():
                        out.write(json.dumps({"metric": key, "step": event.step, "value": value}) + "\n")
                elif isinstance(event, (ParamsEvent, TagsEvent)):
                    out.write(json.dumps({event.kind: event.values}) + "\n")

    def close(self, status: str) -> None:
        with open(self.file, "a") as out:
            out.write(json.dumps({"status": status}) + "\n")


class DroppingToyBackend(ToyBackend):
    """A broken backend: it loses every second metric point it is given."""

    name = "toy"

    def write(self, events: Sequence[Event]) -> None:
        self.kept = getattr(self, "kept", 0)
        thinned = []
        for event in events:
            if isinstance(event, MetricEvent):
                self.kept += 1
                if self.kept % 2 == 0:
                    continue
            thinned.append(event)
        super().write(thinned)


def read_lines(directory: Path, run_id: str) -> list[dict]:
    path = Path(directory) / f"{run_id}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def read_metrics(directory: Path, run_id: str) -> dict[str, list[tuple[int, float]]]:
    points: dict[str, list[tuple[int, float]]] = {}
    for line in read_lines(directory, run_id):
        if "metric" in line:
            points.setdefault(line["metric"], []).append((line["step"], line["value"]))
    return points
