"""The backend conformance kit: run it against your backend in your own test suite.

    from unitrack.testing import check_backend

    def test_my_backend_conforms():
        check_backend(MyBackend, read_metrics=lambda run_id: my_service.points(run_id))

``factory`` builds the backend as the registry does (``factory(config)``; the class itself is
the usual factory). ``read_metrics(run_id)`` returns what the backend stored for the unitrack run
``run_id`` as ``{key: [(step, value), ...]}``. The kit drives the backend through unitrack's own
dispatcher (a real tracker, a real journal, the real worker) and checks that:

- every metric point arrives exactly once, with its step and value (system samples aside);
- a transient failure (a write that raised) is retried without losing or repeating points;
- a ``PermanentBackendError`` for one event skips that event only;
- artifacts reach ``put_artifact`` when ``capabilities.supports_artifacts``, and never otherwise;
- parameters and tags arrive (checked in the store too when ``read_params`` is given);
- the final status reaches ``close``, and the run owes nothing afterwards;
- a backend reopened after a crash (the process died without ``close``) continues the same run
  from the persisted cursor without duplicates, and a second delivery sends nothing again.

It returns a :class:`ConformanceReport`; by default it raises :class:`ConformanceError` naming
every failed check.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unitrack.backends.base import Backend, PermanentBackendError, RunInfo
from unitrack.config import Config, load_config
from unitrack.dispatch import BackendWorker, WorkerSettings
from unitrack.events import Event, MetricEvent, ParamsEvent, TagsEvent
from unitrack.store.fsio import read_json
from unitrack.store.history import delivery_status
from unitrack.store.runs import RunStore

Points = dict[str, list[tuple[int, float]]]
REFUSED_KEY = "kit/refused"  # the probe answers a write holding it with PermanentBackendError
_STEPS = 120
_PARAMS = {"lr": 0.125, "layers": 3, "optimizer": {"name": "sgd"}}
_TAGS = {"kit": "conformance"}


class ConformanceError(AssertionError):
    """A backend failed the conformance kit; the message names every failed check."""


@dataclass
class Check:
    name: str
    ok: bool
    detail: str = ""


@dataclass
class ConformanceReport:
    """What the kit checked; ``ok`` is true when every check passed."""

    backend: str
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [check for check in self.checks if not check.ok]

    def add(self, name: str, ok: bool, detail: str = "") -> None:
        self.checks.append(Check(name, ok, "" if ok else detail))

    def __str__(self) -> str:
        lines = [f"backend {self.backend!r}: {'conforms' if self.ok else 'does NOT conform'}"]
        lines += [f"  [{'ok' if c.ok else 'FAIL'}] {c.name}{': ' + c.detail if c.detail else ''}" for c in self.checks]
        return "\n".join(lines)


class _Probe(Backend):
    """Stands between the worker and the backend under test: injects one transient and one permanent failure."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.writes = 0
        self.transient_injected = 0
        self.written: list[Event] = []
        self.artifacts: list[str] = []
        self.closed_with: str | None = None
        self.fail_transiently = True

    def open(self, run: RunInfo) -> None:
        self.inner.open(run)

    def write(self, events: Sequence[Event]) -> None:
        self.writes += 1
        if self.fail_transiently and self.writes == 2:
            self.fail_transiently = False
            self.transient_injected += 1
            raise ConnectionError("injected by the conformance kit: a transient failure")
        if any(isinstance(e, MetricEvent) and REFUSED_KEY in e.values for e in events):
            raise PermanentBackendError(f"injected by the conformance kit: {REFUSED_KEY} is refused")
        self.inner.write(events)
        self.written.extend(events)

    def put_artifact(self, path: Path, name: str) -> None:
        self.inner.put_artifact(path, name)
        self.artifacts.append(name)

    def put_checkpoint(self, path: Path, data: Mapping[str, Any]) -> None:
        self.inner.put_checkpoint(path, data)

    def flush(self) -> None:
        self.inner.flush()

    def close(self, status: str) -> None:
        self.inner.close(status)
        self.closed_with = status


def _probe(inner: Backend) -> _Probe:
    """A probe that answers to the inner backend's name and capabilities (its cursor is the backend's)."""
    probe_class = type("Probe", (_Probe,), {"name": inner.name, "capabilities": inner.capabilities})
    return probe_class(inner)


