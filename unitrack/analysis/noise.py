"""How much two runs' curves differ by chance, measured from the runs themselves.

Three estimates of one run's noise (a standard deviation, in the metric's unit) are taken:

- ``tail``: how much each curve fluctuates around its own straight-line trend over its last
  third (seed-to-seed differences at the end are of that order);
- ``early``: how much the difference between the two curves jitters over their first third
  (the spread of the steep early epochs, which a seed alone already makes large) — it widens
  the band for those epochs, fading out over the second third, so that a real effect is not
  hidden by it at the end. A seed can also shift the early curves smoothly, which no jitter
  shows: so a stretch apart that starts in the first third and closes again counts only when
  peers (below) measured the early spread step by step;
- ``peers``: the spread of other runs of the same experiment that differ only in the seed, step
  by step and at the end (``unitrack.analysis.peers``), when the store holds some.

A curve longer than ``MAX_POINTS`` steps is first averaged over buckets of steps (the same for
every run compared), so that a per-batch loss is judged by its trend, not its single batches.
The band for a difference between two runs is ``2·√2·σ`` (about 95 % for two independent runs
with the same noise), widened when several result metrics are judged together so that the
chance that any of them crosses its band by luck stays about 5 %; a difference inside it is
"within noise". The curves *part* at the first
common step from which the difference stays beyond that step's band for two points in a row
(or at the last common step, when the final difference is beyond the band too); a stretch apart
that closes again counts only when it reached three times its band.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from unitrack.readers import RunView

Curve = tuple[np.ndarray, np.ndarray]  # steps, values (finite only)

BAND_WIDTH = 2.0 * math.sqrt(2.0)
MAX_POINTS = 240  # longer curves are compared as bucket means
REJOINED_Z = 3.0


def curve(view: RunView, key: str) -> Curve:
    """A run's finite points of metric ``key`` as (steps, values); a run whose steps go back (a loop
    that restarts ``step`` every epoch) is indexed by the order its points were logged instead."""
    if key not in view.metric_keys:
        return np.zeros(0, np.int64), np.zeros(0, np.float64)
    steps, values = view.history(key)
    if len(steps) > 1 and not bool(np.all(np.diff(steps) > 0)):
        steps = np.arange(len(values), dtype=np.int64)
    finite = np.isfinite(values)
    return steps[finite], values[finite]


def bucket_width(curves: Sequence[Curve]) -> int:
    """Steps per bucket so that the longest of ``curves`` has at most ``MAX_POINTS`` buckets."""
    last = max((int(steps[-1]) for steps, _ in curves if len(steps)), default=0)
    return max(1, -(-(last + 1) // MAX_POINTS))


def bucketed(c: Curve, width: int) -> Curve:
    """A long curve as the means of buckets of ``width`` steps (each at its first step), so that
    a per-batch loss is judged on its trend, the same buckets for every run compared."""
    steps, values = c
    if width <= 1 or not len(steps):
        return c
    index = steps // width
    buckets, start = np.unique(index, return_index=True)
    sums = np.add.reduceat(values, start)
    counts = np.diff(np.append(start, len(values)))
    return buckets * width, sums / counts


def tail_points(n: int) -> int:
    """How many last points stand for a run's final value: a fifth of the run, 1 to 5 points."""
    return max(1, min(5, n // 5))


def final_value(values: np.ndarray) -> float:
    return float(values[-tail_points(len(values)) :].mean())


def fluctuation(values: np.ndarray) -> float | None:
    """The standard deviation of a curve's last third around its straight-line trend (3+ points)."""
    tail = values[-max(3, len(values) // 3) :]
    if len(tail) < 3:
        return None
    x = np.arange(len(tail), dtype=np.float64)
    slope, intercept = np.polyfit(x, tail, 1)
    residual = tail - (slope * x + intercept)
    return float(math.sqrt(float((residual**2).sum()) / (len(tail) - 2)))


def jitter(values: np.ndarray) -> float | None:
    """The noise of a series from its second differences (a smooth trend has none): σ ≈ rms/√6."""
    if len(values) < 3:
        return None
    second = np.diff(values, 2)
    return float(math.sqrt(float((second**2).mean()) / 6.0))


def _rms(*sigmas: float | None) -> float | None:
    known = [s for s in sigmas if s is not None]
    return math.sqrt(sum(s * s for s in known) / len(known)) if known else None


def _max(*sigmas: float | None) -> float:
    return max([s for s in sigmas if s is not None] or [0.0])


def peer_spread(groups: Sequence[Sequence[Curve]]) -> dict[str, Any] | None:
    """The pooled seed-to-seed standard deviation of groups of runs alike but for the seed.

    ``final`` compares each run's final value; ``by_step`` each common step. A group needs two
    runs; the pooling weighs each group by its degrees of freedom.
    """
    final_ss, final_df, runs = 0.0, 0, 0
    step_ss: dict[int, float] = {}
    step_df: dict[int, int] = {}
    for group in groups:
        curves = [c for c in group if len(c[1])]
        if len(curves) < 2:
            continue
        runs += len(curves)
        finals = np.array([final_value(v) for _, v in curves])
        final_ss += float(((finals - finals.mean()) ** 2).sum())
        final_df += len(finals) - 1
        common = set(curves[0][0].tolist()).intersection(*(set(s.tolist()) for s, _ in curves[1:]))
        for step in common:
            values = np.array([v[np.searchsorted(s, step)] for s, v in curves])
            step_ss[step] = step_ss.get(step, 0.0) + float(((values - values.mean()) ** 2).sum())
            step_df[step] = step_df.get(step, 0) + len(values) - 1
    if not final_df:
        return None
    return {
        "runs": runs,
        "final": math.sqrt(final_ss / final_df),
        "by_step": {s: math.sqrt(step_ss[s] / step_df[s]) for s in step_ss},
    }


def family_factor(judged: int) -> float:
    """How much wider each band is when ``judged`` metrics are judged together, so that the chance
    of any one of them crossing its band by luck stays 5 % (Bonferroni)."""
    normal = NormalDist()
    return normal.inv_cdf(1 - 0.025 / max(1, judged)) / normal.inv_cdf(0.975)


def metric_noise(a: Curve, b: Curve, peers: dict[str, Any] | None = None, judged: int = 1) -> dict[str, Any] | None:
    """The noise band of one metric for runs A and B, the final difference against it, and where
    their curves parted (None when either run has no finite point, or too few to measure noise).
    ``judged`` is how many metrics of the pair are judged together (see :func:`family_factor`)."""
    (steps_a, values_a), (steps_b, values_b) = a, b
    if not len(values_a) or not len(values_b):
        return None
    common, index_a, index_b = np.intersect1d(steps_a, steps_b, return_indices=True)
    diff = values_b[index_b] - values_a[index_a]
    early = max(2, len(common) // 3)
    # a run too short to have settled (a fifth of its points is under 2) only speaks when no other can
    settled = [v for v in (values_a, values_b) if len(v) >= 10] or [values_a, values_b]
    sources = {
        "tail": _rms(*(fluctuation(v) for v in settled)),
        "early": jitter(diff[:early]) if len(common) >= 3 else None,
        "peers": peers["final"] if peers else None,
    }
    if sources["tail"] is None and sources["peers"] is None:
        return None  # too few points to tell noise from effect
    sigma = _max(sources["tail"], sources["peers"])
    if sigma == 0.0:  # two identical flat curves: any difference at all is beyond chance
        sigma = 1e-12
    width = BAND_WIDTH * family_factor(judged)
    band = width * sigma
    final_a, final_b = final_value(values_a), final_value(values_b)
    delta = final_b - final_a
    # per common step, the largest of: sigma; the early spread, which holds over the first third and
    # fades out by the end of the second; the peers' spread at that step (arrays: 100,000 steps in ms)
    local = np.full(len(common), sigma, dtype=np.float64)
    if sources["early"] is not None:
        index = np.arange(len(common), dtype=np.float64)
        fade = np.where(index < early, 1.0, np.maximum(0.0, 1.0 - (index - early + 1) / max(1, early)))
        local = np.maximum(local, sources["early"] * fade)
    by_step = (peers or {}).get("by_step") or {}
    if by_step:
        local = np.maximum(local, np.array([by_step.get(step, -math.inf) for step in common.tolist()], dtype=np.float64))
    parted = _parting(common, diff, width * local, abs(delta) > band, early if not by_step else 0)
    return {
        "band": band,
        "sigma": sigma,
        "sources": sources,
        "peer_runs": peers["runs"] if peers else 0,
        "judged": judged,
        "final": {"a": final_a, "b": final_b, "diff": delta, "points": {"a": tail_points(len(values_a)), "b": tail_points(len(values_b))}},
        "z": abs(delta) / band,
        "within": abs(delta) <= band and parted is None,
        "parted": parted,
        "common_steps": len(common),
        "last_step": {"a": int(steps_a[-1]), "b": int(steps_b[-1])},
        "first_step": int(common[0]) if len(common) else None,
    }


def _parting(
    steps: np.ndarray, diff: np.ndarray, bands: np.ndarray, final_beyond: bool, unmeasured_early: int
) -> dict[str, Any] | None:
    """The first stretch where the curves stay apart (see the module's docstring); a stretch that
    closes again must reach ``REJOINED_Z`` and, when it starts in the first ``unmeasured_early``
    points (no peers measured them), does not count."""
    beyond = (np.abs(diff) > bands).tolist()  # lists: the scan below indexes them point by point
    sign = np.sign(diff).tolist()
    i = 0
    while i < len(diff):
        held = i + 1 < len(diff) and beyond[i + 1] and sign[i + 1] == sign[i]
        if not beyond[i] or not (held or (i == len(diff) - 1 and final_beyond)):
            i += 1
            continue
        stretch = i
        while stretch + 1 < len(diff) and beyond[stretch + 1] and sign[stretch + 1] == sign[i]:
            stretch += 1
        peak = i + int(np.argmax(np.abs(diff[i : stretch + 1]) / bands[i : stretch + 1]))
        rejoined = stretch < len(diff) - 1 and not beyond[len(diff) - 1]
        z = float(abs(diff[peak]) / bands[peak])
        if rejoined and (z < REJOINED_Z or i < unmeasured_early):  # closing again: wide, and not unmeasured early
            i = stretch + 1
            continue
        return {
            "step": int(steps[i]),
            "index": i,
            "fraction": i / max(1, len(diff) - 1),
            "diff": float(diff[i]),
            "band": float(bands[i]),
            "until_step": int(steps[stretch]),
            "rejoined": rejoined,
            "peak": {"step": int(steps[peak]), "diff": float(diff[peak]), "z": z},
        }
    return None
