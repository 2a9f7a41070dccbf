"""Everything ``compare`` shows and ``explain`` reasons about, gathered from two runs.

The runs are ``RunView``s from :func:`unitrack.readers.read_run`, so a run read from MLflow,
a W&B folder or a TensorBoard log dir compares like a local one; a section whose facts a run
did not record (a backend run has no model sources) is reported as missing, not guessed.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from unitrack.analysis.activations import unhealthy_layers
from unitrack.analysis.bookkeeping import split_bookkeeping
from unitrack.analysis.diffing import ratio, settings_diff, sources_diff, text_diff
from unitrack.analysis.metrics import LoggedCurve, compare_metrics, overfitting_gap
from unitrack.analysis.noise import bucket_width, bucketed, curve, metric_noise, peer_spread
from unitrack.analysis.peers import group_curves, peer_groups, seed_keys
from unitrack.analysis_settings import AnalysisSettings
from unitrack.readers import RunView
from unitrack.reading import open_run
from unitrack.store.layout import RunPaths

if TYPE_CHECKING:
    from unitrack.store.runs import RunStore

log = logging.getLogger("unitrack")

_ENV_FACTS = ("python", "python_implementation", "platform", "machine", "cpu_count", "memory_total_mb")
_TORCH_FACTS = ("version", "cuda", "cudnn", "cuda_available", "device_count")
_PATCH_DIFF_LINES = 400  # the diff between the two uncommitted patches, cut here (--json)


def _artifact_text(view: RunView, name: str) -> str | None:
    """The text of one of the run's artifacts, when its files are here to read."""
    if view.path is None:
        return None
    for artifact in view.artifacts:
        if artifact.get("name") == name:
            paths = RunPaths(Path(view.path))
            target = paths.root / artifact["path"] if artifact.get("path") else paths.artifacts / name
            try:
                return target.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                return None
    return None


def _artifact_json(view: RunView, name: str) -> dict[str, Any] | None:
    text = _artifact_text(view, name)
    if text is None:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _identity(view: RunView) -> dict[str, Any]:
    record = view.record
    git = (record.get("info") or {}).get("git") or {}
    return {
        "run_id": view.run_id,
        "name": record.get("name"),
        "experiment": record.get("experiment"),
        "status": record.get("status"),
        "message": record.get("message"),
        "error": _failure(record.get("error")),
        "source": view.source,
        "start_time": record.get("start_time"),
        "git_commit": git.get("commit"),
    }


def _failure(error: dict[str, Any] | None) -> dict[str, Any] | None:
    """The exception that ended a failed run, without its traceback (``where`` says the line)."""
    if not error:
        return None
    return {"type": error.get("type"), "message": error.get("message"), "where": error.get("where")}


def _pair(a: Any, b: Any) -> dict[str, Any]:
    return {"a": a, "b": b, "same": a == b}


def _model_section(a: RunView, b: RunView, settings: AnalysisSettings) -> dict[str, Any]:
    summary_a, summary_b = _artifact_json(a, "model/summary.json"), _artifact_json(b, "model/summary.json")
    sources_a, sources_b = _artifact_json(a, "model/sources.json"), _artifact_json(b, "model/sources.json")
    section: dict[str, Any] = {"recorded": {"a": summary_a is not None, "b": summary_b is not None}}
    model_a = (summary_a or {}).get("model") or {}
    model_b = (summary_b or {}).get("model") or {}
    if model_a or model_b:
        arch = text_diff(model_a.get("repr"), model_b.get("repr"), "architecture")
        section["architecture"] = {"changed": arch["status"] != "same", **arch}
        section["class"] = _pair(model_a.get("class"), model_b.get("class"))
        total_a = (model_a.get("parameters") or {}).get("total")
        total_b = (model_b.get("parameters") or {}).get("total")
        section["parameters"] = {**_pair(total_a, total_b), "ratio": ratio(total_a, total_b)}
    if sources_a is not None or sources_b is not None:
        section["classes"] = sources_diff((sources_a or {}).get("classes", {}), (sources_b or {}).get("classes", {}))
        section["functions"] = sources_diff(
            (sources_a or {}).get("functions", {}), (sources_b or {}).get("functions", {})
        )
    for part in ("optimizer", "scheduler", "loss", "data"):
        left, right = (summary_a or {}).get(part), (summary_b or {}).get(part)
        if left is None and right is None:
            continue
        section[part] = settings_diff(
            _setup_settings(left), _setup_settings(right), settings.rel_tolerance, settings.abs_tolerance
        )
    return section


