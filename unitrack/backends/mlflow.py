"""MLflow: one MLflow run per unitrack run, fed through ``log_batch`` within MLflow's limits.

The run is found again by its ``unitrack.run_id`` tag, so reopening it (a retry after a failed
start, ``unitrack sync``) never creates a second one. Metric points carry their step and their
logging time in milliseconds; MLflow's SQL stores ignore a point already stored with the same
key, step, time and value, so a replay after a crash does not duplicate it. A parameter longer
than MLflow accepts is shortened with the hash of its full value, and the full values are kept in
the run's ``params.json`` artifact: never a silent cut.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from unitrack.backends import model_registry
from unitrack.backends.base import Backend, Capabilities, PermanentBackendError, RunInfo
from unitrack.backends.mlflow_rest import MetricPoint, RestLogBatch, rest_sender
from unitrack.backends.quiet import quiet_loggers
from unitrack.backends.shaping import KeyNames, Limits, chunks, fit_values, points
from unitrack.checkpoint.refs import BEST_TAG, CHECKPOINTS_ARTIFACT
from unitrack.events import CHECKPOINT, ERROR, NOTE, REGISTER_MODEL, REWIND, Event, ParamsEvent, RecordEvent, TagsEvent
from unitrack.failure import failure_line

if TYPE_CHECKING:
    from unitrack.config import Config

RUN_ID_TAG = "unitrack.run_id"
REWINDS_TAG = "unitrack.rewinds"
ERROR_TAG = "unitrack.error"  # why a failed run failed, in one line; the traceback in ERROR_TAG + ".traceback"
PARAMS_ARTIFACT = "params.json"
_DATABASE_SCHEMES = {"sqlite", "postgresql", "mysql", "mssql"}
# MLflow has no "pruned": an early-stopped trial is KILLED there, and the STATUS_TAG says which it was
STATUSES = {"completed": "FINISHED", "failed": "FAILED", "interrupted": "KILLED", "pruned": "KILLED", "crashed": "FAILED"}
STATUS_TAG = "unitrack.status"


def _mlflow_limits() -> tuple[Capabilities, Limits]:
    """MLflow's own limits, read from MLflow (what the dispatcher needs, and what the key/value fitting needs)."""
    from mlflow.utils import validation as v

    capabilities = Capabilities(
        max_metric_values_per_write=v.MAX_METRICS_PER_BATCH,
        max_params_per_write=v.MAX_PARAMS_TAGS_PER_BATCH,
        supports_artifacts=True,
        concurrent_writes=4,  # MLflow orders points by step, not by arrival
    )
    limits = Limits(
        invalid_key_chars=r"[^\w\-. /:]",
        max_key_length=v.MAX_ENTITY_KEY_LENGTH,
        max_param_value_length=v.MAX_PARAM_VAL_LENGTH,
        max_tag_value_length=v.MAX_TAG_VAL_LENGTH,
        max_tags_per_write=v.MAX_PARAMS_TAGS_PER_BATCH,
    )
    return capabilities, limits


def tracking_uri(config: Config) -> str | None:
    return config.tracking.mlflow_tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or None


