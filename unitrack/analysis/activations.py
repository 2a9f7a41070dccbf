"""Dead and saturated layers, read from a run's activation statistics (``watch(activations_every=)``).

A layer whose output is mostly zeros (dead ReLU units) or mostly at its bounds (saturated tanh or
sigmoid units) passes little gradient back: a run that has one learns worse, and ``explain``
names it ("layer fc2: 97 % of units dead from step 300").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from unitrack.weights.activations import PREFIX, SATURATION

UNHEALTHY = 0.9  # this fraction of a layer's outputs dead or saturated, to the end of the run
_PROBLEMS = {"zero_fraction": "dead", SATURATION: "saturated"}


def unhealthy_layers(curves: Mapping[str, tuple[Any, Any, Any]]) -> list[dict[str, Any]]:
    """``[{"layer", "problem" (dead|saturated), "fraction" (at the end), "since" (step)}]``, worst first.

    ``since`` is the first sampled step from which the fraction stays at or above UNHEALTHY.
    """
    found = []
    for key, (steps, values, _) in curves.items():
        if not key.startswith(PREFIX):
            continue
        layer, _, stat = key[len(PREFIX) :].rpartition("/")
        problem = _PROBLEMS.get(stat)
        values = np.asarray(values, dtype=np.float64)
        if problem is None or not values.size or not values[-1] >= UNHEALTHY:
            continue
        healthy = np.flatnonzero(~(values >= UNHEALTHY))  # NaN counts as healthy: no claim without data
        first = int(healthy[-1]) + 1 if healthy.size else 0
        found.append({"layer": layer, "problem": problem, "fraction": float(values[-1]), "since": int(np.asarray(steps)[first])})
    return sorted(found, key=lambda f: (-f["fraction"], f["layer"]))


def describe(finding: Mapping[str, Any]) -> str:
    units = "units dead" if finding["problem"] == "dead" else "outputs saturated"
    return f"layer {finding['layer']}: {100 * finding['fraction']:.0f} % of {units} from step {finding['since']}"
