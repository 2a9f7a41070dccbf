"""The configuration: one pydantic model, loaded from YAML, a dict, or defaults.

The flat layouts of the multi-backend design load as written (``use_wandb: true``...), and so does the list form
``tracking: {backends: [local, mlflow]}``. ``extends: base.yaml`` inherits from another file, and
environment variables override any key: ``UNITRACK__TRACKING__USE_MLFLOW=true``. Every error
names the file, the line and the key, because a typo in a config should cost seconds, not a run.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from unitrack.analysis_settings import BOOKKEEPING_PATTERNS, TRAINING_PATTERNS, AnalysisSettings
from unitrack.errors import ConfigError
from unitrack.redact import redact_mapping
from unitrack.store.layout import DEFAULT_STORE_DIR, ENV_PREFIX, STORE_ENV  # re-exported: config.STORE_ENV

# the built-ins' on/off switches of the first config format (use_mlflow: true...); any registered backend may be listed instead
SWITCHED_BACKENDS: tuple[str, ...] = ("mlflow", "wandb", "tensorboard")

# The flat "basic" layout puts these at the top level; they belong to `checkpointing`.
_TOP_LEVEL_CHECKPOINT_KEYS = ("checkpoint_dir", "max_checkpoints", "save_frequency", "compression")

Path_ = tuple[str, ...]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TrackingConfig(_Section):
    """Which backends receive the run, and how delivery to them behaves."""

    backends: list[str] | None = Field(
        None,
        description="Backends to use, e.g. [local, mlflow]: 'local' (always on), a built-in, or one registered "
        "under the entry-point group unitrack.backends.",
    )
    use_mlflow: bool | None = Field(None, description="On/off switch for MLflow, as in the first config format (same as listing it).")
    use_wandb: bool | None = Field(None, description="On/off switch for Weights & Biases, as in the first config format.")
    use_tensorboard: bool | None = Field(None, description="On/off switch for TensorBoard, as in the first config format.")

    mlflow_tracking_uri: str | None = Field(
        None, description="MLflow tracking URI; default: MLFLOW_TRACKING_URI, then MLflow's own default."
    )
    mlflow_experiment: str | None = Field(None, description="MLflow experiment; default: the experiment name.")
    mlflow_requests_in_flight: int = Field(
        4, ge=1, le=64,
        description="log_batch requests to MLflow in flight at once; match the server's --workers (a SQLite store takes one at a time).",
    )
    mlflow_artifact_location: str | None = Field(
        None,
        description="Artifact location (a path or URI) of MLflow experiments unitrack creates; default: the "
        "server's, or <store_dir>/mlflow-artifacts for a database URI without a server (never ./mlruns).",
    )
    wandb_project: str | None = Field(None, description="W&B project; default: the experiment name.")
    wandb_entity: str | None = Field(None, description="W&B entity (team or user).")
    wandb_mode: Literal["online", "offline", "disabled"] | None = Field(
        None, description="W&B mode; default: online with an API key configured, else offline."
    )
    wandb_group: str | None = Field(None, description="W&B run group.")
    wandb_job_type: str | None = Field(None, description="W&B job type.")
    wandb_dir: str | None = Field(None, description="Folder for W&B's files; default: W&B's own (./wandb).")
    tensorboard_log_dir: str = Field("logs/tensorboard", description="TensorBoard log dir; one sub-folder per run.")

    flush_interval: float = Field(
        1.0, gt=0, le=1.0, description="Seconds between forced writes of the journal to disk (at most 1)."
    )
    queue_size: int = Field(100_000, ge=100, description="Events held in memory before the queue-full policy applies.")
    queue_full: Literal["block", "drop"] = Field(
        "block",
        description="When the queue is full: 'block' waits for the writer (up to queue_block_timeout, "
        "then drops), 'drop' drops at once. Every drop is counted and warned about.",
    )
    queue_block_timeout: float = Field(5.0, ge=0, description="Longest wait of one call under 'block'.")
    batch_size: int = Field(5000, ge=1, description="Most events a backend worker reads from the journal at once.")
    finish_timeout: float = Field(
        60.0, ge=0, description="Longest wait for the backends at finish(); what is left is owed and can be synced."
    )
    retry_attempts: int = Field(4, ge=1, description="Tries of one batch before the circuit breaker opens.")
    retry_max_wait: float = Field(8.0, gt=0, description="Longest back-off between two tries (seconds).")
    breaker_cooldown: float = Field(15.0, gt=0, description="Seconds an open circuit waits before probing again.")
    rank_policy: Literal["rank0", "all"] = Field(
        "rank0",
        description="Distributed runs: 'rank0' records only rank 0 (the other ranks join its run as no-ops); "
        "'all' adds the other ranks' system samples and the metrics matching rank_metrics, labelled by rank.",
    )
    rank_metrics: list[str] = Field(
        default_factory=lambda: ["*"],
        description="Under rank_policy 'all': glob patterns of the metrics other ranks send (as rank<r>/<key>).",
    )
    rank_join_timeout: float = Field(
        120.0, gt=0, description="Longest wait of a non-zero rank for rank 0's run (and of rank 0 for the others at finish)."
    )

    backend_settings: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Each backend's own settings, written as tracking.<name>: {...} and validated by the "
        "settings model the backend declares.",
    )

    @model_validator(mode="before")
    @classmethod
    def _collect_backend_sections(cls, data: Any) -> Any:
        """``tracking.<backend name>: {...}`` sections become ``backend_settings`` (other unknown keys stay errors)."""
        if not isinstance(data, Mapping):
            return data
        from unitrack.backends.registry import is_known

        data = dict(data)
        sections = dict(data.get("backend_settings") or {})
        for key in [k for k in data if k not in cls.model_fields and isinstance(k, str) and is_known(k)]:
            sections[key] = data.pop(key)
        if sections:
            data["backend_settings"] = sections
        return data

    @model_validator(mode="after")
    def _reconcile_switches(self) -> TrackingConfig:
        from unitrack.backends.registry import LOCAL, is_known, known_names

        listed = list(dict.fromkeys(self.backends or []))
        unknown = [name for name in listed if not is_known(name)]
        if unknown:
            raise ValueError(f"unknown backend {unknown[0]!r}; known: {', '.join(known_names())}")
        for name in SWITCHED_BACKENDS:
            flag = getattr(self, f"use_{name}")
            if flag is False and name in listed:
                raise ValueError(f"use_{name} is false but backends lists {name!r}: remove one of them")
            if flag and name not in listed:
                listed.append(name)
        # the built-ins in their fixed order, then the others as listed
        ordered = [LOCAL, *(n for n in SWITCHED_BACKENDS if n in listed), *(n for n in listed if n not in (LOCAL, *SWITCHED_BACKENDS))]
        object.__setattr__(self, "backends", ordered)
        for name in SWITCHED_BACKENDS:
            object.__setattr__(self, f"use_{name}", name in listed)
        self._validate_backend_settings()
        return self

    def _validate_backend_settings(self) -> None:
        from unitrack.backends.registry import backend_class

        for name, raw in self.backend_settings.items():
            model = backend_class(name).settings_model
            if model is None:
                raise ValueError(f"backend {name!r} takes no settings (remove tracking.{name})")
            try:
                model.model_validate(raw)
            except ValidationError as exc:
                problems = "; ".join(
                    f"tracking.{name}.{'.'.join(str(p) for p in error['loc'])}: {error['msg']}" for error in exc.errors()
                )
                raise ValueError(problems) from None

    @property
    def remote_backends(self) -> list[str]:
        return [name for name in self.backends or [] if name != "local"]


class S3Settings(_Section):
    """How to reach S3-compatible storage; unset keys come from the standard AWS_* variables and files."""

    endpoint_url: str | None = Field(None, description="S3 endpoint, e.g. http://127.0.0.1:8333; default: $AWS_ENDPOINT_URL, else AWS.")
    region: str | None = Field(None, description="Region; default: $AWS_DEFAULT_REGION, else us-east-1.")
    profile: str | None = Field(None, description="Profile in ~/.aws; default: $AWS_PROFILE.")


class CheckpointingConfig(_Section):
    """Where checkpoints go and how many are kept."""

    checkpoint_dir: str | None = Field(
        None,
        description="Folder for checkpoints (one sub-folder per run), or s3://bucket/prefix for object storage; "
        "default: <run folder>/checkpoints.",
    )
    s3: S3Settings = Field(default_factory=S3Settings, description="Object storage settings for s3:// checkpoint_dir.")
    register_model: str | None = Field(
        None, description="Register the best checkpoint as a version of this model (MLflow Model Registry, W&B model artifacts)."
    )
    register_aliases: list[str] = Field(
        default_factory=lambda: ["champion"], description="Aliases the newest best version gets (a newer best moves them)."
    )
    max_checkpoints: int | None = Field(None, ge=1, description="Most checkpoints kept (best and last always).")
    save_frequency: int | None = Field(
        None, ge=1, description="Save only when step is a multiple of this (other calls are skipped unless is_best=True)."
    )
    compression: Literal["none", "gzip", "zstd"] = Field(
        "none", description="Compression of the tensor files: none (fastest), gzip, or zstd (needs unitrack[zstd])."
    )
    monitor: str | None = Field(
        None, description="Metric that ranks checkpoints for 'best' (e.g. val_loss); default: the is_best flag."
    )
    mode: Literal["min", "max"] | None = Field(
        None,
        description="Whether a lower or a higher monitored value is better; default: from the metric's name "
        "(acc, f1, auc... higher; loss, error, nll... lower), else lower.",
    )
    keep_last: int | None = Field(None, ge=1, description="Keep the N newest checkpoints.")
    keep_best: int | None = Field(None, ge=1, description="Keep the k best checkpoints (by monitor, or is_best).")
    keep_every_n_steps: int | None = Field(None, ge=1, description="Keep every checkpoint whose step is a multiple of N.")
    async_save: bool = Field(
        True, description="Copy the state to CPU on the training thread, write it in the background."
    )
    on_error: Literal["raise", "warn"] = Field(
        "raise", description="A failed save (full disk, permissions): raise, or warn and let training go on."
    )
    resume_from: Literal["last", "best"] = Field(
        "last", description="Which checkpoint a resumed run continues from: the last or the best that verifies."
    )
    encrypt: bool = Field(False, description="Encrypt the tensor files at rest (AES-256-GCM; needs unitrack[crypto]).")
    encryption_key_env: str = Field(
        "UNITRACK_CHECKPOINT_KEY",
        description="Environment variable holding the 32-byte key (64 hex digits or base64); never stored.",
    )
    upload: dict[str, Literal["best", "last", "all", "none"]] = Field(
        default_factory=dict,
        description="Which checkpoints each remote backend receives, by backend name: best, last, all or none "
        "(default: best). Applied by the dispatcher, for every backend that stores files.",
    )

    @field_validator("upload")
    @classmethod
    def _upload_names_backends(cls, value: dict[str, str]) -> dict[str, str]:
        from unitrack.backends.registry import is_known, known_names

        for name in value:
            if not is_known(name) or name == "local":
                raise ValueError(f"{name!r} is not a remote backend; known: {', '.join(known_names()[1:])}")
        return value

    @field_validator("checkpoint_dir")
    @classmethod
    def _s3_url(cls, value: str | None) -> str | None:
        if value and value.startswith("s3:") and (not value.startswith("s3://") or len(value) <= len("s3://")):
            raise ValueError(f"{value!r}: write s3://BUCKET/PREFIX")
        return value


class MonitoringConfig(_Section):
    """The system monitor: a background thread sampling CPU, memory, disk and GPUs."""

    enabled: bool = Field(True, description="Run the system monitor.")
    interval: float = Field(10.0, gt=0, description="Seconds between two samples.")
    log_cpu_usage: bool = Field(True, description="Process and system CPU %.")
    log_memory_usage: bool = Field(True, description="Process RSS and system memory.")
    log_disk_usage: bool = Field(True, description="Disk use of the store's file system.")
    log_gpu_usage: bool = Field(True, description="Per-GPU utilisation, memory, temperature, power (pynvml).")
    create_plots: bool = Field(False, description="Make plots of the run at finish.")


class CaptureConfig(_Section):
    """What a run records about where it ran."""

    git: bool = Field(True, description="Commit, branch, dirty flag and the uncommitted patch.")
    environment: bool = Field(True, description="Python, OS, host, torch/CUDA versions, GPUs.")
    packages: bool = Field(True, description="Versions of every installed package.")
    handle_signals: bool = Field(True, description="On SIGTERM, flush and mark the run 'interrupted'.")


_ANALYSIS = AnalysisSettings()


class AnalysisConfig(_Section):
    """``unitrack compare`` and ``explain``: what counts as a difference, and who explains it.

    The analysis code reads it as :class:`AnalysisSettings` (a plain dataclass, no pydantic to import),
    whose defaults these are."""

    rel_tolerance: float = Field(_ANALYSIS.rel_tolerance, ge=0, description="Numbers closer than this (relative) compare equal.")
    abs_tolerance: float = Field(_ANALYSIS.abs_tolerance, ge=0, description="Numbers closer than this (absolute) compare equal.")
    ignore_params: list[str] = Field(
        default_factory=lambda: list(BOOKKEEPING_PATTERNS),
        description="Bookkeeping params (paths, names, logging/checkpoint intervals, workers, devices, verbosity, "
        "resume flags): shell-style patterns matched on the full key and its last part; such params are listed "
        "apart and never ranked as causes. A path-shaped value counts too.",
    )
    keep_params: list[str] = Field(
        default_factory=lambda: list(TRAINING_PATTERNS),
        description="Patterns of params that are never bookkeeping, even with a path for a value (data, model, "
        "tokenizer, initial weights).",
    )
    peer_runs: int = Field(
        _ANALYSIS.peer_runs, ge=0, description="At most this many other runs of the experiment that differ only in the seed are read "
        "to measure the noise (0: the two runs alone).",
    )
    provider: Literal["auto", "rules", "anthropic"] = Field(
        _ANALYSIS.provider, description="Who explains: 'rules' (offline), 'anthropic', or 'auto' (anthropic when a key is set)."
    )
    model: str = Field(_ANALYSIS.model, description="The Anthropic model that explains.")
    api_key: str | None = Field(_ANALYSIS.api_key, description="Anthropic API key; default: $ANTHROPIC_API_KEY.")
    base_url: str | None = Field(_ANALYSIS.base_url, description="Anthropic API base URL; default: the SDK's (or $ANTHROPIC_BASE_URL).")
    timeout: float = Field(_ANALYSIS.timeout, gt=0, description="Seconds one request to the LLM may take.")
    retries: int = Field(_ANALYSIS.retries, ge=0, description="Retries of a failed LLM request before falling back to the rules.")
    max_tokens: int = Field(_ANALYSIS.max_tokens, ge=100, description="Longest explanation the LLM may write (tokens).")


class WeightsConfig(_Section):
    """Weight snapshots (``snapshot_weights``, ``watch(snapshot_every=)``) and the weight-delta metrics."""

    keep_recent: int | None = Field(
        None, ge=0, description="Keep this many newest snapshots in full and thin older ones; default: keep all."
    )
    thin_every: int = Field(1, ge=1, description="Of the older snapshots keep every Nth (the first is always kept).")
    histograms: bool | Literal["auto"] = Field(
        "auto", description="Weight histograms with each snapshot (`histogram` events); auto: when TensorBoard is on."
    )
    tolerance: float = Field(0.0, ge=0, description="An element counts as changed when |delta| exceeds this.")
    top_k: int = Field(5, ge=1, description="How many of the most-moved units (rows) a per-neuron report lists.")
    activations_every: int | None = Field(
        None, ge=1, description="With watch(model): statistics of each module's output every N training steps; off by default."
    )
    activations_modules: list[str] | None = Field(
        None, description="Module name globs to watch (e.g. ['encoder.*', 'fc2']); default: layers with parameters and activations."
    )
    activations_histograms: bool | Literal["auto"] = Field(
        "auto", description="Histograms of the sampled outputs (`histogram` events); auto: when TensorBoard is on."
    )


class Config(_Section):
    """Everything unitrack can be told; see docs/configuration.md for every key."""

    run_name: str | None = Field(None, description="The run's name; default: the experiment name.")
    description: str | None = Field(None, description="Free text describing the run.")
    tags: dict[str, str] = Field(
        default_factory=dict, description="Tags: a list of labels or a mapping of key to value."
    )
    store_dir: str = Field(
        default_factory=lambda: os.environ.get(STORE_ENV) or DEFAULT_STORE_DIR,
        description=f"The local store; default: ${STORE_ENV} or ./{DEFAULT_STORE_DIR}.",
    )
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    checkpointing: CheckpointingConfig = Field(default_factory=CheckpointingConfig)
    monitoring: MonitoringConfig = Field(default_factory=MonitoringConfig)
    capture: CaptureConfig = Field(default_factory=CaptureConfig)
    analysis: AnalysisConfig = Field(default_factory=AnalysisConfig)
    weights: WeightsConfig = Field(default_factory=WeightsConfig)

    @model_validator(mode="before")
    @classmethod
    def _accept_seed_layout(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            data = dict(data)
            _move_top_level_checkpoint_keys(data, {})
        return data

    @field_validator("tags", mode="before")
    @classmethod
    def _tags_as_mapping(cls, value: Any) -> Any:
        if value is None:
            return {}
        if isinstance(value, (list, tuple)):
            return {str(label): "" for label in value}
        if isinstance(value, Mapping):
            return {str(k): "" if v is None else str(v) for k, v in value.items()}
        return value

    def redacted(self) -> dict[str, Any]:
        """The configuration as plain data with every secret redacted: what may be stored or sent."""
        return redact_mapping(self.model_dump(mode="json"))


def config_hash(cfg: Config) -> str:
    """A deterministic id of a configuration: independent of key order and of where the store is."""
    data = cfg.redacted()
    data.pop("store_dir", None)
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


# What every entry point takes as its config: a Config, a mapping, a YAML path, or None (defaults).
ConfigSource = Config | Mapping[str, Any] | str | os.PathLike[str] | None


def load_config(
    source: ConfigSource = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Build a :class:`Config` from a YAML file, a mapping, a Config or defaults (None).

    Precedence, lowest first: the file (and what it extends), ``UNITRACK__...`` environment
    variables, then ``overrides`` (nested or dotted keys: ``{"tracking.use_mlflow": True}``).
    """
    origins: dict[Path_, str] = {}
    if isinstance(source, Config):
        if not overrides:
            return source
        raw: dict[str, Any] = source.model_dump(exclude_unset=True)
    elif source is None:
        raw = {}
    elif isinstance(source, Mapping):
        raw = _plain_dict(source)
        _record_origins(raw, (), "config mapping", origins)
    elif isinstance(source, (str, os.PathLike)):
        raw = _load_yaml_tree(Path(source), origins, chain=())
    else:
        raise ConfigError(f"cannot load a config from {type(source).__name__}: give a path, a dict, a Config or None")

    _apply_environment(raw, origins)
    for key, value in (overrides or {}).items():
        path = tuple(str(key).split("."))
        _set_path(raw, path, value)
        _record_origins(value, path, "overrides", origins)
    _move_top_level_checkpoint_keys(raw, origins)
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_describe_validation_error(exc, origins)) from None


