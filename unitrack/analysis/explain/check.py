"""An LLM's explanation checked against the evidence it was given.

A cause survives when it rests on something the evidence shows changed: a param that differs
(not a bookkeeping one), the model or its code, the environment, the code outside the model, the
exception a failed run ended with, a dead or saturated layer, or chance (the seed, noise). One that names only bookkeeping, or nothing that changed, is dropped
with a note saying why. When every result metric moved within its noise band, a surviving
cause's score is capped at what the rules would give it, and the rules' "within noise" cause
is put first if the answer left it out.
"""

from __future__ import annotations

import re
from typing import Any

from unitrack.analysis.explain import Cause, Explanation

_CHANCE = ("seed", "noise", "random", "variance", "chance", "fluctuation")
_TOPICS = {
    "model": ("architecture", "layer", "model", "parameters", "width", "hidden", "depth"),
    "environment": ("environment", "package", "version", "cuda", "cudnn", "driver", "gpu", "python"),
    "code": ("code", "commit", "patch", "git"),
    "failure": ("failed", "failure", "exception", "error", "raised", "crash"),
    "activations": ("dead", "saturated", "activation", "relu"),
}
_ALIASES = {"lr": ("learning rate",), "wd": ("weight decay",), "bs": ("batch size",)}
WITHIN_NOISE_CAP = 0.3


def _words(text: str) -> str:
    return " " + re.sub(r"[^a-z0-9]+", " ", text.lower()) + " "


def _named(text: str, key: str) -> bool:
    """Whether ``text`` names the param ``key`` (the whole key, or its last part, as words)."""
    last = key.replace(".", "/").split("/")[-1]
    forms = {key, last, *_ALIASES.get(last.lower(), ())}
    return any(f" {_words(form).strip()} " in text for form in forms if _words(form).strip())


def _changed(evidence: dict[str, Any]) -> dict[str, list[str]]:
    """What the evidence shows changed: param keys, bookkeeping keys, and the other topics."""
    config = evidence["config"]
    params = [e["key"] for part in ("changed", "added", "removed") for e in config[part]]
    model = evidence.get("model") or {}
    env = evidence.get("environment") or {}
    git = evidence.get("git") or {}
    topics = []
    if (model.get("architecture") or {}).get("changed") or model.get("classes") or model.get("functions"):
        topics.append("model")
    if any(not v["same"] for v in (env.get("facts") or {}).values()) or (env.get("packages") or {}).get("changed"):
        topics.append("environment")
    if git and (not git["commit"]["same"] or not git["patch_same"]):
        topics.append("code")
    if any((evidence["runs"][side] or {}).get("error") for side in ("a", "b")):
        topics.append("failure")
    if any((evidence.get("activations") or {}).get(side) for side in ("a", "b")):
        topics.append("activations")
    return {"params": params, "bookkeeping": [e["key"] for e in config.get("bookkeeping", [])], "topics": topics}


def _support(cause: Cause, changed: dict[str, list[str]]) -> tuple[list[str], str | None]:
    """The evidence keys the cause rests on, or the reason it is not supported."""
    text = _words(" ".join([cause.title, *cause.evidence, *cause.keys]))
    params = [k for k in changed["params"] if _named(text, k)]
    if params:
        return params, None
    if any(f" {word} " in text for word in _CHANCE):
        return ["noise"], None
    topics = [t for t in changed["topics"] if any(f" {word}" in text for word in _TOPICS[t])]
    if topics:
        return topics, None
    bookkeeping = [k for k in changed["bookkeeping"] if _named(text, k)]
    if bookkeeping:
        return [], f"rests on bookkeeping ({', '.join(bookkeeping)}), which never changes what a run learns"
    return [], "names nothing the evidence shows changed"


def check_answer(answer: Explanation, rules: Explanation, evidence: dict[str, Any]) -> Explanation:
    """``answer`` with its unsupported causes dropped (listed in ``dropped``) and scores kept honest."""
    changed = _changed(evidence)
    judged = [m["noise"] for m in evidence["metrics"] if m.get("noise")]
    within = bool(judged) and all(n["within"] for n in judged)
    kept: list[Cause] = []
    for cause in answer.causes:
        keys, reason = _support(cause, changed)
        if reason is not None:
            answer.dropped.append({"title": cause.title, "reason": reason})
            continue
        cause.keys = keys
        if within and keys != ["noise"] and cause.score > WITHIN_NOISE_CAP:
            cause.score = WITHIN_NOISE_CAP
            cause.evidence.append(f"score capped at {WITHIN_NOISE_CAP}: every result metric moved within its noise band")
        kept.append(cause)
    if within and rules.causes and not any(c.keys == ["noise"] for c in kept):
        verdict = rules.causes[0]
        note = "added by the check: the answer left out that every result metric moved within its noise band"
        kept.append(Cause(verdict.title, [*verdict.evidence, note], verdict.score, ["noise"]))
    answer.causes = sorted(kept, key=lambda c: -c.score)
    answer.noise, answer.bookkeeping = rules.noise, rules.bookkeeping
    return answer
