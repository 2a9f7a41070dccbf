"""The tracker facade: the seed-003 usage patterns, statuses, validation, secrets, watch()."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

import unitrack as ut
from tests.conftest import journal, metric_points, quiet_config, wait_until
from unitrack.store.runs import RunStore


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    inputs, targets = batch
    loss = nn.functional.mse_loss(model(inputs), targets)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.detach()


@pytest.fixture
def setup() -> tuple[nn.Module, torch.optim.Optimizer, list[tuple[torch.Tensor, torch.Tensor]]]:
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loader = [(torch.randn(8, 4), torch.randn(8, 1)) for _ in range(5)]
    return model, optimizer, loader


def test_seed_context_manager_pattern(setup, store_dir: Path) -> None:
    model, optimizer, loader = setup
    config = quiet_config()
    epochs = 2
    with ut.experiment_tracking("my_experiment", config) as tracker:
        for epoch in range(epochs):  # noqa: B007 (the documented loop, as users write it)
            for step, batch in enumerate(loader):
                loss = train_step(model, optimizer, batch)
                tracker.log_metrics({"loss": loss}, step=step)
    record = RunStore(store_dir).load(tracker.run_id)
    assert record.status == "completed"
    assert record.experiment == "my_experiment"
    points = metric_points(tracker.run_dir, "loss")
    assert [step for step, _ in points] == list(range(5)) * 2
    assert all(isinstance(value, float) for _, value in points)


def test_seed_direct_tracker_pattern(setup, store_dir: Path) -> None:
    model, optimizer, loader = setup
    tracker = ut.ExperimentTracker("my_experiment", quiet_config())
    tracker.log_hyperparameters({"lr": 1e-4, "batch_size": 32})
    batch = loader[0]
    total_steps = 7
    for step in range(total_steps):
        loss = train_step(model, optimizer, batch)
        tracker.log_metrics({"loss": loss}, step=step)
    tracker.finish("completed")
    record = RunStore(store_dir).load(tracker.run_id)
    assert record.status == "completed"
    assert record.params == {"lr": 1e-4, "batch_size": 32}
    assert record.metrics["loss"]["count"] == total_steps
    assert record.metrics["loss"]["step"] == total_steps - 1


def test_exception_marks_failed_and_is_reraised(store_dir: Path) -> None:
    with pytest.raises(ZeroDivisionError), ut.experiment_tracking("exp", quiet_config()) as tracker:
        tracker.log_metrics({"loss": 1.0})
        1 / 0  # noqa: B018
    assert RunStore(store_dir).load(tracker.run_id).status == "failed"
    assert journal(tracker.run_dir)[-1] == {**journal(tracker.run_dir)[-1], "kind": "status", "status": "failed"}


def test_ctrl_c_marks_interrupted(store_dir: Path) -> None:
    with pytest.raises(KeyboardInterrupt), ut.experiment_tracking("exp", quiet_config()) as tracker:
        raise KeyboardInterrupt
    assert RunStore(store_dir).load(tracker.run_id).status == "interrupted"


def test_finish_is_idempotent_and_logging_after_it_raises(store_dir: Path) -> None:
    tracker = ut.ExperimentTracker("exp", quiet_config())
    tracker.finish("failed")
    tracker.finish("completed")
    assert RunStore(store_dir).load(tracker.run_id).status == "failed"
    with pytest.raises(RuntimeError, match="finished"):
        tracker.log_metrics({"loss": 1.0})
    with pytest.raises(ValueError, match="status must be one of"):
        ut.ExperimentTracker("exp", quiet_config()).finish("done")


def test_values_numpy_tensors_nan_inf_and_nesting() -> None:
    with ut.experiment_tracking("exp", quiet_config()) as tracker:
        tracker.log_metrics(
            {
                "py_float": 0.5,
                "py_int": 3,
                "flag": True,
                "np_float": np.float32(1.5),
                "np_int": np.int64(7),
                "np_0d": np.array(2.5),
                "tensor_0d": torch.tensor(4.25),
                "tensor_int": torch.tensor(9),
                "tensor_one": torch.tensor([0.75]),
                "nan": math.nan,
                "inf": math.inf,
                "neg_inf": -math.inf,
                "val": {"loss": 0.1, "acc": {"top1": 0.9}},
            }
        )
    values = next(e for e in journal(tracker.run_dir) if e["kind"] == "metric")["values"]
    assert values == {
        "py_float": 0.5, "py_int": 3, "flag": 1, "np_float": 1.5, "np_int": 7, "np_0d": 2.5,
        "tensor_0d": 4.25, "tensor_int": 9, "tensor_one": 0.75,
        "nan": "nan", "inf": "inf", "neg_inf": "-inf", "val/loss": 0.1, "val/acc/top1": 0.9,
    }  # fmt: skip
    summary = RunStore(tracker.store.root).load(tracker.run_id).metrics
    assert math.isnan(summary["nan"]["last"])
    assert summary["inf"]["last"] == math.inf and summary["neg_inf"]["max"] == -math.inf


@pytest.mark.parametrize(
    ("metrics", "step", "error", "message"),
    [
        ({"loss": "0.5"}, None, TypeError, "metric 'loss' is text"),
        ({"acc": None}, None, TypeError, "metric 'acc' is None"),
        ({"weights": torch.ones(3)}, None, ValueError, "metric 'weights' has 3 elements"),
        ({"batch": np.ones((2, 2))}, None, ValueError, "metric 'batch' has 4 elements"),
        ({"z": torch.tensor(1 + 2j)}, None, TypeError, "metric 'z' has dtype torch.complex64"),
        ({"nested": {"bad": "x"}}, None, TypeError, "metric 'nested/bad' is text"),
        ({3: 1.0}, None, TypeError, "metric names must be strings"),
        ({"": 1.0}, None, ValueError, "must not be empty"),
        ({"loss": 1.0}, -1, ValueError, "step must not be negative"),
        ({"loss": 1.0}, 1.5, TypeError, "step must be an integer"),
    ],
)
def test_bad_metrics_raise_naming_the_key(metrics, step, error, message) -> None:
    with ut.experiment_tracking("exp", quiet_config()) as tracker:
        with pytest.raises(error, match=message):
            tracker.log_metrics(metrics, step=step)
        tracker.log_metrics({"ok": 1.0})
    kinds = [e for e in journal(tracker.run_dir) if e["kind"] == "metric"]
    assert [e["values"] for e in kinds] == [{"ok": 1.0}], "a rejected call must record nothing"


def test_step_auto_increments_from_the_last_step() -> None:
    with ut.experiment_tracking("exp", quiet_config()) as tracker:
        tracker.log_metrics({"a": 1.0})
        tracker.log_metrics({"a": 2.0})
        tracker.log_metrics({"a": 3.0}, step=10)
        tracker.log_metrics({"a": 4.0})
        tracker.log_metrics({"a": 5.0}, step=np.int64(20))
    assert [s for s, _ in metric_points(tracker.run_dir, "a")] == [0, 1, 10, 11, 20]


def test_a_tensor_changed_in_place_after_logging_keeps_its_logged_value_when_detached() -> None:
    # The documented contract: a logged tensor is read on the writer thread, so pass a fresh value.
    with ut.experiment_tracking("exp", quiet_config()) as tracker:
        for step in range(50):
            loss = torch.tensor(float(step)) * 2
            tracker.log_metrics({"loss": loss}, step=step)
    assert metric_points(tracker.run_dir, "loss") == [(s, 2.0 * s) for s in range(50)]


def test_flush_makes_everything_durable() -> None:
    tracker = ut.ExperimentTracker("exp", quiet_config())
    for step in range(1000):
        tracker.log_metrics({"loss": 1.0 / (step + 1)}, step=step)
    assert tracker.flush(timeout=10)
    assert len(metric_points(tracker.run_dir, "loss")) == 1000
    params = json.loads((tracker.run_dir / "params.json").read_text())
    assert params == {}
    tracker.finish()


def test_journal_is_written_without_flush() -> None:
    tracker = ut.ExperimentTracker("exp", quiet_config())
    tracker.log_metrics({"loss": 0.5})
    # the writer thread gets there on its own (within a second on an idle machine; later on a loaded one)
    assert wait_until(lambda: metric_points(tracker.run_dir, "loss"), "the writer to append the point") == [(0, 0.5)]
    tracker.finish()


def test_hyperparameters_are_flattened_sorted_and_redacted(store_dir: Path) -> None:
    import argparse
    from dataclasses import dataclass

    @dataclass
    class Optim:
        name: str = "adam"
        lr: float = 3e-4

    with ut.experiment_tracking("exp", quiet_config()) as tracker:
        tracker.log_hyperparameters({"model": {"depth": 4, "width": 128}, "optim": Optim(), "betas": (0.9, 0.99)})
        tracker.log_hyperparameters(argparse.Namespace(seed=1, hf_token="hf_abcdef123456"))
    params_text = (tracker.run_dir / "params.json").read_text()
    params = json.loads(params_text)
    assert params == {
        "betas": [0.9, 0.99], "hf_token": "***REDACTED***", "model/depth": 4, "model/width": 128,
        "optim/lr": 3e-4, "optim/name": "adam", "seed": 1,
    }  # fmt: skip
    assert list(params) == sorted(params), "params.json keeps sorted keys for diffs"
    with pytest.raises(TypeError, match="hyperparameters must be a mapping"):
        ut.ExperimentTracker("exp", quiet_config()).log_hyperparameters(42)


def test_secrets_never_reach_the_store(store_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secrets = ["sk-live-SECRET-1234", "hunter2-password", "ghp_TOKENVALUE99", "s3cr3t-cred"]
    monkeypatch.setenv("UNITRACK_COMMAND", json.dumps(["train.py", "--api-key", secrets[3]]))
    config = quiet_config(
        tracking={"mlflow_tracking_uri": f"postgresql://bob:{secrets[1]}@db:5432/mlflow"},
        tags={"owner": "bob", "db": f"mysql://root:{secrets[1]}@localhost/x"},
    )
    with ut.experiment_tracking("exp", config) as tracker:
        tracker.log_hyperparameters({"api_key": secrets[0], "github": {"token": secrets[2]}, "lr": 0.1})
        tracker.log_hyperparameters({"dsn": f"redis://:{secrets[1]}@cache:6379/0"})
        tracker.set_tags({"password": secrets[1]})
    everything = b"".join(p.read_bytes() for p in store_dir.rglob("*") if p.is_file())
    for secret in secrets:
        assert secret.encode() not in everything, secret
    params = json.loads((tracker.run_dir / "params.json").read_text())
    assert params["lr"] == 0.1 and params["api_key"] == "***REDACTED***"


@pytest.mark.parametrize("name", ["../escape", "/etc/passwd", "a/b", "a\\b", "..", ".", "bad\x00name", "", "  "])
def test_names_cannot_escape_the_store(name: str) -> None:
    with pytest.raises((ValueError, TypeError), match="not allowed"):
        ut.ExperimentTracker(name, quiet_config())
    with pytest.raises(ValueError, match="not allowed"):
        ut.ExperimentTracker("ok", quiet_config(), run_name=name or "x/y")


def test_log_artifact_copies_now_and_records_a_checksum(tmp_path: Path) -> None:
    import hashlib

    source = tmp_path / "report.txt"
    source.write_text("first version")
    folder = tmp_path / "plots"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "a.png").write_bytes(b"\x89PNG fake")
    with ut.experiment_tracking("exp", quiet_config()) as tracker:
        stored = tracker.log_artifact(source)
        source.write_text("changed after logging")
        source.unlink()
        tracker.log_artifact(folder, name="figures/epoch1")
        with pytest.raises(FileNotFoundError):
            tracker.log_artifact(tmp_path / "missing.txt")
        with pytest.raises(ValueError, match="relative path"):
            tracker.log_artifact(folder, name="../outside")
    assert stored.read_text() == "first version"
    assert (tracker.run_dir / "artifacts" / "figures" / "epoch1" / "sub" / "a.png").exists()
    events = {e["name"]: e for e in journal(tracker.run_dir) if e["kind"] == "artifact"}
    assert events["report.txt"]["sha256"] == hashlib.sha256(b"first version").hexdigest()
    assert events["figures/epoch1"]["size"] == len(b"\x89PNG fake")


def test_tags_from_config_arguments_and_set_tags(store_dir: Path) -> None:
    with ut.experiment_tracking("exp", quiet_config(tags=["nlp", "baseline"]), tags={"owner": "ana"}) as tracker:
        tracker.set_tags({"stage": "warmup"})
        tracker.set_tags({"stage": "main"})
    record = RunStore(store_dir).load(tracker.run_id)
    assert record.tags == {"nlp": "", "baseline": "", "owner": "ana", "stage": "main"}


def test_run_records_itself(store_dir: Path) -> None:
    with ut.experiment_tracking("exp", quiet_config(capture={"packages": True}, description="why")) as tracker:
        pass
    run = json.loads((tracker.run_dir / "run.json").read_text())
    assert run["status"] == "completed" and run["message"] == "why"
    assert run["end_time"] >= run["start_time"] and run["duration"] >= 0
    assert run["pid"] > 0 and run["host"] and run["command"] and run["cwd"]
    assert run["config_hash"] == ut.config_hash(tracker.config)
    environment = json.loads((tracker.run_dir / "environment.json").read_text())
    assert environment["python"].count(".") == 2
    assert environment["torch"]["version"].startswith(torch.__version__.split("+")[0])
    assert environment["packages"]["torch"] == torch.__version__
    assert "gpus" in environment and environment["hostname"] == run["host"]


def test_system_monitor_samples_and_peak_memory(store_dir: Path) -> None:
    def system_samples() -> int:
        return sum(e["kind"] == "system" for e in journal(tracker.run_dir))

    with ut.experiment_tracking("exp", quiet_config(monitoring={"enabled": True, "interval": 0.05})) as tracker:
        wait_until(lambda: system_samples() >= 3, "three system samples")
    samples = [e for e in journal(tracker.run_dir) if e["kind"] == "system"]
    assert len(samples) >= 3
    keys = set(samples[-1]["values"])
    assert {"cpu/process_percent", "cpu/system_percent", "memory/process_rss_mb", "disk/used_percent"} <= keys
    record = RunStore(store_dir).load(tracker.run_id)
    assert record.system["memory/process_rss_mb"]["max"] > 10
    assert record.info["peak_rss_mb"] >= record.system["memory/process_rss_mb"]["max"] * 0.9


def test_a_run_shorter_than_the_interval_records_usage_at_start_and_at_finish() -> None:
    with ut.experiment_tracking("exp", quiet_config(monitoring={"enabled": True, "interval": 3600})) as tracker:
        tracker.log_metrics({"loss": 1.0})
    samples = [e["values"] for e in journal(tracker.run_dir) if e["kind"] == "system"]
    assert len(samples) == 2
    assert "memory/process_rss_mb" in samples[0] and "cpu/process_percent" not in samples[0]  # no interval to measure CPU over
    assert {"memory/process_rss_mb", "cpu/process_percent", "disk/used_percent"} <= set(samples[1])


def test_monitor_switches_are_honoured() -> None:
    settings = {"enabled": True, "interval": 0.05, "log_cpu_usage": False, "log_disk_usage": False}
    with ut.experiment_tracking("exp", quiet_config(monitoring=settings)) as tracker:
        wait_until(lambda: any(e["kind"] == "system" for e in journal(tracker.run_dir)), "a system sample")
    samples = [e for e in journal(tracker.run_dir) if e["kind"] == "system"]
    assert samples and all(not k.startswith(("cpu/", "disk/")) for s in samples for k in s["values"])
    assert all("memory/process_rss_mb" in s["values"] for s in samples)


def test_queue_full_drop_policy_counts_and_warns(caplog: pytest.LogCaptureFixture, store_dir: Path) -> None:
    config = quiet_config(tracking={"queue_size": 100, "queue_full": "drop"})
    total = 50_000
    with caplog.at_level(logging.WARNING, logger="unitrack"), ut.experiment_tracking("exp", config) as tracker:
        for step in range(total):
            tracker.log_metrics({"loss": 1.0}, step=step)
    kept = len(metric_points(tracker.run_dir, "loss"))
    summary = json.loads((tracker.run_dir / "summary.json").read_text())
    assert summary["dropped_events"] > 0
    assert kept + summary["dropped_events"] == total
    assert any("dropped" in r.getMessage() for r in caplog.records)


def test_queue_full_block_policy_loses_nothing() -> None:
    config = quiet_config(tracking={"queue_size": 100, "queue_full": "block"})
    with ut.experiment_tracking("exp", config) as tracker:
        for step in range(20_000):
            tracker.log_metrics({"loss": 1.0}, step=step)
    assert len(metric_points(tracker.run_dir, "loss")) == 20_000


class Helper(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return squash(self.proj(x))


def squash(x: torch.Tensor) -> torch.Tensor:
    return torch.tanh(x) * SCALE_FN(2.0)


def SCALE_FN(value: float) -> float:
    return value / 2


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = Helper()
        self.head = nn.Linear(3, 1)
        self.head.weight.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def test_watch_extracts_the_training_setup(store_dir: Path) -> None:
    model = Net()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.01)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=5, gamma=0.5)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.randn(20, 3)), batch_size=4, shuffle=True
    )
    with ut.experiment_tracking("exp", quiet_config()) as tracker:
        tracker.log_hyperparameters({"optimizer/lr": 1.0})  # yours wins over the extracted one
        tracker.watch(model, optimizer=optimizer, scheduler=scheduler, loss_fn=loss_fn, dataloader=loader)
    artifacts = tracker.run_dir / "artifacts" / "model"
    summary = json.loads((artifacts / "summary.json").read_text())
    assert summary["model"]["parameters"] == {"total": 16, "trainable": 13, "frozen": 3}
    modules = {m["name"]: m for m in summary["model"]["modules"]}
    assert modules["body.proj"]["shapes"] == {"weight": [3, 3], "bias": [3]}
    assert modules["head"]["trainable"] == 1
    assert summary["optimizer"]["param_groups"][0]["weight_decay"] == 0.01
    assert summary["scheduler"]["settings"]["step_size"] == 5
    assert summary["loss"]["settings"]["label_smoothing"] == 0.1
    assert summary["data"]["batch_size"] == 4 and summary["data"]["dataset_size"] == 20
    assert summary["data"]["shuffle"] is True
    assert "Linear(in_features=3, out_features=1" in (artifacts / "architecture.txt").read_text()
    sources = json.loads((artifacts / "sources.json").read_text())
    assert set(sources["classes"]) == {f"{__name__}.Net", f"{__name__}.Helper"}
    assert set(sources["functions"]) == {f"{__name__}.squash", f"{__name__}.SCALE_FN"}
    assert "torch.tanh(x)" in sources["functions"][f"{__name__}.squash"]
    params = RunStore(store_dir).load(tracker.run_id).params
    assert params["optimizer/lr"] == 1.0
    assert params["optimizer/weight_decay"] == 0.01 and params["model/parameters"] == 16
    assert params["loss/class"] == "torch.nn.modules.loss.CrossEntropyLoss"
