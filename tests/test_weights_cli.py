"""``unitrack delta``, ``plot`` and ``export-weights`` on a real (tiny) training run; MLflow artifacts; plots at finish."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

from tests.conftest import journal, quiet_config
from unitrack import ExperimentTracker
from unitrack.cli.app import app
from unitrack.store.runs import RunStore
from unitrack.weights.compare import compare_sources
from unitrack.weights.plugins import PLOTS, register_plot
from unitrack.weights.refs import open_weights

runner = CliRunner()
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ALL_PLOTS = {"learning_curves", "total_change", "layer_change", "layer_heatmap", "neuron_heatmap", "update_ratio", "weight_trajectories"}


def cli(*args: str) -> Any:
    return runner.invoke(app, list(args), catch_exceptions=False)


def train_digits(epochs: int = 3, **config: Any) -> ExperimentTracker:
    """A small MLP on 400 of scikit-learn's digits, with per-epoch snapshots and gradient sampling."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.tensor(digits.data[:400] / 16.0, dtype=torch.float32)
    y = torch.tensor(digits.target[:400])
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.2)
    batches = [(x[i : i + 50], y[i : i + 50]) for i in range(0, 300, 50)]
    loss_fn = torch.nn.CrossEntropyLoss()
    with ExperimentTracker("digits", quiet_config(**config)) as tracker:
        tracker.watch(model, optimizer, dataloader=batches, snapshot_every="epoch", gradients=True, log_every=2)
        for epoch in range(epochs):
            for images, labels in batches:
                optimizer.zero_grad()
                loss = loss_fn(model(images), labels)
                loss.backward()
                optimizer.step()
            with torch.no_grad():
                train_logits, val_logits = model(x[:300]), model(x[300:])
            tracker.log_metrics(
                {
                    "train/loss": loss_fn(train_logits, y[:300]).item(),
                    "val/loss": loss_fn(val_logits, y[300:]).item(),
                    "train/acc": (train_logits.argmax(1) == y[:300]).float().mean().item(),
                    "val/acc": (val_logits.argmax(1) == y[300:]).float().mean().item(),
                },
                step=(epoch + 1) * len(batches),
            )
    return tracker


def test_delta_of_one_run_as_table_and_json() -> None:
    tracker = train_digits()
    table = cli("delta", tracker.run_id)
    assert table.exit_code == 0, table.output
    lines = table.output.splitlines()
    assert "@000000-step0" in lines[0] and "@000003-step18" in lines[0]
    assert lines[1].split()[:3] == ["tensor", "shape", "relative"]
    relatives = [float(line.split()[2]) for line in lines[2:6]]
    assert relatives == sorted(relatives, reverse=True)  # largest movers first
    data = json.loads(cli("delta", tracker.run_id, "--from", "6", "--to", "12", "--json").output)
    assert data["source_a"].endswith("000001-step6") and data["source_b"].endswith("000002-step12")
    assert {row["name"] for row in data["tensors"]} == {"0.weight", "0.bias", "2.weight", "2.bias"}
    row = data["tensors"][0]
    for key in ("l1", "mean_abs", "l2", "relative", "cosine", "max_abs", "changed_fraction", "from_init_l2", "nan", "inf", "neurons"):
        assert key in row
    store = RunStore(Path.cwd() / "store")
    expected = compare_sources(open_weights(store, f"{tracker.run_id}@6"), open_weights(store, f"{tracker.run_id}@12"))
    assert row["l2"] == pytest.approx(expected.by_name()[row["name"]].delta.l2)
    first = open_weights(store, f"{tracker.run_id}@first").array(row["name"]).astype(np.float64)
    at_12 = open_weights(store, f"{tracker.run_id}@12").array(row["name"]).astype(np.float64)
    assert row["from_init_l2"] == pytest.approx(np.linalg.norm(at_12 - first))


def test_delta_of_two_files(tmp_path: Path) -> None:
    a = {"w": torch.zeros(2, 3), "b": torch.ones(2)}
    b = {"w": torch.full((2, 3), 0.5), "extra": torch.ones(1)}
    save_file(a, str(tmp_path / "a.safetensors"))
    torch.save(b, tmp_path / "b.pth")
    result = cli("delta", str(tmp_path / "a.safetensors"), str(tmp_path / "b.pth"), "--json")
    data = json.loads(result.output)
    assert data["tensors"][0]["name"] == "w" and data["tensors"][0]["l1"] == 3.0
    assert data["added"] == ["extra"] and data["removed"] == ["b"]
    text = cli("delta", str(tmp_path / "a.safetensors"), str(tmp_path / "b.pth")).output
    assert "added: extra" in text and "removed: b" in text


