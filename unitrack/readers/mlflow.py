"""``mlflow://HOST:PORT/RUN_ID``, ``mlflow+https://HOST/RUN_ID`` or ``mlflow:RUN_ID`` (MLFLOW_TRACKING_URI) as a ``RunView``."""

from __future__ import annotations

import json
import os
from typing import Any

from unitrack.errors import RunNotFoundError
from unitrack.failure import failure_from_line
from unitrack.names import parse_mlflow_ref
from unitrack.readers import RunView, register_reader
from unitrack.readers.summary import make_record, parse_param, split_system
from unitrack.store.history import drop_superseded

STATUSES = {"FINISHED": "completed", "FAILED": "failed", "KILLED": "interrupted", "RUNNING": "running", "SCHEDULED": "running"}


def read_mlflow_run(ref: str) -> RunView:
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from unitrack.backends.mlflow import ERROR_TAG  # here: the backend module imports mlflow itself

    uri, run_id = parse_mlflow_ref(ref)
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    client = MlflowClient(tracking_uri=uri)
    try:
        run = client.get_run(run_id)
    except MlflowException as exc:
        raise RunNotFoundError(f"no MLflow run {run_id!r} at {uri or 'the default tracking URI'}: {exc.message}") from None
    history: dict[str, list[dict[str, Any]]] = {}
    for key in run.data.metrics:
        points = client.get_metric_history(run_id, key)
        history[key] = [
            {"step": m.step, "time": m.timestamp / 1000, "value": m.value} for m in sorted(points, key=lambda m: (m.timestamp, m.step))
        ]
    tags = dict(run.data.tags)
    history = drop_superseded(history, json.loads(tags.get("unitrack.rewinds", "[]")))
    metrics, system = split_system(history)
    experiment = client.get_experiment(run.info.experiment_id)
    user_tags = {k: v for k, v in tags.items() if not k.startswith(("mlflow.", "unitrack."))}
    info = {
        "source": "mlflow",
        "tracking_uri": uri,
        "unitrack_run_id": tags.get("unitrack.run_id"),
        "git": {"commit": tags["mlflow.source.git.commit"]} if "mlflow.source.git.commit" in tags else {},
    }
    record = make_record(
        run_id=run_id,
        name=run.info.run_name or run_id,
        experiment=experiment.name if experiment else "",
        status=tags.get("unitrack.status") or STATUSES.get(run.info.status, run.info.status.lower()),
        history=metrics,
        params={k: parse_param(v) for k, v in run.data.params.items()},
        tags=user_tags,
        message=tags.get("mlflow.note.content"),
        start_time=run.info.start_time / 1000 if run.info.start_time else None,
        end_time=run.info.end_time / 1000 if run.info.end_time else None,
        info=info,
        path=run.info.artifact_uri,
        error=failure_from_line(tags.get(ERROR_TAG), tags.get(f"{ERROR_TAG}.traceback")),
    )
    artifacts = [{"name": a.path, "size": a.file_size, "sha256": None} for a in client.list_artifacts(run_id)]
    return RunView(record, metrics, system, artifacts, source="mlflow")


register_reader("mlflow", read_mlflow_run)
