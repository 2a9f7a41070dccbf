"""How strongly the evidence supports a cause: the effect against the noise band, and timing.

A cause's score is ``0.3 + 0.65 × effect × timing × magnitude`` when the runs differ beyond
noise, and at most 0.3 when they do not:

- ``effect`` grows from 0 at the band's edge to 1 at four times the band (the larger of the
  final difference and the largest parting, each over its band);
- ``timing`` is 1 when the parameter plausibly acts where the curves parted (a learning rate,
  an optimizer, a width or an initialisation from the first steps; a schedule from its first
  decay; the number of epochs only where one run stops), 0.8 when nothing is known about the
  parameter, and 0.5 (0.4 for a run length that did not change the length) when it contradicts;
- ``magnitude`` is 1 for a change of 3× or more, 0.9 for 1.5×, a non-number or a model change,
  0.8 below, 0.75 for a param only one run has.
"""

from __future__ import annotations

import math
from typing import Any

from unitrack.analysis.diffing import is_ignored

UNKNOWN = "unknown"
# what a parameter changes and so when its effect shows; first match wins (last part of the key)
KINDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("length", ("epochs", "num_epochs", "max_epochs", "n_epochs", "max_steps", "num_steps", "total_steps",
                "train_steps", "iterations", "num_iterations", "max_iters", "max_iter")),
    ("schedule", ("*sched*", "step_size", "milestones", "gamma", "*decay_steps*", "*decay_epochs*", "*step_epochs*",
                  "warmup*", "*_warmup*", "lr_decay*", "t_max", "cycle*", "*anneal*")),
    ("gradual", ("weight_decay", "wd", "l2*", "*regulari*", "dropout*", "*drop_rate*", "label_smoothing", "ema*",
                 "*noise*", "*penalty*")),
    ("start", ("lr", "learning_rate", "base_lr", "max_lr", "*optim*", "momentum", "beta*", "nesterov", "batch_size",
               "batch", "bs", "*hidden*", "width", "*units*", "*channels*", "*layers*", "depth", "*dim*", "d_model",
               "*embed*", "*init*", "activation", "*fraction*", "*subset*", "train_size", "n_train", "num_train*",
               "limit", "max_samples", "*data*", "loss*", "*augment*", "class", "parameters", "trainable_parameters")),
)  # fmt: skip
_PREFIX_KINDS = {"scheduler": "schedule", "optimizer": "start", "model": "start", "loss": "start", "data": "start"}
WHEN = {
    "start": "acts from the first steps",
    "gradual": "acts gradually, as training goes on",
    "schedule": "acts from the schedule's first change",
    "length": "acts only where the shorter run stops",
    UNKNOWN: "no rule says when it acts",
}


def kind_of(key: str) -> str:
    """``start``, ``gradual``, ``schedule``, ``length`` or ``unknown`` for a param key."""
    parts = key.lower().replace(".", "/").split("/")
    for kind, patterns in KINDS:
        if is_ignored(parts[-1], patterns):
            return "start" if kind == "start" and parts[0] == "scheduler" else kind
    return _PREFIX_KINDS.get(parts[0], UNKNOWN) if len(parts) > 1 else UNKNOWN


def first_change_step(params: dict[str, Any]) -> float | None:
    """The step (in the metric's units, assumed epochs) of a schedule's first change, from its params."""
    found = []
    for key, value in params.items():
        last = key.lower().replace(".", "/").split("/")[-1]
        if not is_ignored(last, ("step_size", "*step_epochs*", "*decay_epochs*", "milestones", "warmup_epochs")):
            continue
        first = value[0] if isinstance(value, list) and value else value
        if isinstance(first, (int, float)) and not isinstance(first, bool) and first > 0:
            found.append(float(first))
    return min(found) if found else None


def effect(noise: dict[str, Any] | None) -> float | None:
    """0..1: how far beyond its noise band the headline metric moved (None: no metric to judge)."""
    if noise is None:
        return None
    z = noise["z"]
    parted = noise.get("parted")
    if parted:
        z = max(z, parted["peak"]["z"])
    return max(0.0, min(1.0, (z - 1.0) / 3.0))


def timing(kind: str, noise: dict[str, Any] | None, params: dict[str, Any]) -> tuple[float, str]:
    """How well the parameter's kind fits where the curves parted, and the sentence saying so."""
    if noise is None or kind == UNKNOWN:
        return 0.8, WHEN[kind]
    parted = noise.get("parted")
    ends_differ = noise["last_step"]["a"] != noise["last_step"]["b"]
    if kind == "length":
        if ends_differ and (parted is None or parted["fraction"] >= 0.8):
            shorter = min(noise["last_step"].values())
            return 1.0, f"{WHEN[kind]} (step {shorter}), and the curves agree before it: consistent"
        return 0.4, f"{WHEN[kind]}, but " + ("both runs end together" if not ends_differ else "the curves parted before")
    if parted is None:
        return 0.8, f"{WHEN[kind]}; the curves stayed within noise on their common steps, only the end differs"
    where = f"the curves parted at step {parted['step']}"
    if kind == "start":
        fits = parted["fraction"] <= 0.34
        return (1.0 if fits else 0.5), f"{WHEN[kind]}; {where}: " + ("consistent" if fits else "later than expected")
    if kind == "schedule":
        expected = first_change_step(params)
        if expected is not None:
            fits = parted["step"] >= expected - 1
            return (1.0 if fits else 0.5), f"{WHEN[kind]} (step {expected:g}); {where}: " + (
                "consistent" if fits else "before it"
            )
        fits = parted["index"] > 0
        return (1.0 if fits else 0.5), f"{WHEN[kind]}; {where}: " + ("consistent" if fits else "from the very first point")
    return 1.0, f"{WHEN[kind]}; {where}: consistent"


def magnitude(ratio: float | None, change: str = "changed", numeric: bool = True) -> float:
    if change != "changed":
        return 0.75
    if ratio is None or ratio <= 0:
        return 0.9 if not numeric or ratio is None else 0.8
    spread = abs(math.log(ratio))
    return 1.0 if spread >= math.log(3) else 0.9 if spread >= math.log(1.5) else 0.8


def score(effect_size: float | None, fit: float, size: float) -> float:
    """The cause's score from the three factors (see the module's docstring)."""
    if effect_size is None:  # no result metric in common: the change itself is all there is
        return round(0.3 + 0.4 * fit * size, 3)
    if effect_size <= 0.0:
        return round(0.1 + 0.2 * fit * size, 3)
    return round(0.3 + 0.65 * effect_size * fit * size, 3)