# --- YAML reading with the line of every key -------------------------------------------------


def _load_yaml_tree(path: Path, origins: dict[Path_, str], chain: tuple[Path, ...]) -> dict[str, Any]:
    resolved = path.resolve()
    if resolved in chain:
        cycle = " -> ".join(str(p) for p in (*chain, resolved))
        raise ConfigError(f"{path}: 'extends' forms a cycle: {cycle}")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        where = f" (extended by {chain[-1]})" if chain else ""
        raise ConfigError(f"config file not found: {path}{where}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None

    own_origins: dict[Path_, str] = {}
    data = _parse_yaml(text, str(path), own_origins)
    extends = data.pop("extends", None)
    if extends is None:
        origins.update(own_origins)
        return data
    bases = [extends] if isinstance(extends, str) else extends
    if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        raise ConfigError(f"{own_origins.get(('extends',), path)}: 'extends' must be a file name or a list of them")
    merged: dict[str, Any] = {}
    for base in bases:
        base_data = _load_yaml_tree(path.parent / base, origins, (*chain, resolved))
        merged = _deep_merge(merged, base_data)
    origins.update(own_origins)
    return _deep_merge(merged, data)


def _parse_yaml(text: str, filename: str, origins: dict[Path_, str]) -> dict[str, Any]:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{filename}:{mark.line + 1}:{mark.column + 1}" if mark else filename
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}: cannot parse YAML: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict) or node is None:
        raise ConfigError(f"{filename}:1: a config must be a mapping of keys, not a {type(data).__name__}")
    _walk_node(node, (), filename, origins)
    return data


