"""Other runs of the same experiment that differ from a run only in the seed (and bookkeeping).

Their spread is the most direct measure of seed-to-seed noise there is, so ``explain`` looks for
them in the store's index (params, experiment, commit: no run folder opened) and reads the
curves of at most ``analysis.peer_runs`` of them.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from unitrack.analysis.bookkeeping import bookkeeping_reason
from unitrack.analysis.noise import Curve, curve
from unitrack.config import AnalysisConfig
from unitrack.readers import RunView, read_run

if TYPE_CHECKING:
    from unitrack.store.index import IndexRow
    from unitrack.store.runs import RunStore

SEED_NAMES = ("seed", "random_seed", "manual_seed", "rng_seed", "random_state")


def seed_keys(keys: Any) -> list[str]:
    """The params among ``keys`` that set a random seed."""
    return [k for k in keys if k.lower().replace(".", "/").split("/")[-1] in SEED_NAMES]


def _same(a: Any, b: Any, settings: AnalysisConfig) -> bool:
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers) and not isinstance(a, bool) and not isinstance(b, bool):
        return math.isclose(a, b, rel_tol=settings.rel_tolerance, abs_tol=settings.abs_tolerance)
    return bool(a == b)


def _telling(params: dict[str, Any], settings: AnalysisConfig) -> dict[str, Any]:
    """The params that may change what a run learns: no seed, no bookkeeping."""
    seeds = set(seed_keys(params))
    return {
        k: v
        for k, v in params.items()
        if k not in seeds and bookkeeping_reason(k, [v], settings.ignore_params, settings.keep_params) is None
    }


def alike(a: dict[str, Any], b: dict[str, Any], settings: AnalysisConfig) -> bool:
    """Whether two runs' params agree on everything but the seed and bookkeeping."""
    left, right = _telling(a, settings), _telling(b, settings)
    return left.keys() == right.keys() and all(_same(left[k], right[k], settings) for k in left)


def _siblings(view: RunView, rows: list[IndexRow], settings: AnalysisConfig) -> list[str]:
    record = view.record
    commit = ((record.get("info") or {}).get("git") or {}).get("commit")
    params = dict(record.get("params") or {})
    return [
        row.run_id
        for row in rows
        if row.attributes.get("experiment") == record.get("experiment")
        and row.attributes.get("status") == "completed"
        and row.attributes.get("git_commit") == commit
        and alike(row.params, params, settings)
    ]


def peer_groups(store: RunStore, a: RunView, b: RunView, settings: AnalysisConfig) -> list[list[RunView]]:
    """Groups of runs alike but for the seed: A's with A, B's with B (one group when A and B are
    alike), each holding at least one run other than A and B, at most ``peer_runs`` read in all."""
    if settings.peer_runs <= 0 or a.source != "local" or b.source != "local":
        return []
    rows = store.rows()
    pair = {a.run_id, b.run_id}
    budget = settings.peer_runs
    groups: list[list[RunView]] = []
    members = [[a, b]] if alike(dict(a.record.get("params") or {}), dict(b.record.get("params") or {}), settings) else [[a], [b]]
    for group in members:
        others = [run_id for run_id in reversed(_siblings(group[0], rows, settings)) if run_id not in pair][:budget]
        budget -= len(others)
        if others:
            groups.append(group + [read_run(run_id, store) for run_id in others])
    return groups


def group_curves(groups: list[list[RunView]], key: str) -> list[list[Curve]]:
    return [[curve(view.metric_history.get(key, [])) for view in group] for group in groups]