def check_backend(
    factory: Callable[[Config], Backend],
    read_metrics: Callable[[str], Mapping[str, Sequence[tuple[int, float]]]],
    *,
    read_params: Callable[[str], Mapping[str, Any]] | None = None,
    settings: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
    store_dir: str | Path | None = None,
    timeout: float = 120.0,
    raise_on_failure: bool = True,
) -> ConformanceReport:
    """Check the backend ``factory`` builds; see the module's docstring for what is checked.

    ``settings`` are the backend's ``tracking.<name>`` settings (it must then be registered);
    ``overrides`` other config keys, dotted (``{"tracking.tensorboard_log_dir": ...}``); ``store_dir`` keeps the kit's local store there instead of in a temporary folder.
    """
    with tempfile.TemporaryDirectory(prefix="unitrack-kit-") as tmp:
        root = Path(store_dir) if store_dir is not None else Path(tmp)
        config = _config(root, factory, settings, overrides)
        report = ConformanceReport(getattr(factory, "name", getattr(factory, "__name__", "backend")))
        _check_a_run(report, factory, config, read_metrics, read_params, timeout)
        _check_a_crash(report, factory, config, read_metrics, timeout)
    if raise_on_failure and not report.ok:
        raise ConformanceError(str(report))
    return report


def _config(root: Path, factory: Any, settings: Mapping[str, Any] | None, overrides: Mapping[str, Any] | None) -> Config:
    data: dict[str, Any] = {
        "store_dir": str(root / "store"),
        "monitoring": {"enabled": False},
        "capture": {"git": False, "environment": False, "packages": False, "handle_signals": False},
        "tracking": {"finish_timeout": 60.0, "retry_attempts": 3, "retry_max_wait": 0.2, "breaker_cooldown": 0.5},
    }
    if settings is not None:
        data["tracking"][getattr(factory, "name", "")] = dict(settings)
    return load_config(data, overrides)


def _value(key: str, step: int) -> float:
    """Values exact in float32 (TensorBoard stores float32): the check compares them exactly."""
    return {"kit/loss": 1.0 / (1 + step % 8), "kit/acc": step / 128.0, "kit/lr": 0.5}[key]


def _check_a_run(
    report: ConformanceReport,
    factory: Callable[[Config], Backend],
    config: Config,
    read_metrics: Callable[[str], Mapping[str, Sequence[tuple[int, float]]]],
    read_params: Callable[[str], Mapping[str, Any]] | None,
    timeout: float,
) -> None:
    from unitrack.tracker import ExperimentTracker

    probe = _probe(factory(config))
    artifact = Path(config.store_dir).parent / "kit-artifact.txt"
    artifact.parent.mkdir(parents=True, exist_ok=True)
    artifact.write_text("written by the unitrack conformance kit\n")
    tracker = ExperimentTracker("conformance", config, backends=[probe])
    tracker.log_hyperparameters(_PARAMS)
    tracker.set_tags(_TAGS)
    expected: Points = {}
    for step in range(_STEPS):
        values = {key: _value(key, step) for key in ("kit/loss", "kit/acc")}
        if step % 10 == 0:
            values["kit/lr"] = _value("kit/lr", step)
        tracker.log_metrics(values, step=step)
        for key, value in values.items():
            expected.setdefault(key, []).append((step, value))
        if step == _STEPS // 2:
            tracker.log_metrics({REFUSED_KEY: 1.0}, step=step)
    tracker.log_artifact(artifact)
    tracker.finish("completed", timeout=timeout)
    paths = tracker.store.resolve(tracker.run_id)
    state = delivery_status(paths).get(probe.name, {})
    run = read_json(paths.run_json, {}) or {}
    recorded = (run.get("backends") or {}).get(probe.name, {})

    report.add("the run opens, and the final status reaches close()", probe.closed_with == "completed",
               f"close() got {probe.closed_with!r}; start error: {recorded.get('start_error')}")
    report.add("nothing is owed after finish", bool(state) and state["owed"] == 0,
               f"owed {state.get('owed')} event(s); last error: {recorded.get('last_error')}")
    _compare_points(report, "every metric point arrives once, with its step and value", expected, read_metrics(tracker.run_id))
    report.add("a transient failure is retried", probe.transient_injected == 1 and probe.writes > 2,
               "the injected transient failure was not met (too few writes?)")
    report.add("a permanent error skips only the refused event", state.get("skipped_events") == 1,
               f"skipped {state.get('skipped_events')} event(s), expected 1")
    params = {k: v for e in probe.written if isinstance(e, ParamsEvent) for k, v in e.values.items()}
    tags = {k: v for e in probe.written if isinstance(e, TagsEvent) for k, v in e.values.items()}
    report.add("parameters and tags are delivered", {"lr", "optimizer/name"} <= set(params) and tags.get("kit") == "conformance",
               f"params {sorted(params)}, tags {tags}")
    if read_params is not None:
        stored = read_params(tracker.run_id)
        report.add("the backend stores the parameters", "lr" in stored and float(stored["lr"]) == _PARAMS["lr"],
                   f"read_params gave {dict(stored)}")
    supported = probe.capabilities.supports_artifacts
    delivered = "kit-artifact.txt" in probe.artifacts
    report.add("artifacts reach put_artifact only when supported", delivered == supported,
               f"supports_artifacts={supported} but put_artifact was {'' if delivered else 'not '}called")


