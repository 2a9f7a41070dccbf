"""Why did performance change? Ranked causes, each citing its evidence, and what to try next.

The rule engine (:mod:`.rules`) works offline and is the default; the Anthropic provider
(:mod:`.anthropic_provider`) sends the redacted evidence to Claude and falls back to the rules,
with a one-line notice, on any failure.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

from unitrack.analysis_settings import AnalysisSettings


@dataclass
class Cause:
    """One likely reason for the change, with the facts (and numbers) it rests on."""

    title: str
    evidence: list[str]
    score: float
    keys: list[str] = field(default_factory=list)  # the params (or "model", "environment", "code") it rests on


@dataclass
class Explanation:
    provider: str
    headline: str
    causes: list[Cause] = field(default_factory=list)
    next_steps: list[str] = field(default_factory=list)
    notice: str | None = None
    model: str | None = None
    text: str | None = None
    noise: dict[str, Any] | None = None  # the headline metric's noise band and where the curves parted
    bookkeeping: list[dict[str, Any]] = field(default_factory=list)  # params that differ but are never causes
    dropped: list[dict[str, Any]] = field(default_factory=list)  # an LLM's causes the evidence does not support

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve_provider(settings: AnalysisSettings, provider: str | None) -> str:
    """``rules`` or ``anthropic``: the one asked for, else the config's, else anthropic only when a key is set."""
    chosen = provider or settings.provider
    if chosen == "auto":
        return "anthropic" if (settings.api_key or os.environ.get("ANTHROPIC_API_KEY")) else "rules"
    if chosen not in ("rules", "anthropic"):
        raise ValueError(f"--provider must be rules or anthropic, not {chosen!r}")
    return chosen


def explain(
    evidence: dict[str, Any], settings: AnalysisSettings | None = None, provider: str | None = None, model: str | None = None
) -> Explanation:
    """Explain the difference between the two runs ``evidence`` describes (see ``gather_evidence``)."""
    from unitrack.analysis.explain.rules import explain_with_rules

    settings = settings or AnalysisSettings()
    if resolve_provider(settings, provider) == "rules":
        return explain_with_rules(evidence)
    from unitrack.analysis.explain.anthropic_provider import explain_with_anthropic

    return explain_with_anthropic(evidence, settings, model)


__all__ = ["Cause", "Explanation", "explain", "resolve_provider"]
