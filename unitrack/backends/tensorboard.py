"""TensorBoard: event files under ``tensorboard_log_dir/<run name>_<run id>/``, written off the loop.

Events are built from TensorBoard's own protos (no TensorFlow, no torch): one event per logged
step holding all its scalars, system samples as ``system/...`` scalars at whole seconds since the
start, histograms, the model graph from ``watch(example_input=...)``, the config as text, and at
close the hparams plugin's three summaries (experiment, session start, session end with the
final status) in the run's own folder, with the final value of every metric.

A new folder starts with ``SessionLog.START``; a ``rewind`` event (a run resumed at step N)
becomes a second ``START`` at step N+1, on which TensorBoard drops every point after N: the
resumed run's points replace them. Reopening the folder (``unitrack sync``) appends from the last
acknowledged batch; a batch written but not acknowledged before a crash can appear twice.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from unitrack.backends.base import Backend, Capabilities, RunInfo
from unitrack.backends.shaping import KeyNames, Limits, system_key, system_step, value_text
from unitrack.capture.graph import GRAPH_ARTIFACT
from unitrack.events import ERROR, HISTOGRAM, REWIND, Event, MetricEvent, ParamsEvent, RecordEvent, SystemEvent
from unitrack.failure import failure_line
from unitrack.store.fsio import read_json
from unitrack.store.layout import RunPaths

if TYPE_CHECKING:
    from unitrack.config import Config

# unitrack status -> the hparams plugin's session status (it has only success, failure, running and
# unknown): a run that did not complete is a failure there, and its exact status is the
# ``unitrack/status`` hparam beside the others
SESSION_STATUS = {
    "completed": "STATUS_SUCCESS",
    "failed": "STATUS_FAILURE",
    "crashed": "STATUS_FAILURE",
    "interrupted": "STATUS_FAILURE",
    "pruned": "STATUS_FAILURE",
    "running": "STATUS_RUNNING",
}
STATUS_HPARAM = "unitrack/status"
ERROR_TAG = "unitrack/error"


def run_folder_name(run: RunInfo) -> str:
    """The run's sub-folder of the log dir: readable, unique, and the same when reopened."""
    return f"{run.name}_{run.run_id}"


