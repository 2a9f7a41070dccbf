"""The offline explainer: rules over the evidence of ``compare``, each cause citing its numbers."""

from __future__ import annotations

import math
from typing import Any

from unitrack.analysis.explain import Cause, Explanation

_NOISE_REL = 0.02  # a relative change below this, with only the seed changed, reads as noise
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


def _is_key(key: str, *names: str) -> bool:
    last = key.lower().replace(".", "/").split("/")[-1]
    return last in names


def _loss_divergence(evidence: dict[str, Any], side: str) -> str | None:
    for metric in evidence["metrics"]:
        step = metric[side]["diverged_at_step"]
        if metric["goal"] == "min" and step is not None:
            return f"{metric['key']} diverging after step {step}"
    return None


def _lr_changes(evidence: dict[str, Any]) -> list[list[dict[str, Any]]]:
    """Learning-rate changes, the same change logged under several keys (``lr``, ``optimizer/lr``) as one."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for change in evidence["config"]["changed"]:
        if _is_key(change["key"], "lr", "learning_rate", "base_lr", "max_lr"):
            groups.setdefault((repr(change["a"]), repr(change["b"])), []).append(change)
    return list(groups.values())


def _lr_causes(evidence: dict[str, Any], headline: dict[str, Any] | None) -> list[Cause]:
    causes = []
    for same in _lr_changes(evidence):
        change = same[0]
        r = change["ratio"]
        also = f" (also {', '.join(c['key'] for c in same[1:])})" if len(same) > 1 else ""
        facts = [f"{change['key']} {fmt(change['a'])} → {fmt(change['b'])}" + (f" ({_times(r)})" if r else "") + also]
        diverged = _loss_divergence(evidence, "b")
        if diverged and not _loss_divergence(evidence, "a"):
            facts.append(diverged)
        else:
            diverged = None
        if headline:
            facts.append(describe_metric(headline))
        big = r is not None and (r >= 3 or r <= 1 / 3)
        title = f"learning rate {_times(r)}" if r else "learning rate changed"
        causes.append(Cause(title + (" with the loss diverging" if diverged else ""), facts, 0.95 if big else 0.7))
    return causes


def _batch_causes(evidence: dict[str, Any]) -> list[Cause]:
    causes = []
    for change in evidence["config"]["changed"]:
        if not _is_key(change["key"], "batch_size", "batch", "bs"):
            continue
        r = change["ratio"]
        word = "halved" if r and math.isclose(r, 0.5) else "doubled" if r and math.isclose(r, 2) else "changed"
        facts = [f"{change['key']} {fmt(change['a'])} → {fmt(change['b'])}"]
        if r and r < 1:
            facts.append("smaller batches: noisier gradients, more steps per epoch")
        causes.append(Cause(f"batch size {word}", facts, 0.75))
    return causes


def _model_causes(evidence: dict[str, Any]) -> list[Cause]:
    model = evidence["model"]
    arch = model.get("architecture") or {}
    classes = [c for c in model.get("classes", []) if c["status"] != "same"]
    functions = [f for f in model.get("functions", []) if f["status"] != "same"]
    if not arch.get("changed") and not classes and not functions:
        return []
    facts: list[str] = []
    params = model.get("parameters") or {}
    r = params.get("ratio")
    title = "model changed"
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
    if not arch.get("changed"):
        title = "model code changed (same layers)"
    return [Cause(title, facts, 0.85 if arch.get("changed") else 0.6)]


def _setup_causes(evidence: dict[str, Any]) -> list[Cause]:
    causes = []
    for part in ("optimizer", "scheduler", "loss", "data"):
        diff = evidence["model"].get(part)
        if not diff:
            continue
        facts = [
            f"{part}.{c['key']} {fmt(c['a'])} → {fmt(c['b'])}"
            for c in diff["changed"]
            if not _is_key(c["key"], "lr", "initial_lr", "base_lrs", "_last_lr", "max_lrs", "batch_size")
        ]
        facts += [f"{part}.{c['key']} added ({fmt(c['value'])})" for c in diff["added"]]
        facts += [f"{part}.{c['key']} removed" for c in diff["removed"]]
        if facts:
            score = 0.8 if any(".class " in f for f in facts) else 0.5
            causes.append(Cause(f"{part} settings changed", facts[:6], score))
    return causes


def _other_param_causes(evidence: dict[str, Any], seen: set[str]) -> list[Cause]:
    causes = []
    seeds = set(evidence.get("seed_keys") or [])
    for change in evidence["config"]["changed"]:
        key = change["key"]
        if key in seen or key in seeds or key.split("/")[0] in ("model", "optimizer", "scheduler", "loss", "data"):
            continue
        r = change["ratio"]
        fact = f"{key} {fmt(change['a'])} → {fmt(change['b'])}" + (f" ({_times(r)})" if r else "")
        causes.append(Cause(f"{key} changed", [fact], 0.55 if r and (r >= 2 or r <= 0.5) else 0.4))
    for item in evidence["config"]["added"]:
        causes.append(Cause(f"{item['key']} added", [f"{item['key']} = {fmt(item['value'])} only in B"], 0.3))
    for item in evidence["config"]["removed"]:
        causes.append(Cause(f"{item['key']} removed", [f"{item['key']} = {fmt(item['value'])} only in A"], 0.3))
    return causes


def _environment_causes(evidence: dict[str, Any]) -> list[Cause]:
    env = evidence["environment"]
    facts = [f"{k} {fmt(v['a'])} → {fmt(v['b'])}" for k, v in env["facts"].items() if not v["same"] and v["a"] and v["b"]]
    facts += [f"{p['name']} {p['a']} → {p['b']}" for p in env["packages"]["changed"][:5]]
    return [Cause("environment changed", facts[:6], 0.25)] if facts else []


def _code_outside_model(evidence: dict[str, Any], model_changed: bool) -> list[Cause]:
    git = evidence["git"]
    if model_changed or (git["commit"]["same"] and git["patch_same"]):
        return []
    facts = []
    if not git["commit"]["same"]:
        facts.append(f"git commit {str(git['commit']['a'])[:8]} → {str(git['commit']['b'])[:8]}")
    if not git["patch_same"]:
        facts.append(f"uncommitted patch {git['patch_lines']['a']} → {git['patch_lines']['b']} lines")
    return [Cause("code changed outside the model", facts, 0.35)]


def _seed_only(evidence: dict[str, Any], headline: dict[str, Any] | None) -> Cause | None:
    seeds = set(evidence.get("seed_keys") or [])
    changed = {c["key"] for c in evidence["config"]["changed"]}
    if not changed or not changed <= seeds or evidence["config"]["added"] or evidence["config"]["removed"]:
        return None
    facts = [f"{c['key']} {fmt(c['a'])} → {fmt(c['b'])}" for c in evidence["config"]["changed"]]
    rel = abs(headline["rel_change"] or 0.0) if headline else 0.0
    if headline:
        facts.append(describe_metric(headline))
    title = "only the seed differs: within noise" if rel < _NOISE_REL else "only the seed differs: seed-to-seed variance"
    return Cause(title, facts, 0.9)


def _failure_causes(evidence: dict[str, Any]) -> list[Cause]:
    """A run that ended with an exception: that is the first thing to explain about it."""
    causes = []
    for side in ("a", "b"):
        run = evidence["runs"][side]
        error = run.get("error")
        if error:
            facts = [f"{error['type']}: {error['message']}" if error.get("message") else str(error["type"])]
            if error.get("where"):
                facts.append(f"raised at {error['where']}")
            title = f"run {side.upper()} failed with {error['type']}"
            causes.append(Cause(title, facts, 1.0 if side == "b" else 0.95))
    return causes


def _next_steps(causes: list[Cause], evidence: dict[str, Any]) -> list[str]:
    steps = []
    titles = " | ".join(c.title for c in causes)
    for cause in causes:
        if " failed with " in cause.title:
            where = next((f[len("raised at ") :] for f in cause.evidence if f.startswith("raised at ")), None)
            steps.append(f"fix the {cause.title.rsplit(' ', 1)[-1]} first" + (f" ({where})" if where else "") + ": its metrics stop where it failed")
    for same in _lr_changes(evidence):
        change = same[0]
        if change["ratio"]:
            low, high = sorted((change["a"], change["b"]))
            middle = math.sqrt(low * high) if low > 0 else high / 2
            steps.append(
                f"sweep {change['key']} between {fmt(low)} and {fmt(high)} (e.g. {fmt(middle)})"
                + ("; add warm-up or gradient clipping" if "diverging" in titles else "")
            )
    if "bigger model" in titles or "overfitting gap" in " ".join(f for c in causes for f in c.evidence):
        steps.append("check the bigger model's gain on held-out data; regularise it (dropout, weight decay) if the train/val gap grows")
    if "seed" in titles:
        steps.append("repeat each configuration with 3+ seeds to measure the noise floor before concluding")
    if len([c for c in causes if c.score >= 0.5]) > 1:
        steps.append("change one thing at a time: start from A's code (`unitrack rollback A --to DIR`) and apply only the top cause")
    if not steps:
        steps.append("nothing recorded differs enough to explain the change: repeat both runs to check it is real")
    return steps


def explain_with_rules(evidence: dict[str, Any]) -> Explanation:
    headline = headline_metric(evidence)
    causes = [*_lr_causes(evidence, headline), *_batch_causes(evidence)]
    seen = {c["key"] for c in evidence["config"]["changed"] if _is_key(c["key"], "lr", "learning_rate", "base_lr", "max_lr", "batch_size", "batch", "bs")}
    model_causes = _model_causes(evidence)
    causes += model_causes + _setup_causes(evidence) + _other_param_causes(evidence, seen)
    causes += _environment_causes(evidence) + _code_outside_model(evidence, bool(model_causes))
    causes += _failure_causes(evidence)
    seed = _seed_only(evidence, headline)
    if seed is not None:
        causes.insert(0, seed)
    causes.sort(key=lambda c: -c.score)
    runs = evidence["runs"]
    text = describe_metric(headline) if headline else "no result metric in common"
    return Explanation(
        provider="rules",
        headline=f"{runs['a']['run_id']} (A) → {runs['b']['run_id']} (B): {text}",
        causes=causes,
        next_steps=_next_steps(causes, evidence),
    )
