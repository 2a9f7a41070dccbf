"""``explain`` on real pairs of small digits trainings that differ in one known factor.

Each cause alone, and combined with a seed change and bookkeeping changes (paths, intervals,
workers, verbosity); seed-only pairs with and without bookkeeping changes. The runs are trained
once for the module (tiny MLPs, 12 epochs, about a second each).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import quiet_config
from tests.digits_runs import BASE, BOOKKEEPING, CAUSES, train
from unitrack.analysis import gather_evidence
from unitrack.analysis.explain import Explanation, explain
from unitrack.config import AnalysisConfig
from unitrack.store.runs import RunStore

SEED_PAIRS = ("seed", "seed+bookkeeping")
CAUSE_PAIRS = [(f"{cause}{suffix}", cause) for cause in CAUSES for suffix in ("", "+seed+bookkeeping")]
BOOKKEEPING_KEYS = set(BOOKKEEPING[0])


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunStore, dict[str, str]]]:
    root = tmp_path_factory.mktemp("digits")
    config = quiet_config(store_dir=str(root / "store"), capture={"git": False})
    here = os.getcwd()
    os.chdir(root)  # nothing a run writes lands in the repository
    try:
        ids = {"base": train({**BASE, **BOOKKEEPING[0]}, config)}
        ids["seed"] = train({**BASE, **BOOKKEEPING[0], "seed": 1}, config)
        ids["seed+bookkeeping"] = train({**BASE, **BOOKKEEPING[1], "seed": 2}, config)
        for cause, change in CAUSES.items():
            ids[cause] = train({**BASE, **BOOKKEEPING[0], **change}, config)
            ids[f"{cause}+seed+bookkeeping"] = train({**BASE, **BOOKKEEPING[1], **change, "seed": 1}, config)
    finally:
        os.chdir(here)
    yield RunStore(root / "store"), ids


def explained(trained: tuple[RunStore, dict[str, str]], pair: str, peer_runs: int) -> tuple[dict[str, Any], Explanation]:
    store, ids = trained
    evidence = gather_evidence(store, ids["base"], ids[pair], AnalysisConfig(peer_runs=peer_runs))
    return evidence, explain(evidence, provider="rules")


def _never_bookkeeping(result: Explanation) -> None:
    for cause in result.causes:
        assert not set(cause.keys) & BOOKKEEPING_KEYS, cause


@pytest.mark.parametrize("peer_runs", [20, 0], ids=["with-peers", "runs-alone"])
def test_the_true_cause_comes_first_in_every_pair(trained: tuple[RunStore, dict[str, str]], peer_runs: int) -> None:
    wrong = []
    for pair, cause in CAUSE_PAIRS:
        _, result = explained(trained, pair, peer_runs)
        (key,) = CAUSES[cause]
        top = result.causes[0]
        if key not in top.keys or top.score <= 0.3:  # 0.3 and below: within noise
            wrong.append(f"{pair}: {[(c.title, c.score) for c in result.causes[:3]]}")
            continue
        _never_bookkeeping(result)
        # the evidence names the numbers: the change, the effect against the band, where the curves parted
        assert top.evidence[0].startswith(key), top.evidence
        assert any("noise band ±" in fact and "tail fluctuation" in fact for fact in top.evidence), top.evidence
        assert any(fact.startswith(f"{key} acts") for fact in top.evidence), top.evidence
        if pair.endswith("+bookkeeping"):
            assert {e["key"] for e in result.bookkeeping} == BOOKKEEPING_KEYS
            assert any(c.keys == ["seed"] and c.score < 0.3 for c in result.causes)
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("peer_runs", [20, 0], ids=["with-peers", "runs-alone"])
@pytest.mark.parametrize("pair", SEED_PAIRS)
def test_seed_only_pairs_are_within_noise_with_the_band_stated(
    trained: tuple[RunStore, dict[str, str]], pair: str, peer_runs: int
) -> None:
    evidence, result = explained(trained, pair, peer_runs)
    top = result.causes[0]
    assert top.title == "only the seed differs: within noise", [(c.title, c.score) for c in result.causes]
    assert result.noise is not None and result.noise["metric"] == "val_acc" and result.noise["within"]
    assert any("within the noise band ±" in fact for fact in top.evidence)
    assert "within noise (band ±" in result.headline
    _never_bookkeeping(result)
    expected = BOOKKEEPING_KEYS if pair.endswith("+bookkeeping") else set()
    assert {e["key"] for e in result.bookkeeping} == expected
    assert {e["key"] for e in evidence["config"]["bookkeeping"]} == expected
    peers = result.noise["peer_runs"]
    assert (peers >= 3) if peer_runs else (peers == 0)  # base, this pair's B and the other seed-only run


def test_timing_fits_the_kind_of_change(trained: tuple[RunStore, dict[str, str]]) -> None:
    _, schedule = explained(trained, "lr_schedule", 20)
    assert any("acts from the schedule's first change (step 3)" in f and "consistent" in f for f in schedule.causes[0].evidence)
    _, epochs = explained(trained, "epochs", 20)
    facts = epochs.causes[0].evidence
    assert "A ends at step 11, B at step 3" in facts
    assert any("acts only where the shorter run stops (step 3), and the curves agree before it" in f for f in facts)
    _, lr = explained(trained, "lr_down", 20)
    assert "lr acts from the first steps; the curves parted at step 0: consistent" in lr.causes[0].evidence


def test_cli_lists_bookkeeping_apart_and_states_the_band(trained: tuple[RunStore, dict[str, str]]) -> None:
    from typer.testing import CliRunner

    from unitrack.cli.app import app

    store, ids = trained
    result = CliRunner().invoke(
        app, ["explain", ids["base"], ids["seed+bookkeeping"], "--store", str(store.root), "--provider", "rules"]
    )
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "1. only the seed differs: within noise" in out
    assert "not causes (bookkeeping):" in out and "out_dir (name matches '*dir')" in out
    assert "report (value is a path)" in out
    assert "noise: val_acc band ±" in out
    compared = CliRunner().invoke(app, ["compare", ids["base"], ids["seed+bookkeeping"], "--store", str(store.root)])
    assert "bookkeeping (never causes): log_every 10 → 50, num_workers 0 → 4, out_dir runs/base → runs/other" in compared.stdout


def test_peer_runs_bounds_how_many_other_runs_are_read(trained: tuple[RunStore, dict[str, str]]) -> None:
    store, ids = trained
    evidence = gather_evidence(store, ids["base"], ids["seed"], AnalysisConfig(peer_runs=1))
    noise = next(m["noise"] for m in evidence["metrics"] if m["key"] == "val_acc")
    assert noise["peer_runs"] == 3 and evidence["peer_runs"] == 3  # A, B and the one other run allowed