def _setup_settings(part: dict[str, Any] | None) -> dict[str, Any]:
    """An optimizer / scheduler / loss description as comparable settings (first param group)."""
    if not part:
        return {}
    values: dict[str, Any] = {"class": part.get("class")}
    groups = part.get("param_groups")
    if groups:
        values.update({k: v for k, v in groups[0].items() if k != "num_parameters"})
    values.update(part.get("settings") or {})
    values.update({k: v for k, v in part.items() if k not in ("class", "param_groups", "settings", "defaults")})
    return values


def _environment_section(a: RunView, b: RunView) -> dict[str, Any]:
    env_a, env_b = a.environment, b.environment
    facts = {key: _pair(env_a.get(key), env_b.get(key)) for key in _ENV_FACTS if key in env_a or key in env_b}
    torch_a, torch_b = env_a.get("torch") or {}, env_b.get("torch") or {}
    for key in _TORCH_FACTS:
        if key in torch_a or key in torch_b:
            facts[f"torch.{key}"] = _pair(torch_a.get(key), torch_b.get(key))
    gpus_a = [g.get("name") for g in env_a.get("gpus") or []]
    gpus_b = [g.get("name") for g in env_b.get("gpus") or []]
    facts["gpus"] = _pair(gpus_a, gpus_b)
    packages_a, packages_b = env_a.get("packages") or {}, env_b.get("packages") or {}
    packages = {
        "changed": [
            {"name": n, "a": packages_a[n], "b": packages_b[n]}
            for n in sorted(set(packages_a) & set(packages_b))
            if packages_a[n] != packages_b[n]
        ],
        "added": [{"name": n, "version": packages_b[n]} for n in sorted(set(packages_b) - set(packages_a))],
        "removed": [{"name": n, "version": packages_a[n]} for n in sorted(set(packages_a) - set(packages_b))],
    }
    return {"recorded": {"a": bool(env_a), "b": bool(env_b)}, "facts": facts, "packages": packages}


def _git_section(a: RunView, b: RunView) -> dict[str, Any]:
    git_a = (a.record.get("info") or {}).get("git") or {}
    git_b = (b.record.get("info") or {}).get("git") or {}
    patch_a, patch_b = _artifact_text(a, "git.patch"), _artifact_text(b, "git.patch")
    return {
        "commit": _pair(git_a.get("commit"), git_b.get("commit")),
        "branch": _pair(git_a.get("branch"), git_b.get("branch")),
        "dirty": _pair(git_a.get("dirty"), git_b.get("dirty")),
        "patch_lines": _pair(len((patch_a or "").splitlines()), len((patch_b or "").splitlines())),
        "patch_same": (patch_a or "") == (patch_b or ""),
        "patch_diff": text_diff(patch_a or "", patch_b or "", "git.patch")["diff"][:_PATCH_DIFF_LINES],
    }