def _walk_node(node: yaml.Node, path: Path_, filename: str, origins: dict[Path_, str]) -> None:
    if not isinstance(node, yaml.MappingNode):
        return
    seen: set[str] = set()
    for key_node, value_node in node.value:
        key = str(key_node.value)
        where = f"{filename}:{key_node.start_mark.line + 1}"
        if key in seen:
            dotted = ".".join((*path, key))
            raise ConfigError(f"{where}: duplicate key {dotted!r}")
        seen.add(key)
        here = (*path, key)
        origins[here] = where
        _walk_node(value_node, here, filename, origins)


# --- merging, environment, origins -----------------------------------------------------------


def _plain_dict(value: Mapping[str, Any]) -> dict[str, Any]:
    return {str(k): _plain_dict(v) if isinstance(v, Mapping) else v for k, v in value.items()}


def _deep_merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _deep_merge(dict(merged[key]), value)
        else:
            merged[key] = value
    return merged


def _set_path(data: dict[str, Any], path: Path_, value: Any) -> None:
    target = data
    for part in path[:-1]:
        child = target.get(part)
        if not isinstance(child, dict):
            child = {}
            target[part] = child
        target = child
    if isinstance(value, Mapping) and isinstance(target.get(path[-1]), dict):
        target[path[-1]] = _deep_merge(target[path[-1]], value)
    else:
        target[path[-1]] = _plain_dict(value) if isinstance(value, Mapping) else value


