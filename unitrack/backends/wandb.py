"""Weights & Biases: one W&B run per unitrack run, offline unless an API key is configured.

The W&B run's id is the unitrack run's id, and every tracker gets its own run
(``reinit="create_new"``), so a second tracker in one process never writes into the first one's
run, and ``unitrack sync`` reattaches to the same run (``resume="allow"``). Hyperparameters go
to the run's config, metrics to its history at their step, system samples as ``system/...``
into the current step's row, artifacts to its files, checkpoints (those the upload policy
sends) as ``model`` artifacts, and at close the summary gets each metric's best value and the final status.

W&B's history refuses a step lower than the last one it saw, and the documented loop's step goes
back to 0 every epoch. So W&B's own step is left to W&B (one row per event, never going back) and
every row carries ``unitrack/seq``, the event's journal sequence number, which every chart uses as
its x-axis (``define_metric``), and ``unitrack/step``, the step the loop logged: every point is
kept, in the logged order, and the reader gives each its logged step back. A ``rewind`` (a resumed
run) is listed in the summary (``unitrack/rewinds``) so that the reader drops the superseded points,
as the local store does.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from unitrack.backends import model_registry
from unitrack.backends.base import Backend, Capabilities, RunInfo
from unitrack.backends.quiet import quiet_wandb_terminal
from unitrack.backends.shaping import KeyNames, Limits, system_key
from unitrack.events import (
    CHECKPOINT,
    ERROR,
    NOTE,
    REGISTER_MODEL,
    REWIND,
    Event,
    MetricEvent,
    ParamsEvent,
    RecordEvent,
    SystemEvent,
    TagsEvent,
)
from unitrack.failure import failure_line
from unitrack.goals import lower_is_better

if TYPE_CHECKING:
    from unitrack.config import Config

SEQ_KEY = "unitrack/seq"  # the x-axis of every chart: the journal's sequence number, never going back
STEP_KEY = "unitrack/step"  # the step the training loop logged (may go back, e.g. every epoch)
REWINDS_KEY = "unitrack/rewinds"
ERROR_KEY = "unitrack/error"  # why a failed run failed, in one line; the traceback in ERROR_KEY + "_traceback"
# W&B runs opened in this process and not finished, by id: W&B refuses a second init of a live id
_LIVE_RUNS: dict[str, Any] = {}
EXIT_CODES = {"completed": 0, "failed": 1, "crashed": 1, "interrupted": 255, "pruned": 255}


def wandb_mode(config: Config) -> str:
    """The configured mode, else online with an API key and offline without one."""
    if config.tracking.wandb_mode:
        return config.tracking.wandb_mode
    return "online" if os.environ.get("WANDB_API_KEY") else "offline"


def _put_back_exit_hooks(excepthook: Any, exit_function: Any) -> None:
    """Undo W&B's ``sys.excepthook`` and ``sys.exit`` patches, made when its service starts.

    W&B's hook prints the traceback and then calls the hook it replaced: after unitrack's own
    (which hands the exception to Python's), that is a second traceback. unitrack finishes the
    W&B run itself, with the exit code of the run's status, so W&B needs neither patch.
    """
    if type(getattr(sys.excepthook, "__self__", None)).__name__ == "ExitHooks":
        sys.excepthook = excepthook
    if type(getattr(sys.exit, "__self__", None)).__name__ == "ExitHooks":
        sys.exit = exit_function


def _place(source: Path, target: Path) -> None:
    """``target`` becomes the same file as ``source``: a hard link where the file system allows, else a copy."""
    import shutil

    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists() and target.samefile(source):
        return
    target.unlink(missing_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def best_of(key: str, values: tuple[float, float]) -> float:
    """The best value of a series from its (min, max): lower for losses and errors, higher otherwise."""
    return values[0] if lower_is_better(key) else values[1]


class WandbBackend(Backend):
    name = "wandb"
    capabilities = Capabilities(supports_artifacts=True)
    limits = Limits(invalid_key_chars=r"[^\w\-./ ]")

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        tracking = config.tracking
        self._mode = wandb_mode(config)
        self._project = tracking.wandb_project
        self._entity = tracking.wandb_entity
        self._group = tracking.wandb_group
        self._job_type = tracking.wandb_job_type
        self._dir = tracking.wandb_dir
        self._checkpointing = config.checkpointing
        self._uploaded: set[str] = set()
        self._run: Any = None
        self._names = KeyNames(self.limits)
        self._range: dict[str, tuple[float, float]] = {}
        self._rewinds: list[dict[str, float]] = []

    @property
    def run_dir(self) -> Path | None:
        """The W&B run's own folder (``.../wandb/offline-run-...``) once opened."""
        return Path(self._run.dir).parent if self._run is not None else None

    def open(self, run: RunInfo) -> None:
        import wandb

        live = _LIVE_RUNS.get(run.run_id)
        if live is not None:  # left open in this process by a worker that stopped without closing: take it over
            self._run = live
            self._rewinds = list(self._run.summary.get(REWINDS_KEY) or [])
            return
        labels = [key if not value else f"{key}:{value}" for key, value in run.tags.items()]
        if self._dir:
            Path(self._dir).mkdir(parents=True, exist_ok=True)
        hooks = sys.excepthook, sys.exit
        try:
            self._run = self._init(wandb, run, labels)
        finally:
            _put_back_exit_hooks(*hooks)
            quiet_wandb_terminal(wandb)
        _LIVE_RUNS[run.run_id] = self._run
        self._run.define_metric(SEQ_KEY, hidden=True)
        self._run.define_metric("*", step_metric=SEQ_KEY)
        self._rewinds = list(self._run.summary.get(REWINDS_KEY) or [])  # a reattached run keeps its own

    def _init(self, wandb: Any, run: RunInfo, labels: list[str]) -> Any:
        return wandb.init(
            project=self._project or run.experiment,
            entity=self._entity,
            group=self._group,
            job_type=self._job_type,
            name=run.name,
            id=run.run_id,
            notes=run.description or run.message,
            tags=[label[:64] for label in labels] or None,
            dir=self._dir,
            mode=self._mode,
            resume="allow",
            reinit="create_new",
            config={"unitrack": {"run_id": run.run_id, "config_hash": run.config_hash, "git": run.git}},
            settings=wandb.Settings(console="off", x_disable_stats=True, silent=True),
        )

    def write(self, events: Sequence[Event]) -> None:
        name = self._names
        run = self._run
        for event in events:
            if type(event) is MetricEvent:
                row = {name(k): v for k, v in event.values.items()}
                run.log({**row, SEQ_KEY: event.seq, STEP_KEY: event.step})
                for key, value in row.items():
                    if value == value:
                        low, high = self._range.get(key, (value, value))
                        self._range[key] = (min(low, value), max(high, value))
            elif type(event) is SystemEvent:
                row = {name(system_key(k, event.rank)): v for k, v in event.values.items()}
                run.log({**row, SEQ_KEY: event.seq})
            elif type(event) is ParamsEvent:
                run.config.update(event.values, allow_val_change=True)
            elif type(event) is TagsEvent:
                labels = [k if not v else f"{k}:{v}" for k, v in event.values.items()]
                run.tags = tuple(dict.fromkeys([*(run.tags or ()), *(label[:64] for label in labels)]))
            elif isinstance(event, RecordEvent):
                self._write_record(event)

    def _write_record(self, event: RecordEvent) -> None:
        if event.kind_name == REWIND:  # the time W&B stamps the rows with, to compare theirs against
            self._rewinds.append({"time": time.time(), "step": int(event.data.get("step", 0))})
            self._run.summary[REWINDS_KEY] = self._rewinds
        elif event.kind_name == ERROR:
            self._run.summary[ERROR_KEY] = failure_line(event.data, width=1000)
            self._run.summary[f"{ERROR_KEY}_traceback"] = str(event.data.get("traceback") or "")
        elif event.kind_name == CHECKPOINT and model_registry.registration(dict(event.data)):
            self._upload_checkpoint(event.data)  # a registered model is uploaded whatever the upload policy says
        elif event.kind_name == REGISTER_MODEL:
            checkpoint = {**(event.data.get("checkpoint") or {}), "register": event.data}
            self._upload_checkpoint(checkpoint, again=True)
        elif event.kind_name == NOTE:  # `unitrack ui`'s note: the W&B run's notes
            self._run.notes = str(event.data.get("text", ""))

    def put_checkpoint(self, path: Path, data: Mapping[str, Any]) -> None:
        """The upload policy's checkpoints: a ``model`` artifact aliased by its name and aliases (best, latest)."""
        self._upload_checkpoint(data)

    def _upload_checkpoint(self, data: Mapping[str, Any], again: bool = False) -> None:
        """A ``model`` artifact; a registered checkpoint goes to the artifact named after the model,
        with the registration's aliases (W&B moves an alias to the newest version that has it). Once
        per checkpoint (``again``: a registration by hand, a new version of the named model): the upload
        policy's delivery of a checkpoint already registered adds nothing."""
        import wandb

        if str(data.get("name")) in self._uploaded and not again:
            return
        registration = model_registry.registration(dict(data))
        name, extra = registration if registration else (f"checkpoint-{self._run.id}", [])
        metadata = {k: v for k, v in data.items() if k != "register"}
        with model_registry.checkpoint_folder(dict(data), self._checkpointing) as folder:
            artifact = wandb.Artifact(name, type="model", metadata=metadata)
            artifact.add_dir(str(folder))
            aliases = list(dict.fromkeys([str(data.get("name")), *(data.get("aliases") or []), *extra]))
            self._run.log_artifact(artifact, aliases=aliases)
        self._uploaded.add(str(data.get("name")))

    def put_artifact(self, path: Path, name: str) -> None:
        depth = len(Path(name).parts)
        base = path
        for _ in range(depth):
            base = base.parent
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        files_dir = Path(self._run.dir)
        for file in files:
            # placed in the run's files folder first: W&B then uploads it as is, instead of linking it
            # and telling the user to "call wandb.save again" once per file
            target = files_dir / file.relative_to(base)
            _place(file, target)
            self._run.save(str(target), base_path=str(files_dir), policy="now")

    def close(self, status: str) -> None:
        summary = self._run.summary
        for key, values in self._range.items():
            summary[f"best/{key}"] = best_of(key, values)
        summary["unitrack/status"] = status
        self._run.finish(exit_code=EXIT_CODES.get(status, 1))
        _LIVE_RUNS.pop(self._run.id, None)