def _system_section(a: RunView, b: RunView) -> dict[str, Any]:
    def peak(view: RunView, key: str) -> float | None:
        return ((view.record.get("system") or {}).get(key) or {}).get("max")

    def gpu_mean(view: RunView) -> float | None:
        values = [s.get("mean") for k, s in (view.record.get("system") or {}).items() if k.endswith("utilization_percent")]
        values = [v for v in values if isinstance(v, (int, float))]
        return sum(values) / len(values) if values else None

    def peak_memory(view: RunView) -> float | None:
        return peak(view, "memory/process_rss_mb") or (view.record.get("info") or {}).get("peak_rss_mb")

    duration_a, duration_b = a.record.get("duration"), b.record.get("duration")
    return {
        "duration_s": {**_pair(duration_a, duration_b), "ratio": ratio(duration_a, duration_b)},
        "peak_memory_mb": _pair(peak_memory(a), peak_memory(b)),
        "gpu_utilization_percent": _pair(gpu_mean(a), gpu_mean(b)),
        "gpu_memory_mb": _pair(peak(a, "gpu/0/memory_used_mb"), peak(b, "gpu/0/memory_used_mb")),
        "exit_code": _pair((a.record.get("info") or {}).get("exit_code"), (b.record.get("info") or {}).get("exit_code")),
    }


def _weights_section(store: RunStore, ref_a: str, ref_b: str) -> dict[str, Any] | None:
    """The per-layer delta of the two runs' final weights (None when either has none)."""
    from unitrack.weights.compare import summarize_run_delta  # numpy work, only when comparing

    try:
        return summarize_run_delta(store, ref_a, ref_b)
    except Exception as exc:  # a weights problem never hides the rest of the comparison
        log.warning("unitrack: weight comparison failed: %s: %s", type(exc).__name__, exc)
        return {"error": f"{type(exc).__name__}: {exc}"}


def _curves(view: RunView) -> dict[str, LoggedCurve]:
    return {key: (steps, values, view.int_valued(key)) for key, (steps, values) in view.curves().items()}


def _add_noise(store: RunStore, a: RunView, b: RunView, metrics: list[dict[str, Any]], settings: AnalysisSettings) -> int:
    """Each result metric's noise band (``metric["noise"]``); returns how many peer runs were read."""
    groups = peer_groups(store, a, b, settings)
    judged = sum(1 for metric in metrics if metric["goal"] is not None)
    for metric in metrics:
        if metric["goal"] is None:
            continue
        key = metric["key"]
        pair, peer_curves = [curve(a, key), curve(b, key)], group_curves(groups, key)
        width = bucket_width([*pair, *(c for group in peer_curves for c in group)])
        peers = peer_spread([[bucketed(c, width) for c in group] for group in peer_curves]) if groups else None
        metric["noise"] = metric_noise(bucketed(pair[0], width), bucketed(pair[1], width), peers, judged)
    return sum(len(g) for g in groups)


def gather_evidence(
    store: RunStore, ref_a: str, ref_b: str, settings: AnalysisSettings | None = None
) -> dict[str, Any]:
    """The comparison of runs ``ref_a`` and ``ref_b``: every section, as plain JSON-ready data."""
    settings = settings or AnalysisSettings()
    view_a, view_b = open_run(ref_a, store), open_run(ref_b, store)
    params_a, params_b = dict(view_a.record.get("params") or {}), dict(view_b.record.get("params") or {})
    config = settings_diff(params_a, params_b, settings.rel_tolerance, settings.abs_tolerance)
    curves_a, curves_b = _curves(view_a), _curves(view_b)
    metrics = compare_metrics(curves_a, curves_b)
    evidence: dict[str, Any] = {
        "runs": {"a": _identity(view_a), "b": _identity(view_b)},
        "config": split_bookkeeping(config, settings.ignore_params, settings.keep_params),
        "params": {"a": params_a, "b": params_b},
        "seed_keys": seed_keys({**params_a, **params_b}),
        "metrics": metrics,
        "peer_runs": _add_noise(store, view_a, view_b, metrics, settings),
        "overfitting": {"a": overfitting_gap(curves_a), "b": overfitting_gap(curves_b)},
        "activations": {"a": unhealthy_layers(curves_a), "b": unhealthy_layers(curves_b)},
        "model": _model_section(view_a, view_b, settings),
        "environment": _environment_section(view_a, view_b),
        "git": _git_section(view_a, view_b),
        "system": _system_section(view_a, view_b),
    }
    weights = _weights_section(store, ref_a, ref_b)
    if weights is not None:
        evidence["weights"] = weights
    return evidence
