"""The offline explainer: causes ranked by the evidence of ``compare``, each citing its numbers.

Every changed param (a change logged under several keys, ``lr`` and ``optimizer/lr``, counts
once), the model, its code and the environment are candidate causes; bookkeeping params never
are. A candidate's score comes from how far beyond the noise band the runs themselves show the
result metrics moved (the headline one, or another that moved further) and from whether the
candidate plausibly acts where the curves parted (:mod:`.scoring`); a difference within noise
is said to be so, with its band.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from unitrack.analysis.activations import describe as describe_layer
from unitrack.analysis.explain import Cause, Explanation
from unitrack.analysis.explain.scoring import effect, kind_of, magnitude, score, timing

_GAP_GROWTH = 0.02  # a validation-minus-training loss gap that grew less than this is not overfitting news


def fmt(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.4g}"


def _times(r: float) -> str:
    return f"×{r:.3g}" if r >= 1 else f"÷{1 / r:.3g}"


def headline_metric(evidence: dict[str, Any]) -> dict[str, Any] | None:
    """The result to explain: a validation/test accuracy or loss if there is one, else the first with a goal."""
    candidates = [m for m in evidence["metrics"] if m["goal"] and m["a"]["points"] and m["b"]["points"]]

    def rank(m: dict[str, Any]) -> tuple[int, int, str]:
        key = m["key"].lower()
        return (0 if ("val" in key or "test" in key) else 1, 0 if m["goal"] == "max" else 1, m["key"])

    return sorted(candidates, key=rank)[0] if candidates else None


def describe_metric(metric: dict[str, Any]) -> str:
    a, b = metric["a"]["last"], metric["b"]["last"]
    change = f" ({metric['rel_change']:+.1%})" if metric["rel_change"] is not None else ""
    winner = {"a": "A is better", "b": "B is better", "tie": "a tie"}.get(metric["winner"] or "", "")
    best = ""
    if metric["goal"] and metric["a"]["best"] is not None and metric["b"]["best"] is not None:
        best = f"; best {fmt(metric['a']['best'])} vs {fmt(metric['b']['best'])}"
    return f"{metric['key']} {fmt(a)} → {fmt(b)}{change}{best}" + (f", {winner}" if winner else "")


def _loss_divergence(evidence: dict[str, Any], side: str) -> str | None:
    for metric in evidence["metrics"]:
        step = metric[side]["diverged_at_step"]
        if metric["goal"] == "min" and step is not None:
            return f"{metric['key']} diverging after step {step}"
    return None


_LR = ("lr", "learning_rate", "base_lr", "max_lr")
_BATCH = ("batch_size", "batch", "bs")


@dataclass
class _Candidate:
    title: str
    facts: list[str]
    kind: str
    size: float
    keys: list[str] = field(default_factory=list)


def _family(key: str) -> str:
    """What a key sets, so that ``optimizer`` and ``optimizer/class``, ``lr`` and ``optimizer/lr`` meet."""
    parts = key.lower().replace(".", "/").split("/")
    return parts[-2] if parts[-1] == "class" and len(parts) > 1 else parts[-1]


def _param_groups(config: dict[str, Any]) -> list[list[dict[str, Any]]]:
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for part in ("changed", "added", "removed"):
        for entry in config[part]:
            values = (repr(entry["a"]), repr(entry["b"])) if part == "changed" else (part, repr(entry["value"]))
            groups.setdefault((_family(entry["key"]), *values), []).append({**entry, "change": part})
    return [sorted(g, key=lambda e: (e["key"].count("/"), e["key"])) for g in groups.values()]


def noise_text(noise: dict[str, Any]) -> str:
    """The band and what it was measured from, e.g. ``±0.012 (tail fluctuation 0.004, 3 peer runs 0.005)``."""
    sources = noise["sources"]
    parts = [f"tail fluctuation {fmt(sources['tail'])}" if sources["tail"] is not None else "no tail to measure"]
    if sources["peers"] is not None:
        parts.append(f"{noise['peer_runs']} runs differing only in the seed: {fmt(sources['peers'])}")
    if sources["early"] is not None:
        parts.append(f"early-epoch spread {fmt(sources['early'])}")
    together = f"; 95 % for the {noise['judged']} result metrics together" if noise.get("judged", 1) > 1 else ""
    return f"±{fmt(noise['band'])} ({', '.join(parts)}{together})"


def telling_metric(evidence: dict[str, Any], headline: dict[str, Any] | None) -> dict[str, Any] | None:
    """The result metric that moved furthest beyond its noise band (the headline on a tie)."""
    judged = [m for m in evidence["metrics"] if m.get("noise")]
    if not judged:
        return headline
    best = max(judged, key=lambda m: (effect(m["noise"]) or 0.0, m is headline))
    return best if (effect(best["noise"]) or 0.0) > (effect((headline or {}).get("noise")) or 0.0) else headline


def _parting_facts(metric: dict[str, Any]) -> list[str]:
    noise = metric["noise"]
    parted = noise["parted"]
    facts = []
    if parted:
        end = f" and met again after step {parted['until_step']}" if parted["rejoined"] else " and stayed apart"
        facts.append(
            f"the {metric['key']} curves parted at step {parted['step']} ({parted['diff']:+.4g}, band ±{fmt(parted['band'])}){end}; "
            f"widest at step {parted['peak']['step']} ({parted['peak']['diff']:+.4g})"
        )
    elif noise["common_steps"]:
        facts.append(f"the {metric['key']} curves stay within noise on their {noise['common_steps']} common steps")
    if noise["last_step"]["a"] != noise["last_step"]["b"]:
        facts.append(f"A ends at step {noise['last_step']['a']}, B at step {noise['last_step']['b']}")
    return facts


def _final_fact(metric: dict[str, Any]) -> str:
    noise = metric["noise"]
    final = noise["final"]
    verdict = "within" if noise["z"] <= 1 else f"{noise['z']:.1f}× beyond"
    return (
        f"{metric['key']} final (mean of the last {final['points']['b']}) {fmt(final['a'])} → {fmt(final['b'])} "
        f"({final['diff']:+.4g}), {verdict} the noise band {noise_text(noise)}"
    )


def _effect_facts(evidence: dict[str, Any], headline: dict[str, Any] | None, telling: dict[str, Any] | None) -> list[str]:
    """The effect on the monitored metrics against their noise, and where the curves parted."""
    if headline is None:
        return []
    if headline.get("noise") is None:
        return [describe_metric(headline)]
    facts = [f"{describe_metric(headline)}; {_final_fact(headline)}", *_parting_facts(headline)]
    if telling is not None and telling is not headline:
        facts += [_final_fact(telling), *_parting_facts(telling)[:1]]
    return facts


def _param_candidates(evidence: dict[str, Any], absorbed: set[str]) -> list[_Candidate]:
    seeds = set(evidence.get("seed_keys") or [])
    found = []
    for group in _param_groups(evidence["config"]):
        keys = [e["key"] for e in group]
        if set(keys) & seeds or set(keys) <= absorbed:
            continue
        entry, family = group[0], _family(group[0]["key"])
        also = f" (also {', '.join(keys[1:])})" if len(keys) > 1 else ""
        if entry["change"] != "changed":
            where = "B" if entry["change"] == "added" else "A"
            found.append(_Candidate(f"{entry['key']} {entry['change']}", [f"{entry['key']} = {fmt(entry['value'])} only in {where}{also}"],
                                    kind_of(entry["key"]), magnitude(None, entry["change"]), keys))  # fmt: skip
            continue
        r = entry["ratio"]
        facts = [f"{entry['key']} {fmt(entry['a'])} → {fmt(entry['b'])}" + (f" ({_times(r)})" if r else "") + also]
        title = f"{entry['key']} {fmt(entry['a'])} → {fmt(entry['b'])}"
        if family in _LR:
            title = f"learning rate {_times(r)}" if r else "learning rate changed"
            diverged = _loss_divergence(evidence, "b")
            if diverged and not _loss_divergence(evidence, "a"):
                facts.append(diverged)
                title += " with the loss diverging"
        elif family in _BATCH:
            word = "halved" if r and math.isclose(r, 0.5) else "doubled" if r and math.isclose(r, 2) else _times(r) if r else "changed"
            title = f"batch size {word}"
            if r and r < 1:
                facts.append("smaller batches: noisier gradients, more steps per epoch")
        numeric = isinstance(entry["a"], (int, float)) and isinstance(entry["b"], (int, float))
        found.append(_Candidate(title, facts, kind_of(entry["key"]), magnitude(r, numeric=numeric), keys))
    return found


def _model_candidate(evidence: dict[str, Any]) -> _Candidate | None:
    model = evidence["model"]
    arch = model.get("architecture") or {}
    classes = [c for c in model.get("classes", []) if c["status"] != "same"]
    functions = [f for f in model.get("functions", []) if f["status"] != "same"]
    if not arch.get("changed") and not classes and not functions:
        return None
    facts: list[str] = []
    params = model.get("parameters") or {}
    r = params.get("ratio")
    title = "model code changed (same layers)"
    if arch.get("changed"):
        title = "architecture changed"
        if r and r > 1.05:
            title = f"bigger model: {_times(r)} parameters"
        elif r and r < 0.95:
            title = f"smaller model: {_times(r)} parameters"
        if params.get("a") is not None:
            facts.append(f"parameters {fmt(params['a'])} → {fmt(params['b'])}" + (f" ({_times(r)})" if r else ""))
        removed, added = arch.get("removed_lines", []), arch.get("added_lines", [])
        if removed and added:
            more = max(len(removed), len(added)) - 1
            facts.append(f"layers: {removed[0].strip()} → {added[0].strip()}" + (f" (+{more} more)" if more else ""))
    for entry in [*classes, *functions]:
        kind = "class" if entry in classes else "function"
        lines = [f"-{line.strip()}" for line in entry["removed_lines"][:2]] + [f"+{line.strip()}" for line in entry["added_lines"][:2]]
        facts.append(f"{kind} {entry['name']} {entry['status']}: " + "  ".join(lines))
    gap_a, gap_b = (evidence["overfitting"] or {}).get("a"), (evidence["overfitting"] or {}).get("b")
    if gap_a and gap_b and gap_b["gap"] - gap_a["gap"] > max(_GAP_GROWTH, abs(gap_a["gap"]) / 2):
        facts.append(f"overfitting gap ({gap_b['validation']} − {gap_b['train']}) grew {fmt(gap_a['gap'])} → {fmt(gap_b['gap'])}")
    return _Candidate(title, facts, "start", 0.95 if arch.get("changed") else 0.9, ["model"])


def _setup_candidates(evidence: dict[str, Any]) -> list[_Candidate]:
    """Optimizer / scheduler / loss / data settings that the params do not already hold."""
    config = evidence["config"]
    in_params = {e["key"] for part in ("changed", "added", "removed") for e in config[part]}
    in_params |= {e["key"] for e in config.get("bookkeeping", [])}
    found = []
    for part in ("optimizer", "scheduler", "loss", "data"):
        diff = evidence["model"].get(part)
        if not diff:
            continue
        facts = [f"{part}.{c['key']} {fmt(c['a'])} → {fmt(c['b'])}" for c in diff["changed"] if f"{part}/{c['key']}" not in in_params]
        facts += [f"{part}.{c['key']} added ({fmt(c['value'])})" for c in diff["added"] if f"{part}/{c['key']}" not in in_params]
        facts += [f"{part}.{c['key']} removed" for c in diff["removed"] if f"{part}/{c['key']}" not in in_params]
        if facts:
            size = 0.95 if any(".class " in f for f in facts) else 0.9
            found.append(_Candidate(f"{part} settings changed", facts[:6], kind_of(f"{part}/settings"), size, [part]))
    return found


def _environment_candidate(evidence: dict[str, Any]) -> _Candidate | None:
    env = evidence["environment"]
    facts = [f"{k} {fmt(v['a'])} → {fmt(v['b'])}" for k, v in env["facts"].items() if not v["same"] and v["a"] and v["b"]]
    facts += [f"{p['name']} {p['a']} → {p['b']}" for p in env["packages"]["changed"][:5]]
    return _Candidate("environment changed", facts[:6], "unknown", 0.4, ["environment"]) if facts else None


def _code_candidate(evidence: dict[str, Any], model_changed: bool) -> _Candidate | None:
    git = evidence["git"]
    if model_changed or (git["commit"]["same"] and git["patch_same"]):
        return None
    facts = []
    if not git["commit"]["same"]:
        facts.append(f"git commit {str(git['commit']['a'])[:8]} → {str(git['commit']['b'])[:8]}")
    if not git["patch_same"]:
        facts.append(f"uncommitted patch {git['patch_lines']['a']} → {git['patch_lines']['b']} lines")
    return _Candidate("code changed outside the model", facts, "unknown", 0.6, ["code"])


def _noise_cause(evidence: dict[str, Any], headline: dict[str, Any] | None, real: bool) -> Cause | None:
    """What chance explains: everything when nothing real changed or the difference is within noise."""
    seeds = set(evidence.get("seed_keys") or [])
    seed_facts = [f"{c['key']} {fmt(c['a'])} → {fmt(c['b'])}" for c in evidence["config"]["changed"] if c["key"] in seeds]
    noise = (headline or {}).get("noise")
    judged = [m["noise"] for m in evidence["metrics"] if m.get("noise")]
    within = all(n["within"] for n in judged) if noise else None
    facts = seed_facts + _effect_facts(evidence, headline, telling_metric(evidence, headline))[:2]
    if not real:
        subject = "only the seed differs" if seed_facts else "no param that matters differs"
        verdict = {True: "within noise", False: "beyond the measured noise band", None: "noise not measurable"}[within]
        if within is False and not any(n["peer_runs"] for n in judged):
            verdict = "seed-to-seed variance beyond the runs' own fluctuation (no other seeds in the store to measure it)"
        return Cause(f"{subject}: {verdict}", facts, 0.9, list(seeds & {c["key"] for c in evidence["config"]["changed"]}))
    if within and headline is not None and noise is not None:
        return Cause(f"within noise: no recorded change moved {headline['key']} beyond ±{fmt(noise['band'])} "
                     "(nor any other result metric beyond its band)", facts, 0.9, [])  # fmt: skip
    if seed_facts and noise:
        return Cause(f"seed changed: accounts for differences within ±{fmt(noise['band'])} only", seed_facts, 0.1, sorted(seeds))
    return None


def _failure_causes(evidence: dict[str, Any]) -> list[Cause]:
    """A run that ended with an exception: that is the first thing to explain about it."""
    causes = []
    for side in ("a", "b"):
        error = evidence["runs"][side].get("error")
        if error:
            facts = [f"{error['type']}: {error['message']}" if error.get("message") else str(error["type"])]
            if error.get("where"):
                facts.append(f"raised at {error['where']}")
            causes.append(Cause(f"run {side.upper()} failed with {error['type']}", facts, 1.0 if side == "b" else 0.95, ["code"]))
    return causes


def _activation_causes(evidence: dict[str, Any]) -> list[Cause]:
    """A layer dead or saturated in one run and not (as badly) in the other: its gradient is gone."""
    found = evidence.get("activations") or {}
    causes = []
    for side, other in (("b", "a"), ("a", "b")):
        theirs = {(f["layer"], f["problem"]): f for f in found.get(other) or []}
        for finding in found.get(side) or []:
            twin = theirs.get((finding["layer"], finding["problem"]))
            if twin is not None and twin["fraction"] >= finding["fraction"] - 0.05:
                continue  # as bad in both runs: not what differs between them
            facts = [describe_layer(finding) + f" in run {side.upper()}"]
            facts.append(describe_layer(twin) + f" in run {other.upper()}" if twin else f"not so in run {other.upper()}")
            title = f"layer {finding['layer']} is {finding['problem']} in run {side.upper()}"
            causes.append(Cause(title, facts, 0.6 if side == "b" else 0.5, ["model"]))
    return causes


def _next_steps(causes: list[Cause], evidence: dict[str, Any]) -> list[str]:
    steps = []
    titles = " | ".join(c.title for c in causes)
    for cause in causes:
        if " failed with " in cause.title:
            where = next((f[len("raised at ") :] for f in cause.evidence if f.startswith("raised at ")), None)
            kind = cause.title.rsplit(" ", 1)[-1]
            steps.append(f"fix the {kind} first" + (f" ({where})" if where else "") + ": its metrics stop where it failed")
    for group in _param_groups(evidence["config"]):
        change = group[0]
        if change["change"] == "changed" and _family(change["key"]) in _LR and change["ratio"]:
            low, high = sorted((change["a"], change["b"]))
            middle = math.sqrt(low * high) if low > 0 else high / 2
            steps.append(
                f"sweep {change['key']} between {fmt(low)} and {fmt(high)} (e.g. {fmt(middle)})"
                + ("; add warm-up or gradient clipping" if "diverging" in titles else "")
            )
    if "bigger model" in titles or "overfitting gap" in " ".join(f for c in causes for f in c.evidence):
        steps.append("check the bigger model's gain on held-out data; regularise it (dropout, weight decay) if the train/val gap grows")
    if " is dead in run " in titles:
        steps.append("revive the dead layer: check its initialisation and bias, lower the learning rate, or use LeakyReLU/GELU")
    if " is saturated in run " in titles:
        steps.append("bring the saturated layer back into range: normalise its input (LayerNorm/BatchNorm) or scale its initialisation down")
    if "seed" in titles or "noise" in titles:
        steps.append("repeat each configuration with 3+ seeds to measure the noise floor before concluding")
    if len([c for c in causes if c.score >= 0.5]) > 1:
        steps.append("change one thing at a time: start from A's code (`unitrack rollback A --to DIR`) and apply only the top cause")
    if not steps:
        steps.append("nothing recorded differs enough to explain the change: repeat both runs to check it is real")
    return steps


def explain_with_rules(evidence: dict[str, Any]) -> Explanation:
    headline = headline_metric(evidence)
    noise = (headline or {}).get("noise")
    telling = telling_metric(evidence, headline)
    model = _model_candidate(evidence)
    absorbed = {e["key"] for e in evidence["config"]["changed"] if e["key"].startswith("model/")} if model else set()
    candidates = _param_candidates(evidence, absorbed) + ([model] if model else []) + _setup_candidates(evidence)
    candidates += [c for c in (_environment_candidate(evidence), _code_candidate(evidence, model is not None)) if c]
    params = {**(evidence.get("params") or {}).get("a", {}), **(evidence.get("params") or {}).get("b", {})}
    telling_noise = (telling or {}).get("noise")
    effect_size, effect_facts = effect(telling_noise), _effect_facts(evidence, headline, telling)
    causes = []
    for candidate in candidates:
        fit, when = timing(candidate.kind, telling_noise, params)
        facts = candidate.facts + effect_facts + ([f"{candidate.keys[0]} {when}"] if noise else [])
        causes.append(Cause(candidate.title, facts, score(effect_size, fit, candidate.size), candidate.keys))
    chance = _noise_cause(evidence, headline, bool(candidates))
    if chance is not None:
        causes.append(chance)
    causes += _failure_causes(evidence) + _activation_causes(evidence)
    causes.sort(key=lambda c: -c.score)
    runs = evidence["runs"]
    text = describe_metric(headline) if headline else "no result metric in common"
    if noise:
        text += f"; {'within' if noise['within'] else 'beyond'} noise (band ±{fmt(noise['band'])})"
    return Explanation(
        provider="rules",
        headline=f"{runs['a']['run_id']} (A) → {runs['b']['run_id']} (B): {text}",
        causes=causes,
        next_steps=_next_steps(causes, evidence),
        noise={"metric": headline["key"], **noise} if headline and noise else None,
        bookkeeping=list(evidence["config"].get("bookkeeping", [])),
    )
