"""The Anthropic explainer: Claude reads the redacted evidence and answers in a fixed JSON shape.

Only the evidence is sent (settings, metric summaries with their noise bands, the bookkeeping
list, diffs of the model's code), never raw data or secrets: it goes through unitrack's
redaction first. The answer is checked against that evidence (:mod:`.check`): a cause that rests
on nothing that changed, or only on bookkeeping, is dropped with a note. Any failure (no key, timeout,
an HTTP error, an answer that is not the JSON asked for) falls back to the rule engine with a
one-line notice, so ``explain`` always answers.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from unitrack.analysis.explain import Cause, Explanation
from unitrack.analysis.explain.check import check_answer
from unitrack.analysis.explain.rules import explain_with_rules
from unitrack.analysis_settings import AnalysisSettings
from unitrack.redact import REDACTED, is_secret_key, redact_text

log = logging.getLogger("unitrack")

_MAX_DIFF_LINES = 80
_MAX_PACKAGES = 30

SYSTEM_PROMPT = """You explain why the performance of a machine-learning training run changed.
You get the evidence of a comparison of run A (before) and run B (after) as JSON: changed
hyperparameters, metric summaries, the model's architecture and source-code diffs, the
optimizer/scheduler/loss settings, the environment, git and system facts.
Each result metric carries "noise": the band (±band) within which the two runs differ by chance,
measured from the runs (tail fluctuation, early-epoch spread, other runs differing only in the
seed), whether the final difference is "within" it, its multiple "z" of the band, and where the
curves "parted". A difference within the band is within noise: say so and quote the band.
"config.bookkeeping" lists params that only change how a run is recorded (paths, names,
intervals, workers, devices): they are never causes. "seed_keys" changing is noise, not a cause.
Ground every statement in that evidence and quote its numbers. Answer with JSON only:
{"headline": str, "causes": [{"title": str, "keys": [changed param keys, or "model",
 "environment", "code", "noise"], "evidence": [str, ...], "score": number 0..1}],
 "next_steps": [str, ...]} with the causes ranked, most likely first. A cause that rests on
nothing the evidence shows changed will be dropped."""


_STRUCTURAL = ("key",)  # the evidence's own field names that only look secret


def _redact_entries(value: Any) -> Any:
    """Redaction that also sees diff entries shaped ``{"key": "api_token", "a": ..., "b": ...}``."""
    if isinstance(value, dict):
        named = value.get("key") if isinstance(value.get("key"), str) else None
        secret_entry = named is not None and is_secret_key(named)
        out = {}
        for k, v in value.items():
            hide = (secret_entry and k in ("a", "b", "value")) or (k not in _STRUCTURAL and is_secret_key(str(k)))
            out[k] = REDACTED if hide and isinstance(v, str) and v else _redact_entries(v)
        return out
    if isinstance(value, list):
        return [_redact_entries(v) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


def prepared_evidence(evidence: dict[str, Any]) -> dict[str, Any]:
    """The evidence as sent: redacted, long diffs and package lists trimmed."""
    data = json.loads(json.dumps(evidence, default=str))
    model = data.get("model") or {}
    for entry in [model.get("architecture") or {}, *model.get("classes", []), *model.get("functions", [])]:
        if len(entry.get("diff", [])) > _MAX_DIFF_LINES:
            entry["diff"] = [*entry["diff"][:_MAX_DIFF_LINES], "... (cut)"]
    packages = (data.get("environment") or {}).get("packages") or {}
    for part in ("added", "removed", "changed"):
        if len(packages.get(part, [])) > _MAX_PACKAGES:
            packages[part] = packages[part][:_MAX_PACKAGES]
    return _redact_entries(data)


def _parse_answer(text: str) -> dict[str, Any]:
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end < start:
        raise ValueError("the answer holds no JSON object")
    data = json.loads(text[start : end + 1])
    if not isinstance(data, dict) or not isinstance(data.get("causes"), list):
        raise ValueError("the answer's JSON has no 'causes' list")
    return data


def explain_with_anthropic(evidence: dict[str, Any], settings: AnalysisSettings, model: str | None = None) -> Explanation:
    model_name = model or settings.model
    try:
        import anthropic

        api_key = settings.api_key or os.environ.get("ANTHROPIC_API_KEY")
        if not api_key:
            raise RuntimeError("no API key (set ANTHROPIC_API_KEY or analysis.api_key)")
        client = anthropic.Anthropic(
            api_key=api_key, base_url=settings.base_url, timeout=settings.timeout, max_retries=settings.retries
        )
        payload = json.dumps(prepared_evidence(evidence), indent=1, sort_keys=True)
        reply = client.messages.create(
            model=model_name,
            max_tokens=settings.max_tokens,
            system=SYSTEM_PROMPT,
            messages=[{"role": "user", "content": f"Evidence of the comparison:\n{payload}"}],
        )
        text = "".join(getattr(block, "text", "") for block in reply.content)
        answer = _parse_answer(text)
    except Exception as exc:  # never let the LLM be the reason explain fails
        fallback = explain_with_rules(evidence)
        reason = str(exc).splitlines()[0] if str(exc) else ""
        fallback.notice = f"anthropic explanation failed ({type(exc).__name__}: {reason[:160]}); using the built-in rules"
        return fallback
    causes = [
        Cause(
            str(c.get("title", "")),
            [str(e) for e in c.get("evidence", [])],
            float(c.get("score", 0.5) or 0.5),
            [str(k) for k in c.get("keys", []) if isinstance(k, str)] if isinstance(c.get("keys"), list) else [],
        )
        for c in answer["causes"]
        if isinstance(c, dict)
    ]
    rules = explain_with_rules(evidence)
    checked = Explanation(
        provider="anthropic",
        model=model_name,
        headline=str(answer.get("headline") or rules.headline),
        causes=causes,
        next_steps=[str(s) for s in answer.get("next_steps", [])],
        text=text,
    )
    return check_answer(checked, rules, evidence)