class MlflowBackend(Backend):
    name = "mlflow"
    capabilities, limits = _mlflow_limits()

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self._uri = tracking_uri(config)
        # as many requests in flight as the server has workers to take them: a per-run setting, so this
        # instance shadows the class's limits (the dispatcher reads them from the instance)
        in_flight = config.tracking.mlflow_requests_in_flight
        self.capabilities = replace(type(self).capabilities, concurrent_writes=in_flight)  # type: ignore[misc]
        self._artifact_root = config.tracking.mlflow_artifact_location
        self._store_dir = Path(config.store_dir).expanduser()
        self._experiment_name = config.tracking.mlflow_experiment
        self._checkpointing = config.checkpointing
        self._client: Any = None
        self._rest: RestLogBatch | None = None
        self._run_id: str | None = None
        self._start_time = 0.0
        self._names = KeyNames(self.limits)
        self._overflow: dict[str, Any] = {}
        self._rewinds: list[dict[str, Any]] = []
        self._uploaded: set[str] = set()

    @property
    def run_id(self) -> str | None:
        """The MLflow run's id once opened."""
        return self._run_id

    def open(self, run: RunInfo) -> None:
        # the dispatcher owns retries: MLflow's own (7 tries, minutes of back-off) would hide an outage
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
        from mlflow.tracking import MlflowClient

        quiet_loggers("mlflow", "alembic")  # e.g. "Creating initial MLflow database tables..." at INFO
        client = MlflowClient(tracking_uri=self._uri)
        experiment_name = self._experiment_name or run.experiment
        experiment = client.get_experiment_by_name(experiment_name)
        if experiment is None:
            experiment_id = client.create_experiment(experiment_name, artifact_location=self._artifact_location())
        else:
            experiment_id = experiment.experiment_id
        found = client.search_runs(
            [experiment_id], filter_string=f"tags.`{RUN_ID_TAG}` = '{run.run_id}'", max_results=1
        )
        if found:
            self._run_id = found[0].info.run_id
            self._rewinds = json.loads(found[0].data.tags.get(REWINDS_TAG, "[]"))
            client.update_run(self._run_id, status="RUNNING")
        else:
            created = client.create_run(
                experiment_id, start_time=int(run.start_time * 1000), tags=self._run_tags(run), run_name=run.name
            )
            self._run_id = created.info.run_id
        self._client = client
        self._rest = rest_sender(client.tracking_uri)
        self._start_time = run.start_time

    def _artifact_location(self) -> str | None:
        """Where a new experiment's artifacts go: the configured place; for a database URI without a
        server (``sqlite:///mlflow.db``), a folder in the unitrack store, where MLflow itself would
        use ``./mlruns`` in whatever folder training happened to start in; otherwise the server's."""
        if self._artifact_root:
            root = self._artifact_root
            return root if "://" in root or root.startswith("mlflow-artifacts:") else Path(root).expanduser().absolute().as_uri()
        if self._uri and self._uri.split(":", 1)[0].split("+", 1)[0] in _DATABASE_SCHEMES:
            return (self._store_dir / "mlflow-artifacts").absolute().as_uri()
        return None

    def _run_tags(self, run: RunInfo) -> dict[str, str]:
        tags = dict(run.tags.items())
        tags[RUN_ID_TAG] = run.run_id
        tags["unitrack.config_hash"] = run.config_hash
        if run.git.get("commit"):
            tags["mlflow.source.git.commit"] = str(run.git["commit"])
        if run.git.get("branch"):
            tags["mlflow.source.git.branch"] = str(run.git["branch"])
        if run.description or run.message:
            tags["mlflow.note.content"] = str(run.description or run.message)
        if run.command:
            tags["mlflow.source.name"] = " ".join(run.command)[:500]
        fitted = fit_values(tags, self.limits, self.limits.max_tag_value_length, "the unitrack run")
        return fitted.values

    def write(self, events: Sequence[Event]) -> None:
        from mlflow.entities import Param, RunTag

        name = self._names
        metrics: list[MetricPoint] = [
            (name(key), float(value), int(when * 1000), step) for key, value, step, when in points(events, self._start_time)
        ]
        params: dict[str, Any] = {}
        tags: dict[str, Any] = {}
        for event in events:
            if type(event) is ParamsEvent:
                params.update(event.values)
            elif type(event) is TagsEvent:
                tags.update(event.values)
            elif isinstance(event, RecordEvent):
                self._write_record(event, tags)
        caps, limits = self.capabilities, self.limits
        fitted_params = fit_values(params, limits, limits.max_param_value_length, PARAMS_ARTIFACT)
        fitted_tags = fit_values(tags, limits, limits.max_tag_value_length, "the unitrack run")
        if fitted_params.overflow:
            self._store_full_params(fitted_params.overflow)
        param_list = [Param(k, v) for k, v in fitted_params.values.items()]
        tag_list = [RunTag(k, v) for k, v in fitted_tags.values.items()]
        for metric_chunk in chunks(metrics, caps.max_metric_values_per_write):
            self._log_metrics(metric_chunk)
        for param_chunk in chunks(param_list, caps.max_params_per_write):
            self._log_batch(params=list(param_chunk))
        for tag_chunk in chunks(tag_list, limits.max_tags_per_write):
            self._log_batch(tags=list(tag_chunk))

    def _log_metrics(self, metrics: Sequence[MetricPoint]) -> None:
        """Straight JSON to a tracking server (the client's protobuf round trip costs the server's
        cores); through ``MlflowClient`` to a database or file store."""
        if self._rest is not None:
            rest, run_id = self._rest, self._run_id
            assert run_id is not None
            self._call(lambda: rest.send(run_id, metrics))
        else:
            from mlflow.entities import Metric

            self._log_batch(metrics=[Metric(*point) for point in metrics])

    def _log_batch(self, metrics: list[Any] = (), params: list[Any] = (), tags: list[Any] = ()) -> None:  # type: ignore[assignment]
        self._call(lambda: self._client.log_batch(self._run_id, metrics=metrics, params=params, tags=tags, synchronous=True))

    @staticmethod
    def _call(request: Callable[[], object]) -> None:
        """One request; MLflow's rejection of the data itself is permanent, anything else transient."""
        from mlflow.exceptions import MlflowException

        try:
            request()
        except MlflowException as exc:
            if exc.error_code == "INVALID_PARAMETER_VALUE":  # a changed param, a bad key: retrying cannot help
                raise PermanentBackendError(str(exc)) from exc
            raise

    def _write_record(self, event: RecordEvent, tags: dict[str, Any]) -> None:
        if event.kind_name == REWIND:
            # MLflow cannot delete metric points: record when and to which step the run went
            # back, so that readers (ours) drop the superseded points; the MLflow UI shows both.
            self._rewinds.append({"step": int(event.data.get("step", 0)), "time": event.time})
            tags[REWINDS_TAG] = json.dumps(self._rewinds)
        elif event.kind_name == ERROR:
            limit = self.limits.max_tag_value_length or 5000
            tags[ERROR_TAG] = failure_line(event.data, width=limit)
            tags[f"{ERROR_TAG}.traceback"] = str(event.data.get("traceback") or "")[-(limit // 2) :]  # its end
        elif event.kind_name == CHECKPOINT:
            if event.data.get("is_best"):
                tags[BEST_TAG] = str(event.data.get("name"))
            registration = model_registry.registration(dict(event.data))
            if registration:  # a registered model is uploaded whatever the upload policy says
                self._upload_checkpoint(event.data)
                self._register(event.data, *registration)
        elif event.kind_name == REGISTER_MODEL:
            checkpoint = dict(event.data.get("checkpoint") or {})
            self._upload_checkpoint(checkpoint)
            self._register(checkpoint, str(event.data["name"]), [str(a) for a in event.data.get("aliases") or []])
        elif event.kind_name == NOTE:  # `unitrack ui`'s note: MLflow's run description
            tags["mlflow.note.content"] = str(event.data.get("text", ""))

    def put_checkpoint(self, path: Path, data: Mapping[str, Any]) -> None:
        """The upload policy's checkpoints: mirrored into ``checkpoints/<name>`` of the run's artifacts."""
        self._upload_checkpoint(data)

    def _upload_checkpoint(self, data: Mapping[str, Any]) -> None:
        """Mirror a checkpoint into ``checkpoints/<name>`` of the run's artifacts (once per run)."""
        name = str(data.get("name"))
        if name in self._uploaded:
            return
        with model_registry.checkpoint_folder(dict(data), self._checkpointing) as folder:
            self._client.log_artifacts(self._run_id, str(folder), artifact_path=f"{CHECKPOINTS_ARTIFACT}/{name}")
        self._uploaded.add(name)

    def _register(self, data: Mapping[str, Any], name: str, aliases: list[str]) -> None:
        path = f"{CHECKPOINTS_ARTIFACT}/{data.get('name')}"
        model_registry.register_mlflow_version(self._client, str(self._run_id), path, name, aliases)

    def _store_full_params(self, overflow: dict[str, Any]) -> None:
        self._overflow.update(overflow)
        with tempfile.TemporaryDirectory(prefix="unitrack-mlflow-") as tmp:
            path = Path(tmp) / PARAMS_ARTIFACT
            path.write_text(json.dumps(self._overflow, indent=2, sort_keys=True, default=str) + "\n")
            self._client.log_artifact(self._run_id, str(path))

    def put_artifact(self, path: Path, name: str) -> None:
        parent = Path(name).parent.as_posix()
        artifact_path = None if parent in ("", ".") else parent
        if path.is_dir():
            self._client.log_artifacts(self._run_id, str(path), artifact_path=name)
        else:
            if path.name != Path(name).name:
                with tempfile.TemporaryDirectory(prefix="unitrack-mlflow-") as tmp:
                    renamed = Path(tmp) / Path(name).name
                    renamed.write_bytes(path.read_bytes())
                    self._client.log_artifact(self._run_id, str(renamed), artifact_path=artifact_path)
                return
            self._client.log_artifact(self._run_id, str(path), artifact_path=artifact_path)

    def close(self, status: str) -> None:
        from mlflow.entities import RunStatus

        # what MlflowClient.set_terminated does, without its "View run ..." lines on stdout: a
        # backend must not write into the user's output (nor into `unitrack sync --json`)
        store = self._client._tracking_client.store
        if STATUSES.get(status) == "KILLED":
            self._client.set_tag(self._run_id, STATUS_TAG, status)  # interrupted or pruned
        store.update_run_info(self._run_id, RunStatus.from_string(STATUSES.get(status, "FINISHED")), int(time.time() * 1000), None)