def _record_origins(value: Any, path: Path_, where: str, origins: dict[Path_, str]) -> None:
    if path:
        origins[path] = where
    if isinstance(value, Mapping):
        for key, child in value.items():
            _record_origins(child, (*path, str(key)), where, origins)


def _apply_environment(raw: dict[str, Any], origins: dict[Path_, str]) -> None:
    for name in sorted(os.environ):
        if not name.startswith(ENV_PREFIX):
            continue
        path = tuple(part.lower() for part in name[len(ENV_PREFIX) :].split("__"))
        if not all(path):
            raise ConfigError(f"environment variable {name}: empty key part")
        text = os.environ[name]
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            value = text
        _set_path(raw, path, value)
        origins[path] = f"environment variable {name}"


def _move_top_level_checkpoint_keys(raw: dict[str, Any], origins: dict[Path_, str]) -> None:
    for key in _TOP_LEVEL_CHECKPOINT_KEYS:
        if key not in raw:
            continue
        section = raw.get("checkpointing")
        if section is None:
            section = raw["checkpointing"] = {}
        if not isinstance(section, dict):
            return  # the type error is reported by validation
        if key in section:
            where = origins.get((key,), "config")
            raise ConfigError(f"{where}: {key!r} is given both at the top level and under 'checkpointing'")
        section[key] = raw.pop(key)
        if (key,) in origins:
            origins[("checkpointing", key)] = origins.pop((key,))