class TensorBoardBackend(Backend):
    name = "tensorboard"
    capabilities = Capabilities(supports_artifacts=True)  # the model graph; other files stay in the local store
    limits = Limits(invalid_key_chars=r"[^\w\-./ ]")

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self._log_dir = Path(config.tracking.tensorboard_log_dir).expanduser().absolute()
        self._writer: Any = None
        self._names = KeyNames(self.limits)
        self._start_time = 0.0
        self._params: dict[str, Any] = {}
        self._metric_tags: set[str] = set()  # for the hparams plugin's metric list
        self._last_step = 0
        self._run: RunInfo | None = None
        self.folder: Path | None = None

    def open(self, run: RunInfo) -> None:
        from tensorboard.compat.proto.event_pb2 import Event as TbEvent
        from tensorboard.compat.proto.event_pb2 import SessionLog
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        self.folder = self._log_dir / run_folder_name(run)
        reopened = self.folder.exists() and any(self.folder.glob("events.out.tfevents.*"))
        self.folder.mkdir(parents=True, exist_ok=True)
        self._writer = EventFileWriter(str(self.folder), max_queue_size=1000, flush_secs=5)
        self._start_time = run.start_time
        self._run = run
        if reopened:  # what was written before the crash: the hparams at close need it all
            paths = RunPaths(run.run_dir)
            self._params = read_json(paths.params_json, {}) or {}
            summary = (read_json(paths.summary_json, {}) or {}).get("metrics", {})
            self._metric_tags = {self._names(key) for key in summary}
        else:
            # the first START of a folder marks its beginning; a later one (a rewind) makes TensorBoard purge
            self._writer.add_event(TbEvent(wall_time=run.start_time, step=0, session_log=SessionLog(status=SessionLog.START)))
            config = json.dumps(run.config, indent=2, sort_keys=True, default=str)
            self._add_summary(0, run.start_time, [self._text("config", f"```\n{config}\n```")])
        self._writer.flush()

    # --- events -------------------------------------------------------------------------------

    def write(self, events: Sequence[Event]) -> None:
        from tensorboard.compat.proto.summary_pb2 import Summary

        name = self._names
        for event in events:
            if type(event) is MetricEvent:
                values = [Summary.Value(tag=name(k), simple_value=v) for k, v in event.values.items()]
                self._add_summary(event.step, event.time, values)
                self._metric_tags.update(value.tag for value in values)
                self._last_step = max(self._last_step, event.step)
            elif type(event) is SystemEvent:
                values = [
                    Summary.Value(tag=name(system_key(k, event.rank)), simple_value=v) for k, v in event.values.items()
                ]
                self._add_summary(system_step(event, self._start_time), event.time, values)
            elif type(event) is ParamsEvent:
                self._params.update(event.values)
            elif isinstance(event, RecordEvent):
                self._write_record(event)
        self._writer.flush()  # acknowledged means written to the file

    def _write_record(self, event: RecordEvent) -> None:
        from tensorboard.compat.proto.event_pb2 import Event as TbEvent
        from tensorboard.compat.proto.event_pb2 import SessionLog

        if event.kind_name == REWIND:
            step = int(event.data.get("step", 0))
            # START at step N+1 makes TensorBoard drop every point after N: the resumed run replaces them
            start = TbEvent(wall_time=event.time, step=step + 1, session_log=SessionLog(status=SessionLog.START))
            self._writer.add_event(start)
        elif event.kind_name == ERROR:  # why the run failed, on the TEXT tab
            line = failure_line(event.data, width=1000)
            text = f"**{line}**\n\n```\n{event.data.get('traceback') or ''}\n```"
            self._add_summary(self._last_step, event.time, [self._text(ERROR_TAG, text)])
        elif event.kind_name == HISTOGRAM:
            step = int(event.data.get("step", 0))
            values = [self._histogram(self._names(tag), h) for tag, h in (event.data.get("values") or {}).items()]
            self._add_summary(step, event.time, values)

    def put_artifact(self, path: Path, name: str) -> None:
        """TensorBoard keeps no files: only the model graph becomes an event, the rest stays in the local store."""
        from tensorboard.compat.proto.event_pb2 import Event as TbEvent

        if name == GRAPH_ARTIFACT and path.is_file():
            self._writer.add_event(TbEvent(wall_time=time.time(), step=0, graph_def=path.read_bytes()))
            self._writer.flush()

    def put_checkpoint(self, path: Path, data: Mapping[str, Any]) -> None:
        """TensorBoard keeps no checkpoint files: they stay in the local store (and its checkpoint folder)."""

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()

    def close(self, status: str) -> None:
        self._write_hparams(status)
        self._writer.close()

    # --- protos -------------------------------------------------------------------------------

    def _add_summary(self, step: int, wall_time: float, values: list[Any]) -> None:
        from tensorboard.compat.proto.event_pb2 import Event as TbEvent
        from tensorboard.compat.proto.summary_pb2 import Summary

        self._writer.add_event(TbEvent(wall_time=wall_time, step=step, summary=Summary(value=values)))

    @staticmethod
    def _text(tag: str, text: str) -> Any:
        from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
        from tensorboard.compat.proto.tensor_pb2 import TensorProto
        from tensorboard.compat.proto.tensor_shape_pb2 import TensorShapeProto

        metadata = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name="text"))
        tensor = TensorProto(
            dtype="DT_STRING", string_val=[text.encode("utf-8")], tensor_shape=TensorShapeProto(dim=[TensorShapeProto.Dim(size=1)])
        )
        return Summary.Value(tag=tag, metadata=metadata, tensor=tensor)

    @staticmethod
    def _histogram(tag: str, data: dict[str, Any]) -> Any:
        from tensorboard.compat.proto.summary_pb2 import HistogramProto, Summary

        histo = HistogramProto(
            min=float(data["min"]),
            max=float(data["max"]),
            num=float(data["num"]),
            sum=float(data["sum"]),
            sum_squares=float(data["sum_squares"]),
            bucket_limit=[float(x) for x in data["bucket_limits"]],
            bucket=[float(x) for x in data["bucket_counts"]],
        )
        return Summary.Value(tag=tag, histo=histo)

    def _write_hparams(self, status: str) -> None:
        """The hparams plugin's experiment, session start and session end, in the run's own folder."""
        from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
        from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

        start = plugin_data_pb2.SessionStartInfo(group_name=self._run.run_id if self._run else "")
        infos = []
        for key, value in sorted(self._params.items()):
            tag = self._names(key)
            if isinstance(value, bool):
                start.hparams[tag].bool_value = value
                kind = "DATA_TYPE_BOOL"
            elif isinstance(value, (int, float)):
                start.hparams[tag].number_value = value
                kind = "DATA_TYPE_FLOAT64"
            else:
                start.hparams[tag].string_value = value_text(value)
                kind = "DATA_TYPE_STRING"
            infos.append(api_pb2.HParamInfo(name=tag, type=api_pb2.DataType.Value(kind)))
        start.hparams[STATUS_HPARAM].string_value = status
        infos.append(api_pb2.HParamInfo(name=STATUS_HPARAM, type=api_pb2.DataType.Value("DATA_TYPE_STRING")))
        start.start_time_secs = self._start_time
        metrics = [api_pb2.MetricInfo(name=api_pb2.MetricName(tag=tag)) for tag in sorted(self._metric_tags)]
        experiment = api_pb2.Experiment(hparam_infos=infos, metric_infos=metrics)
        end = plugin_data_pb2.SessionEndInfo(
            status=api_pb2.Status.Value(SESSION_STATUS.get(status, "STATUS_UNKNOWN")), end_time_secs=time.time()
        )

        def summary(tag: str, **data: Any) -> Any:
            plugin = plugin_data_pb2.HParamsPluginData(version=metadata.PLUGIN_DATA_VERSION, **data)
            meta = SummaryMetadata(
                plugin_data=SummaryMetadata.PluginData(
                    plugin_name=metadata.PLUGIN_NAME, content=plugin.SerializeToString()
                )
            )
            return Summary.Value(tag=tag, metadata=meta)

        now = time.time()
        self._add_summary(0, now, [summary(metadata.EXPERIMENT_TAG, experiment=experiment)])
        self._add_summary(0, now, [summary(metadata.SESSION_START_INFO_TAG, session_start_info=start)])
        self._add_summary(self._last_step, now, [summary(metadata.SESSION_END_INFO_TAG, session_end_info=end)])
