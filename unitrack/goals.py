"""Which way is better for a metric, decided once from its name: the W&B summary's ``best/<key>``,
``compare`` and ``explain``, sweeps and checkpoint retention (when ``checkpointing.mode`` is not
given) all ask here, so ``val/nll`` is "lower is better" everywhere. And which metrics a person
looks at first (``ls``, the dashboard's runs table)."""

from __future__ import annotations

from collections.abc import Iterable

_HIGHER_IS_BETTER = ("acc", "f1", "auc", "precision", "recall", "score", "iou", "map", "bleu", "rouge", "r2", "dice")
_LOWER_IS_BETTER = ("loss", "err", "perplexity", "ppl", "mse", "mae", "rmse", "wer", "cer", "nll")
_NOT_RESULTS = ("throughput", "eta", "steps_per", "samples_per", "lr", "learning_rate", "time", "epoch")


def goal(key: str) -> str | None:
    """``"max"`` or ``"min"`` when the metric's name says which way is better, else None."""
    lowered = key.lower()
    words = lowered.replace("/", "_").replace(".", "_").replace("-", "_").split("_")
    if any(word in _NOT_RESULTS for word in words) or lowered.startswith(("progress", "system")):
        return None
    if any(word.startswith(_HIGHER_IS_BETTER) for word in words):
        return "max"
    if any(word.startswith(_LOWER_IS_BETTER) for word in words):
        return "min"
    return None


def lower_is_better(key: str, default: bool = False) -> bool:
    """True for losses and errors; ``default`` when the name does not say."""
    direction = goal(key)
    return default if direction is None else direction == "min"


def headline_metrics(metrics: Iterable[str], count: int = 3) -> list[str]:
    """The metrics a person looks at first: validation accuracy and loss, then other acc / loss."""

    def rank(key: str) -> tuple[int, str]:
        lowered = key.lower()
        score = ("acc" in lowered or "loss" in lowered) + ("val" in lowered or "test" in lowered)
        return (-score, key)

    return sorted(metrics, key=rank)[:count]
