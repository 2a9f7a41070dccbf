"""Every example runs, quickly, and leaves the run it promises in the store (train_ddp: tests/integrations/test_ddp.py)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PROCESS_TIMEOUT_S, journal
from unitrack.store.runs import RunStore

ROOT = Path(__file__).resolve().parents[1]
LOCAL = str(ROOT / "configs" / "local.yaml")


def needs(extra: str, *modules: str) -> pytest.MarkDecorator:
    """Skip, with the install line as the reason, where an example's optional packages are missing."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    return pytest.mark.skipif(bool(missing), reason=f"needs {', '.join(missing)}: pip install 'unitrack[{extra}]'")


def run_example(script: str, *args: str, cwd: Path) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "UNITRACK__CAPTURE__PACKAGES": "false"}
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / script), *args],
        capture_output=True, text=True, timeout=PROCESS_TIMEOUT_S, cwd=cwd, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result.stdout


def only_run(store_dir: Path) -> Path:
    runs = RunStore(store_dir).run_ids()
    assert len(runs) == 1, runs
    return store_dir / "runs" / runs[0]


@pytest.mark.slow
def test_train_digits_full_workflow_and_resume(tmp_path: Path, store_dir: Path) -> None:
    digits = str(ROOT / "configs" / "digits.yaml")
    run_example("train_digits.py", "--config", digits, "--epochs", "2", "--limit", "240", "--lr", "0.1", cwd=tmp_path)
    out = run_example("train_digits.py", "--config", digits, "--epochs", "3", "--limit", "240", "--resume", "last", cwd=tmp_path)
    run_dir = only_run(store_dir)  # resuming continued the same run
    assert "resuming run" in out and "after epoch 1" in out
    events = journal(run_dir)
    assert [e["epoch"] for e in events if e["kind"] == "checkpoint"] == [0, 1, 2]
    assert any(e["kind"] == "rewind" for e in events)
    assert sum(e["kind"] == "snapshot" for e in events) >= 3
    artifacts = run_dir / "artifacts"
    assert (artifacts / "model" / "graph.pb").exists() and (artifacts / "plots" / "learning_curves.png").exists()
    assert json.loads((run_dir / "params.json").read_text())["lr"] == 0.1
    assert RunStore(store_dir).load(run_dir.name).status == "completed"


@pytest.mark.slow
@needs("lightning,dev", "lightning", "sklearn")
def test_train_lightning(tmp_path: Path, store_dir: Path) -> None:
    out = run_example("train_lightning.py", "--config", LOCAL, "--epochs", "2", "--limit", "200", cwd=tmp_path)
    run_dir = only_run(store_dir)
    assert "best checkpoint: epoch" in out
    assert [e["epoch"] for e in journal(run_dir) if e["kind"] == "checkpoint"] == [0, 1]


@pytest.mark.slow
@needs("transformers", "transformers", "accelerate")
def test_train_huggingface(tmp_path: Path, store_dir: Path) -> None:
    run_example("train_huggingface.py", "--config", LOCAL, "--steps", "4", cwd=tmp_path)
    events = journal(only_run(store_dir))
    assert [e["step"] for e in events if e["kind"] == "checkpoint"] == [1, 2, 3, 4]
    assert any("eval/loss" in e["values"] for e in events if e["kind"] == "metric")


@pytest.mark.slow
@needs("keras,dev", "keras", "sklearn")
def test_train_keras(tmp_path: Path, store_dir: Path) -> None:
    run_example("train_keras.py", "--config", LOCAL, "--epochs", "2", "--limit", "200", cwd=tmp_path)
    events = journal(only_run(store_dir))
    assert sum(e["kind"] == "snapshot" for e in events) == 2
    assert any("epoch/val_loss" in e["values"] for e in events if e["kind"] == "metric")


def test_train_jax(tmp_path: Path, store_dir: Path) -> None:
    pytest.importorskip("jax")
    run_example("train_jax.py", "--config", LOCAL, "--epochs", "2", cwd=tmp_path)
    run_dir = only_run(store_dir)
    snapshots = [e for e in journal(run_dir) if e["kind"] == "snapshot"]
    assert [s["tag"] for s in snapshots] == ["init", "epoch-0", "epoch-1"]
    delta = subprocess.run(
        [sys.executable, "-m", "unitrack.cli.app", "delta", f"{run_dir.name}@init", run_dir.name, "--json"],
        capture_output=True, text=True, cwd=tmp_path, check=True,
    )  # fmt: skip
    rows = {row["name"]: row for row in json.loads(delta.stdout)["tensors"]}
    assert set(rows) == {"dense0.kernel", "dense0.bias", "dense1.kernel", "dense1.bias"}
    assert all(row["l2"] > 0 for row in rows.values())


def test_an_example_whose_packages_are_missing_is_skipped_with_the_install_line() -> None:
    mark = needs("keras", "keras", "no_such_module_here")
    assert mark.args == (True,) and mark.kwargs["reason"] == "needs no_such_module_here: pip install 'unitrack[keras]'"
    assert needs("keras", "json").args == (False,)


def test_activations_and_pruning_example_shows_sparsity_and_dead_units(tmp_path: Path, store_dir: Path) -> None:
    out = run_example("activations_and_pruning.py", "--epochs", "2", "--out", str(tmp_path / "plots"), cwd=tmp_path)
    assert (tmp_path / "plots" / "sparsity.png").exists() and (tmp_path / "plots" / "activations.png").exists(), out
    events = journal(only_run(store_dir))
    dead = [e["values"]["activations/3/zero_fraction"] for e in events if e["kind"] == "metric" and "activations/3/zero_fraction" in e["values"]]
    assert dead and min(dead) >= 0.7  # 24 of the 32 units were started dead
