"""Where a checkpoint named from anywhere is found: ``unitrack.load_checkpoint`` and ``unitrack pull``.

A reference is one of
- a path: a checkpoint folder (or a file in one);
- ``RUN@best|last|STEP``: a run of a local store (its id, a prefix, ``latest``);
- ``mlflow://HOST:PORT/RUN@best|last|STEP`` (or ``mlflow:RUN@...`` with ``MLFLOW_TRACKING_URI``):
  the checkpoints a run mirrored to MLflow, RUN being the MLflow run id or the unitrack one;
- ``s3://bucket/prefix/CHECKPOINT``: one checkpoint in object storage.

Each resolves to candidates, tried in order: a reference to one checkpoint has one (and a damaged
one raises); ``@best`` / ``@last`` list the others after it in ``load_best``'s order.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unitrack.checkpoint.errors import CheckpointNotFoundError
from unitrack.checkpoint.registry import fallback_order, read_registry

CHECKPOINTS_ARTIFACT = "checkpoints"  # where the MLflow backend mirrors checkpoints in a run's artifacts
BEST_TAG = "unitrack.best_checkpoint"
_NAME = re.compile(r"^epoch(\d+)-step(\d+)(?:-\d+)?$")

Fetch = Callable[[Path], AbstractContextManager[Path]]


@dataclass
class Candidate:
    """One checkpoint to try: ``fetch(scratch)`` yields its folder on this machine (downloaded into
    ``scratch`` when remote); ``sha256`` is its manifest's checksum when a registry knows it."""

    name: str
    label: str
    step: int
    fetch: Fetch
    sha256: str | None = None


@dataclass
class Resolved:
    candidates: list[Candidate]
    exact: bool


def split_selector(text: str) -> tuple[str, str | int]:
    """``RUN@best`` -> (RUN, "best"); ``RUN@120`` -> (RUN, 120)."""
    run, sep, which = text.rpartition("@")
    if not sep or not run:
        raise ValueError(f"{text!r}: write RUN@best, RUN@last or RUN@STEP")
    if which in ("best", "last"):
        return run, which
    if which.isdigit():
        return run, int(which)
    raise ValueError(f"{text!r}: after '@' write best, last or a step number, not {which!r}")


def resolve(ref: str | Path, store: str | Path | None = None) -> Resolved:
    """The candidates ``ref`` names (see the module's docstring)."""
    from unitrack.checkpoint.s3 import is_s3

    text = str(ref)
    if isinstance(ref, Path) or Path(text).exists():
        folder = Path(text)
        folder = folder.parent if folder.is_file() else folder
        return Resolved([Candidate(folder.name, str(folder), -1, _local(folder))], exact=True)
    if is_s3(text):
        return Resolved([_s3_candidate(text)], exact=True)
    if text.startswith("mlflow"):
        return _mlflow(text)
    if "@" in text:
        return _store_run(text, store)
    raise CheckpointNotFoundError(
        f"no checkpoint {text!r}: not a folder, and not RUN@best|last|STEP, mlflow://HOST:PORT/RUN@... or s3://..."
    )


def _pick(candidates: list[Candidate], best: Candidate | None, which: str | int, where: str) -> Resolved:
    if isinstance(which, int):
        found = [c for c in candidates if c.step == which]
        if not found:
            steps = ", ".join(str(c.step) for c in candidates) or "none"
            raise CheckpointNotFoundError(f"no checkpoint at step {which} in {where} (steps kept: {steps})")
        return Resolved([found[-1]], exact=True)
    ordered = fallback_order(list(reversed(candidates)), best, which)
    if not ordered:
        raise CheckpointNotFoundError(f"no {which} checkpoint in {where}")
    return Resolved(ordered, exact=False)


# --- a local store -------------------------------------------------------------------------------


def _store_run(text: str, store: str | Path | None) -> Resolved:
    from unitrack.checkpoint.locations import s3_client
    from unitrack.store.runs import open_store

    run, which = split_selector(text)
    run_dir = open_store(None if store is None else Path(store)).resolve(run).root
    candidates, best = [], None
    for info in read_registry(run_dir).checkpoints:
        fetch = _s3_fetch(info.url, s3_client()) if info.url is not None else _local(info.path)
        candidates.append(Candidate(info.name, info.location, info.step, fetch, info.sha256))
        if info.is_best:
            best = candidates[-1]
    return _pick(candidates, best, which, f"run {run_dir.name}")


def _local(folder: Path) -> Fetch:
    @contextmanager
    def fetch(scratch: Path) -> Iterator[Path]:
        yield folder

    return fetch


# --- object storage ------------------------------------------------------------------------------


def _s3_candidate(url: str) -> Candidate:
    from unitrack.checkpoint.locations import s3_client
    from unitrack.checkpoint.s3 import S3Location

    location = S3Location.parse(url)
    match = _NAME.match(location.name)
    return Candidate(location.name, url, int(match.group(2)) if match else -1, _s3_fetch(url, s3_client()))


def _s3_fetch(url: str, s3: Any) -> Fetch:
    @contextmanager
    def fetch(scratch: Path) -> Iterator[Path]:
        from unitrack.checkpoint.s3 import S3Location, download_checkpoint

        location = S3Location.parse(url)
        yield download_checkpoint(location, scratch / location.name, s3)

    return fetch


# --- MLflow --------------------------------------------------------------------------------------


def _mlflow(text: str) -> Resolved:
    import os

    from unitrack.names import parse_mlflow_ref

    base, which = split_selector(text)
    uri, run = parse_mlflow_ref(base)
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    found = _mlflow_run(client, run, uri)
    run_id = found.info.run_id
    candidates = []
    for artifact in client.list_artifacts(run_id, CHECKPOINTS_ARTIFACT):
        name = artifact.path.rsplit("/", 1)[-1]
        match = _NAME.match(name)
        if artifact.is_dir and match:
            candidates.append(Candidate(name, f"mlflow run {run_id}: {artifact.path}", int(match.group(2)),
                                        _mlflow_fetch(uri, run_id, artifact.path)))  # fmt: skip
    candidates.sort(key=lambda c: (c.step, c.name))
    best_name = found.data.tags.get(BEST_TAG)
    best = next((c for c in candidates if c.name == best_name), None)
    return _pick(candidates, best, which, f"MLflow run {run_id} at {uri}")


def _mlflow_run(client: Any, run: str, uri: str | None) -> Any:
    """The MLflow run whose id, or whose ``unitrack.run_id`` tag, is ``run``."""
    from mlflow.entities import ViewType
    from mlflow.exceptions import MlflowException

    try:
        return client.get_run(run)
    except MlflowException:
        pass
    experiments = [e.experiment_id for e in client.search_experiments(view_type=ViewType.ALL)]
    found = client.search_runs(experiments, filter_string=f"tags.`unitrack.run_id` = '{run}'", max_results=1) if experiments else []
    if not found:
        raise CheckpointNotFoundError(f"no MLflow run {run!r} (by MLflow or unitrack run id) at {uri or 'the default tracking URI'}")
    return found[0]


def _mlflow_fetch(uri: str | None, run_id: str, artifact_path: str) -> Fetch:
    @contextmanager
    def fetch(scratch: Path) -> Iterator[Path]:
        from mlflow.artifacts import download_artifacts

        yield Path(download_artifacts(run_id=run_id, artifact_path=artifact_path, dst_path=str(scratch), tracking_uri=uri))

    return fetch