def _check_a_crash(
    report: ConformanceReport,
    factory: Callable[[Config], Backend],
    config: Config,
    read_metrics: Callable[[str], Mapping[str, Sequence[tuple[int, float]]]],
    timeout: float,
) -> None:
    from unitrack.tracker import ExperimentTracker

    tracker = ExperimentTracker("conformance-crash", config)  # the local store only: the kit delivers
    expected: Points = {"kit/loss": []}
    paths = RunStore(config.store_dir).resolve(tracker.run_id)
    settings = WorkerSettings.from_config(config, factory(config).name)

    def worker(backend: Backend) -> BackendWorker:
        info = RunInfo.from_run_json(paths.root, read_json(paths.run_json, {}) or {})
        return BackendWorker(backend, paths, lambda: info, settings)

    for step in range(_STEPS // 2):
        tracker.log_metrics({"kit/loss": _value("kit/loss", step)}, step=step)
        expected["kit/loss"].append((step, _value("kit/loss", step)))
    tracker.flush()
    first = worker(factory(config)).deliver_pending(time.monotonic() + timeout)  # then "dies": never closed
    for step in range(_STEPS // 2, _STEPS):
        tracker.log_metrics({"kit/loss": _value("kit/loss", step)}, step=step)
        expected["kit/loss"].append((step, _value("kit/loss", step)))
    tracker.finish("completed")
    report.add("a first delivery starts", first.started and first.seq > 0, f"start error: {first.start_error}")
    state = worker(factory(config)).run_until_caught_up(time.monotonic() + timeout, None)
    report.add("a backend reopened after a crash catches up", state.seq == _last_seq(paths),
               f"delivered up to event {state.seq} of {_last_seq(paths)}; last error: {state.last_error}")
    _compare_points(report, "after a crash and a reopen, every point arrives once", expected, read_metrics(tracker.run_id))
    again = _probe(factory(config))
    worker(again).run_until_caught_up(time.monotonic() + timeout, None)
    report.add("a second delivery sends nothing again", not again.written, f"it sent {len(again.written)} event(s) again")
    _compare_points(report, "and the store still holds every point once", expected, read_metrics(tracker.run_id))


def _last_seq(paths: Any) -> int:
    from unitrack.store.journal import last_record

    last = last_record(paths.events)
    return int(last["seq"]) if last else 0


def _compare_points(report: ConformanceReport, name: str, expected: Points, stored: Mapping[str, Sequence[tuple[int, float]]]) -> None:
    problems = []
    stored_keys = {key for key in stored if key.startswith("kit/")}
    for key in sorted(set(expected) | stored_keys):
        want = sorted(expected.get(key, []))
        got = sorted((int(step), float(value)) for step, value in stored.get(key, []))
        if len(got) != len(want) or any(
            gs != ws or not math.isclose(gv, wv, rel_tol=1e-6) for (gs, gv), (ws, wv) in zip(got, want, strict=False)
        ):
            missing = len({s for s, _ in want} - {s for s, _ in got})
            duplicates = len(got) - len({s for s, _ in got})
            problems.append(f"{key}: {len(got)} point(s) stored, {len(want)} expected ({missing} missing, {duplicates} repeated)")
    report.add(name, not problems, "; ".join(problems))
