"""Hugging Face Transformers: ``Trainer(..., callbacks=[UnitrackCallback("my-experiment")])``.

The callback logs what the Trainer logs (``loss`` → ``train/loss``, ``eval_loss`` →
``eval/loss``, as Hugging Face's own W&B integration names them), its ``TrainingArguments``
and the model's config as hyperparameters, the model's architecture, and every checkpoint the
Trainer saves into the run's registry (best by ``metric_for_best_model``). Set
``report_to="none"`` in the arguments so that only unitrack reports. Needs the ``transformers`` extra.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from numbers import Real
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from unitrack.config import ConfigSource
from unitrack.integrations._owner import TrackerOwner
from unitrack.tracker import ExperimentTracker

_SPLIT_PREFIXES = ("eval_", "test_")


class UnitrackCallback(TrainerCallback):
    """Records a Hugging Face ``Trainer`` run in unitrack.

    Give a ``tracker`` you own, or let the callback create the run when training begins (from
    ``name``, ``config``, ``run_name`` and ``tags``). A run it created is flushed when training
    ends, so ``trainer.evaluate()`` afterwards still logs into it, and completes at
    :meth:`finish` or at exit. ``checkpoints=False`` leaves the Trainer's saves out of the registry.
    """

    def __init__(
        self,
        name: str = "huggingface",
        config: ConfigSource = None,
        *,
        tracker: ExperimentTracker | None = None,
        run_name: str | None = None,
        tags: Mapping[str, str] | Sequence[str] | None = None,
        checkpoints: bool = True,
        watch_model: bool = True,
    ) -> None:
        self._owner = TrackerOwner(tracker, name, config, run_name, tags)
        self.checkpoints = checkpoints
        self.watch_model = watch_model

    @property
    def tracker(self) -> ExperimentTracker:
        """The unitrack run (created on first access)."""
        return self._owner.tracker

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, model: Any = None, **kwargs: Any
    ) -> None:
        params: dict[str, Any] = {"args": args.to_dict()}
        model_config = getattr(model, "config", None)
        if model_config is not None and hasattr(model_config, "to_diff_dict"):
            params["model_config"] = model_config.to_diff_dict()
        self.tracker.log_hyperparameters(params)
        if self.watch_model and model is not None:
            self.tracker.watch(model, optimizer=kwargs.get("optimizer"), scheduler=kwargs.get("lr_scheduler"))

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        metrics = trainer_metrics(logs or {})
        if metrics:
            self.tracker.log_metrics(metrics, step=state.global_step)

    def on_save(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, model: Any = None, **kwargs: Any
    ) -> None:
        if not self.checkpoints or model is None:
            return
        is_best = state.best_global_step == state.global_step if args.metric_for_best_model else None
        self.tracker.save_checkpoint(
            model=model,
            epoch=int(state.epoch or 0),
            step=state.global_step,
            optimizer=kwargs.get("optimizer"),
            scheduler=kwargs.get("lr_scheduler"),
            is_best=is_best,
            **latest_metrics(state),
        )

    def on_train_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        if self._owner.created:
            self.tracker.flush()

    def finish(self, status: str = "completed") -> None:
        """Finish the run now, if this callback created it."""
        self._owner.finish(status)


def trainer_metrics(logs: Mapping[str, Any]) -> dict[str, float]:
    """The numbers of one Trainer log, named by split: ``eval_loss`` → ``eval/loss``, ``loss`` → ``train/loss``."""
    metrics: dict[str, float] = {}
    for key, value in logs.items():
        cls = type(value)
        if cls is not float and cls is not int and (cls is bool or not isinstance(value, Real)):
            continue
        metrics[_split_name(key)] = float(value)
    return metrics


@lru_cache(maxsize=1024)
def _split_name(key: str) -> str:
    prefix = next((p for p in _SPLIT_PREFIXES if key.startswith(p)), None)
    return f"{prefix[:-1]}/{key[len(prefix):]}" if prefix else f"train/{key}"


def latest_metrics(state: TrainerState) -> dict[str, float]:
    """The metrics logged at the current step (the checkpoint's own record of how good it was)."""
    merged: dict[str, Any] = {}
    for entry in state.log_history:
        if entry.get("step") == state.global_step:
            merged.update(entry)
    merged.pop("step", None)
    merged.pop("epoch", None)
    return trainer_metrics(merged)