def test_delta_errors_are_one_clear_line(tmp_path: Path) -> None:
    with ExperimentTracker("empty", quiet_config()) as tracker:
        pass
    result = runner.invoke(app, ["delta", tracker.run_id])
    assert result.exit_code == 1 and "has no weight snapshots or checkpoints" in result.output
    (tmp_path / "x.safetensors").write_bytes(b"\x00")
    result = runner.invoke(app, ["delta", str(tmp_path / "x.safetensors"), str(tmp_path / "x.safetensors")])
    assert result.exit_code == 1 and "x.safetensors is not a safetensors file" in result.output
    result = runner.invoke(app, ["delta", "a", "b", "--from", "3"])
    assert result.exit_code == 1 and "--from / --to" in result.output


def test_plot_writes_every_png(tmp_path: Path) -> None:
    tracker = train_digits()
    result = cli("plot", tracker.run_id, "--out", str(tmp_path / "plots"))
    assert result.exit_code == 0, result.output
    written = {Path(line).stem: Path(line) for line in result.output.split()}
    assert set(written) == ALL_PLOTS
    for path in written.values():
        data = path.read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 10_000, path


def test_plots_at_finish_become_artifacts_and_plugins_are_drawn() -> None:
    drawn: list[str] = []

    @register_plot("layer_count")
    def layer_count(data: Any, out_dir: Path) -> Path:
        drawn.append(data.run_id)
        path = out_dir / "layer_count.txt"
        path.write_text(str(len(data.layers)))
        return path

    try:
        tracker = train_digits(epochs=2, monitoring={"create_plots": True})
    finally:
        PLOTS.pop("layer_count")
    names = {e["name"] for e in journal(tracker.run_dir) if e["kind"] == "artifact"}
    assert {f"plots/{name}.png" for name in ALL_PLOTS} <= names
    assert (tracker.run_dir / "artifacts" / "plots" / "layer_count.txt").read_text() == "4"
    assert drawn == [tracker.run_id]


def test_mlflow_checkpoint_artifacts_are_read_with_mlflows_client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mlflow = pytest.importorskip("mlflow")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"  # a real MLflow store; artifacts under ./mlruns
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("UNITRACK_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "ckpt" / "epoch-2"
    folder.mkdir(parents=True)
    save_file({"w": torch.ones(3, 2)}, str(folder / "model.safetensors"))
    save_file({"step": torch.zeros(1)}, str(folder / "state.safetensors"))
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(tmp_path / "ckpt"), artifact_path="checkpoints")
    save_file({"w": torch.zeros(3, 2)}, str(tmp_path / "zero.safetensors"))
    result = cli("delta", str(tmp_path / "zero.safetensors"), f"mlflow:{run.info.run_id}", "--json")
    data = json.loads(result.stdout)
    assert data["source_b"] == f"mlflow:{run.info.run_id}/checkpoints/epoch-2/model.safetensors"
    assert data["tensors"][0]["l2"] == pytest.approx(np.sqrt(6))
    assert not (tmp_path / "cache" / run.info.run_id / "checkpoints" / "epoch-2" / "state.safetensors").exists()  # only what is needed


def test_an_artifact_folder_names_the_weights_inside(tmp_path: Path) -> None:
    """A downloaded W&B artifact (or a checkpoint folder): its model.safetensors is found, state files are not weights."""
    folder = tmp_path / "artifacts" / "model-v3"
    folder.mkdir(parents=True)
    save_file({"w": torch.ones(4)}, str(folder / "model.safetensors"))
    save_file({"optimizer.momentum": torch.ones(4)}, str(folder / "state.safetensors"))
    torch.save({"w": torch.zeros(4)}, tmp_path / "start.pt")
    data = json.loads(cli("delta", str(tmp_path / "start.pt"), str(folder), "--json").stdout)
    assert data["source_b"].endswith("model-v3/model.safetensors")
    assert data["tensors"][0]["l1"] == 4.0 and data["added"] == [] and data["removed"] == []


def test_export_weights_writes_a_checkpoints_state_dict_as_safetensors(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2)).to(torch.bfloat16)
    with ExperimentTracker("export", quiet_config(checkpointing={"compression": "zstd"})) as tracker:
        tracker.save_checkpoint(model, epoch=0, step=1, is_best=True)
    target = tmp_path / "out" / "model.safetensors"
    result = cli("export-weights", f"{tracker.run_id}@best", "--to", str(target))
    assert result.exit_code == 0 and "wrote 4 tensor(s)" in result.output
    exported = load_file(str(target))  # safetensors' own reader
    assert exported.keys() == model.state_dict().keys()
    assert all(torch.equal(exported[k], v) and exported[k].dtype == torch.bfloat16 for k, v in model.state_dict().items())
    assert runner.invoke(app, ["export-weights", tracker.run_id, "--to", str(tmp_path / "x.pt")]).exit_code != 0
