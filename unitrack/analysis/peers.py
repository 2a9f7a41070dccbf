"""Other runs of the same experiment that differ from a run only in the seed (and bookkeeping).

Their spread is the most direct measure of seed-to-seed noise there is, so ``explain`` looks for
them through ``unitrack.runs`` (the store's index: params, experiment, commit; no run folder
opened) and reads the curves of at most ``analysis.peer_runs`` of them.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from unitrack.analysis.bookkeeping import bookkeeping_reason
from unitrack.analysis.noise import Curve, curve
from unitrack.analysis_settings import AnalysisSettings
from unitrack.readers import RunView

if TYPE_CHECKING:
    from unitrack.store.runs import RunStore

SEED_NAMES = ("seed", "random_seed", "manual_seed", "rng_seed", "random_state")


def seed_keys(keys: Any) -> list[str]:
    """The params among ``keys`` that set a random seed."""
    return [k for k in keys if k.lower().replace(".", "/").split("/")[-1] in SEED_NAMES]


def _same(a: Any, b: Any, settings: AnalysisSettings) -> bool:
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers) and not isinstance(a, bool) and not isinstance(b, bool):
        return math.isclose(a, b, rel_tol=settings.rel_tolerance, abs_tol=settings.abs_tolerance)
    return bool(a == b)


def _telling(params: dict[str, Any], settings: AnalysisSettings) -> dict[str, Any]:
    """The params that may change what a run learns: no seed, no bookkeeping."""
    seeds = set(seed_keys(params))
    return {
        k: v
        for k, v in params.items()
        if k not in seeds and bookkeeping_reason(k, [v], settings.ignore_params, settings.keep_params) is None
    }


def alike(a: dict[str, Any], b: dict[str, Any], settings: AnalysisSettings) -> bool:
    """Whether two runs' params agree on everything but the seed and bookkeeping."""
    left, right = _telling(a, settings), _telling(b, settings)
    return left.keys() == right.keys() and all(_same(left[k], right[k], settings) for k in left)


def _siblings(view: RunView, listed: list[RunView], settings: AnalysisSettings) -> list[RunView]:
    from unitrack.reading import run_summary  # a listed run's commit without opening its folder

    commit = view.git.get("commit")
    return [
        other
        for other in listed
        if alike(other.params, view.params, settings) and run_summary(other)["git_commit"] == commit
    ]


def peer_groups(store: RunStore, a: RunView, b: RunView, settings: AnalysisSettings) -> list[list[RunView]]:
    """Groups of runs alike but for the seed: A's with A, B's with B (one group when A and B are
    alike), each holding at least one run other than A and B, at most ``peer_runs`` read in all.
    The candidates come from the store's index (newest first); only the chosen runs' curves are read."""
    if settings.peer_runs <= 0 or a.source != "local" or b.source != "local":
        return []
    from unitrack.reading import runs

    pair = {a.run_id, b.run_id}
    budget = settings.peer_runs
    groups: list[list[RunView]] = []
    for group in [[a, b]] if alike(a.params, b.params, settings) else [[a], [b]]:
        listed = [v for v in runs(store=store, experiment=group[0].experiment, status="completed") if v.run_id not in pair]
        others = _siblings(group[0], listed, settings)[:budget]
        budget -= len(others)
        if others:
            groups.append(group + others)
    return groups


def group_curves(groups: list[list[RunView]], key: str) -> list[list[Curve]]:
    return [[curve(view, key) for view in group] for group in groups]