def _describe_validation_error(exc: ValidationError, origins: Mapping[Path_, str]) -> str:
    lines = []
    for error in exc.errors():
        loc = tuple(str(part) for part in error["loc"])
        key = ".".join(loc) or "(config)"
        where = _origin_of(loc, origins)
        if error["type"] == "extra_forbidden":
            message = f"unknown key {key!r}"
            hint = _close_match(loc)
            if hint:
                message += f" (did you mean {hint!r}?)"
        else:
            shown = error.get("input")
            got = f" (got {shown!r})" if not isinstance(shown, (dict, list)) and "input" in error else ""
            message = f"{key}: {error['msg']}{got}"
        lines.append(f"{where}: {message}" if where else message)
    return "invalid configuration:\n  " + "\n  ".join(lines) if len(lines) > 1 else lines[0]


def _origin_of(loc: Path_, origins: Mapping[Path_, str]) -> str | None:
    for end in range(len(loc), 0, -1):
        where = origins.get(loc[:end])
        if where:
            return where
    return None


def _close_match(loc: Path_) -> str | None:
    import difflib

    model: type[BaseModel] = Config
    for part in loc[:-1]:
        field = model.model_fields.get(part)
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    matches = difflib.get_close_matches(loc[-1], list(model.model_fields), n=1)
    return ".".join((*loc[:-1], matches[0])) if matches else None
