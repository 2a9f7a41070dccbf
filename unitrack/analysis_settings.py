"""The ``analysis`` section as ``compare`` and ``explain`` read it: a plain dataclass.

Comparing two runs on the command line should not pay for pydantic and the building of every
config model (about a third of a 0.5 s command) just to learn the defaults. So the analysis code
reads this dataclass; :func:`analysis_settings` returns its defaults when there is no config file
and no ``UNITRACK__`` variable to apply, and goes through :func:`unitrack.config.load_config` (which
validates, and names the file and line of a mistake) otherwise. ``unitrack.config.AnalysisConfig``,
which documents each key, takes its defaults from here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Literal

from unitrack.store.layout import ENV_PREFIX

BOOKKEEPING_PATTERNS = (
    "*dir", "*_dir_*", "*path", "*_file", "*filename*", "out", "output*", "save_to", "*logdir*", "*hostname*", "host",
    "*timestamp*", "run_name", "name", "exp_name", "experiment*", "message", "notes", "comment", "description", "tags",
    "project", "entity", "wandb_*", "mlflow_*", "tensorboard*", "report_to",
    "log_*", "logging_*", "print_*", "*_every", "*_interval", "*_freq", "*_frequency", "logging_steps", "save_steps",
    "eval_steps", "save_total_limit", "checkpoint_*", "ckpt_*", "keep_last*", "max_checkpoints",
    "*num_workers*", "workers", "prefetch_factor", "pin_memory", "persistent_workers",
    "device", "devices", "gpu", "gpus", "gpu_id*", "cuda_visible_devices", "local_rank",
    "verbose", "verbosity", "quiet", "debug", "progress*", "*tqdm*", "resume*", "restore*", "overwrite*", "dry_run",
    "trial", "trial_number",
)  # fmt: skip
TRAINING_PATTERNS = (
    "*data*", "*model*", "*pretrained*", "*tokenizer*", "*vocab*", "*weights*", "*init*", "*corpus*", "*split*",
    "*train_file*", "*validation_file*", "*test_file*",
)  # fmt: skip


@dataclass(frozen=True)
class AnalysisSettings:
    """What counts as a difference, and who explains it (docs/configuration.md, ``analysis.*``)."""

    rel_tolerance: float = 1e-6
    abs_tolerance: float = 1e-12
    ignore_params: list[str] = field(default_factory=lambda: list(BOOKKEEPING_PATTERNS))
    keep_params: list[str] = field(default_factory=lambda: list(TRAINING_PATTERNS))
    peer_runs: int = 20
    provider: Literal["auto", "rules", "anthropic"] = "auto"
    model: str = "claude-sonnet-4-6"
    api_key: str | None = None
    base_url: str | None = None
    timeout: float = 60.0
    retries: int = 2
    max_tokens: int = 1500


def analysis_settings(config_file: str | os.PathLike[str] | None = None) -> AnalysisSettings:
    """The ``analysis`` section of ``config_file`` (None: the defaults), with ``UNITRACK__...``
    environment variables applied, as ``load_config(config_file).analysis`` has it."""
    if config_file is None and not any(name.startswith(ENV_PREFIX) for name in os.environ):
        return AnalysisSettings()
    from unitrack.config import load_config

    return AnalysisSettings(**load_config(config_file).analysis.model_dump())
