"""``tb:LOGDIR`` or ``tb:LOGDIR#RUN``: a TensorBoard run as a ``RunView``, read by TensorBoard's own EventMultiplexer.

``LOGDIR`` may be a run's own folder (it holds event files) or a log dir of several runs, of which
``#RUN`` (a sub-folder, as TensorBoard names it) picks one. Points a restart superseded are
dropped by TensorBoard's reader itself, as in its UI.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from unitrack.errors import RunNotFoundError
from unitrack.readers import RunView, register_reader
from unitrack.readers.summary import make_record, split_system

STATUSES = {"STATUS_SUCCESS": "completed", "STATUS_FAILURE": "failed", "STATUS_RUNNING": "running"}


def read_tensorboard_run(ref: str) -> RunView:
    from tensorboard.backend.event_processing.plugin_event_multiplexer import EventMultiplexer
    from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2
    from tensorboard.util import tensor_util

    location, _, wanted = ref.partition(":")[2].partition("#")
    log_dir = Path(location).expanduser()
    if not log_dir.is_dir():
        raise RunNotFoundError(f"no TensorBoard log dir {log_dir}")
    multiplexer = EventMultiplexer().AddRunsFromDirectory(str(log_dir))
    multiplexer.Reload()
    runs = sorted(multiplexer.Runs())
    if wanted:
        if wanted not in runs:
            raise RunNotFoundError(f"no run {wanted!r} in {log_dir}; it has: {', '.join(runs) or 'none'}")
        run = wanted
    elif len(runs) == 1:
        run = runs[0]
    else:
        raise RunNotFoundError(f"{log_dir} holds {len(runs)} runs; name one as tb:{location}#RUN ({', '.join(runs[:10])})")
    accumulator = multiplexer.GetAccumulator(run)
    history: dict[str, list[dict[str, Any]]] = {}
    for tag in multiplexer.Runs()[run].get("tensors", []):
        if accumulator.SummaryMetadata(tag).plugin_data.plugin_name != "scalars":
            continue
        history[tag] = [
            {"step": e.step, "time": e.wall_time, "value": float(tensor_util.make_ndarray(e.tensor_proto).item())}
            for e in accumulator.Tensors(tag)
        ]
    params: dict[str, Any] = {}
    status = "running"
    end_time = None
    hparams = multiplexer.PluginRunToTagToContent(metadata.PLUGIN_NAME).get(run, {})
    if metadata.SESSION_START_INFO_TAG in hparams:
        start = plugin_data_pb2.HParamsPluginData.FromString(hparams[metadata.SESSION_START_INFO_TAG]).session_start_info
        for key, value in start.hparams.items():
            params[key] = getattr(value, value.WhichOneof("kind")) if value.WhichOneof("kind") else None
    if metadata.SESSION_END_INFO_TAG in hparams:
        end = plugin_data_pb2.HParamsPluginData.FromString(hparams[metadata.SESSION_END_INFO_TAG]).session_end_info
        status = STATUSES.get(api_pb2.Status.Name(end.status), "completed")
        end_time = end.end_time_secs or None
    status = str(params.pop("unitrack/status", status))
    metrics, system = split_system(history)
    folder = log_dir / run if run != "." else log_dir
    try:
        start_time: float | None = multiplexer.FirstEventTimestamp(run)
    except ValueError:
        start_time = None
    record = make_record(
        run_id=folder.name,
        name=folder.name,
        experiment=log_dir.name,
        status=status,
        history=metrics,
        params=params,
        start_time=start_time,
        end_time=end_time,
        info={"source": "tensorboard", "log_dir": str(log_dir), "run": run},
        path=str(folder),
    )
    return RunView(record, metrics, system, [], source="tensorboard", path=folder)


register_reader("tb", read_tensorboard_run)
register_reader("tensorboard", read_tensorboard_run)
