"""The team stack, started by the tests through ``unitrack server`` (PostgreSQL + SeaweedFS + MLflow),
one per module (it takes a minute to start): mirroring, registering, restoring anywhere (verified),
checkpoints in object storage, an outage of the whole stack, and Ctrl-C stopping every service."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

import unitrack as ut
from tests.backend_services import mlflow_points, mlflow_run
from tests.checkpoint_helpers import make_model, train_step
from tests.conftest import quiet_config
from tests.server_stack import StackProcess, alive

pytestmark = pytest.mark.slow
VAL_LOSSES = [0.9, 0.5, 0.7, 0.4, 0.6]  # bests at epochs 0, 1 and 3


@pytest.fixture(scope="module")
def stack() -> Iterator[StackProcess]:
    # not under pytest's basetemp: every pytest session resets /tmp/pytest-of-<user> to mode 700,
    # which would cut the unprivileged PostgreSQL user off its data folder on a restart
    folder = Path(tempfile.mkdtemp(prefix="unitrack-stack-"))
    server = StackProcess(folder / "data").start()
    yield server
    server.interrupt()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def client_env(stack: StackProcess, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The environment ``unitrack server`` told clients to use, set for this test."""
    for key, value in stack.env.items():
        monkeypatch.setenv(key, value)
    return stack.env


def s3(env: dict[str, str]) -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"], region_name="us-east-1")  # fmt: skip


def flip_object_byte(env: dict[str, str], bucket: str, key: str) -> bytes:
    """Damage one byte of an object in place; return its original bytes."""
    client = s3(env)
    original = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    damaged = bytearray(original)
    damaged[-1] ^= 0x01
    client.put_object(Bucket=bucket, Key=key, Body=bytes(damaged))
    return original


def weights_of(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.fixture(scope="module")
def trained(stack: StackProcess, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A seed-003 run (context manager, is_best by val_loss) against the stack, registering its best."""
    env = stack.env
    store = tmp_path_factory.mktemp("trainer") / "store"
    config = quiet_config(
        store_dir=str(store),
        tracking={"use_mlflow": True, "mlflow_tracking_uri": env["MLFLOW_TRACKING_URI"], "mlflow_experiment": "team",
                  "finish_timeout": 600},  # a loaded CI box: let finish() deliver the uploads and registrations
        checkpointing={"register_model": "team-model"},
    )
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        model = make_model(0)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
        saved: dict[int, dict[str, torch.Tensor]] = {}
        best_val_loss = float("inf")
        with ut.experiment_tracking("team", config) as tracker:
            for epoch, val_loss in enumerate(VAL_LOSSES):
                for step in range(3):
                    loss = train_step(model, optimizer)
                    tracker.log_metrics({"loss": loss}, step=step)
                tracker.save_checkpoint(model=model, epoch=epoch, step=epoch * 3 + 2, optimizer=optimizer,
                                        train_loss=loss, val_loss=val_loss, is_best=(val_loss < best_val_loss))  # fmt: skip
                best_val_loss = min(best_val_loss, val_loss)
                saved[epoch] = weights_of(model)
            best = tracker.get_best_checkpoint()
    run = mlflow_run(env["MLFLOW_TRACKING_URI"], tracker.run_id, "team")
    return {"run_id": tracker.run_id, "mlflow_run_id": run.info.run_id, "artifact_uri": run.info.artifact_uri,
            "best": best, "saved": saved}  # fmt: skip


def test_the_best_checkpoint_is_mirrored_and_the_registered_alias_points_at_it(
    trained: dict[str, Any], client_env: dict[str, str]
) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(client_env["MLFLOW_TRACKING_URI"])
    mirrored = {a.path.rsplit("/", 1)[-1] for a in client.list_artifacts(trained["mlflow_run_id"], "checkpoints")}
    assert mirrored == {"epoch0000-step00000002", "epoch0001-step00000005", "epoch0003-step00000011"}  # every new best
    assert trained["best"].epoch == 3
    champion = client.get_model_version_by_alias("team-model", "champion")
    assert champion.source == f"runs:/{trained['mlflow_run_id']}/checkpoints/{trained['best'].name}"
    assert len(client.search_model_versions("name = 'team-model'")) == 3  # each newer best moved the alias


@pytest.mark.parametrize("which_id", ["mlflow_run_id", "run_id"])
def test_restore_through_mlflow_at_best_on_a_machine_with_an_empty_store(
    trained: dict[str, Any], client_env: dict[str, str], tmp_path: Path, which_id: str
) -> None:
    host = client_env["MLFLOW_TRACKING_URI"].removeprefix("http://")
    model = make_model(seed=7)
    epoch, step = ut.load_checkpoint(f"mlflow://{host}/{trained[which_id]}@best", model, store=tmp_path / "empty")
    assert (epoch, step) == (3, 11)
    for name, tensor in weights_of(model).items():
        assert torch.equal(tensor, trained["saved"][3][name]), name
    assert not (tmp_path / "empty").exists()


def test_pull_fetches_a_verified_checkpoint(trained: dict[str, Any], client_env: dict[str, str], tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from unitrack.cli.app import app

    host = client_env["MLFLOW_TRACKING_URI"].removeprefix("http://")
    result = CliRunner().invoke(app, ["pull", f"mlflow://{host}/{trained['run_id']}@5", "--to", str(tmp_path / "got")])
    assert result.exit_code == 0, result.output
    folder = tmp_path / "got" / "epoch0001-step00000005"
    assert sorted(p.name for p in folder.iterdir()) == ["manifest.json", "model.safetensors", "state.json", "state.safetensors"]
    assert "verified" in result.output


def test_a_damaged_object_in_the_bucket_is_named_and_best_falls_back(
    trained: dict[str, Any], client_env: dict[str, str]
) -> None:
    host = client_env["MLFLOW_TRACKING_URI"].removeprefix("http://")
    experiment_and_run = trained["artifact_uri"].removeprefix("mlflow-artifacts:/")
    key = f"artifacts/{experiment_and_run}/checkpoints/{trained['best'].name}/model.safetensors"
    original = flip_object_byte(client_env, "mlflow", key)
    try:
        model = make_model(seed=7)
        before = weights_of(model)
        with pytest.raises(ut.CheckpointCorruptError, match=r"model\.safetensors"):
            ut.load_checkpoint(f"mlflow://{host}/{trained['mlflow_run_id']}@11", model)
        assert all(torch.equal(before[k], v) for k, v in weights_of(model).items()), "the model was touched"
        with pytest.warns(RuntimeWarning, match=r"epoch0003-step00000011.*model\.safetensors"):
            epoch, step = ut.load_checkpoint(f"mlflow://{host}/{trained['run_id']}@best", model)
        assert (epoch, step) == (1, 5)  # the next intact one, newest first
        assert all(torch.equal(trained["saved"][1][k], v) for k, v in weights_of(model).items())
    finally:
        s3(client_env).put_object(Bucket="mlflow", Key=key, Body=original)


def test_checkpoints_in_object_storage_round_trip_with_retention_and_verify(
    stack: StackProcess, client_env: dict[str, str], tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from unitrack.cli.app import app

    config = quiet_config(checkpointing={"checkpoint_dir": "s3://checkpoints/team", "keep_last": 2, "monitor": "val_loss"})
    model = make_model(0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    saved = {}
    with ut.experiment_tracking("s3-checkpoints", config) as tracker:
        for epoch, val_loss in enumerate(VAL_LOSSES):
            train_step(model, optimizer)
            tracker.save_checkpoint(model=model, epoch=epoch, step=epoch, optimizer=optimizer, val_loss=val_loss)
            saved[epoch] = weights_of(model)
        kept = [c.name for c in tracker.list_checkpoints()]
        assert all(c.url and c.url.startswith("s3://checkpoints/team/") for c in tracker.list_checkpoints())
        fresh = make_model(seed=3)
        assert tracker.load_best(fresh) == (3, 3)
    assert kept == ["epoch0003-step00000003", "epoch0004-step00000004"]  # the last two; the best is one of them
    objects = s3(client_env).list_objects_v2(Bucket="checkpoints", Prefix=f"team/{tracker.run_id}/")["Contents"]
    assert {o["Key"].split("/")[2] for o in objects} == set(kept)
    assert CliRunner().invoke(app, ["verify", tracker.run_id]).exit_code == 0

    flip_object_byte(client_env, "checkpoints", f"team/{tracker.run_id}/epoch0003-step00000003/model.safetensors")
    result = CliRunner().invoke(app, ["verify", tracker.run_id])
    assert result.exit_code == 1
    assert "epoch0003-step00000003" in result.output and "model.safetensors" in result.output
    model = make_model(seed=5)
    before = weights_of(model)
    with pytest.raises(ut.CheckpointCorruptError, match=r"model\.safetensors"):
        ut.load_checkpoint(f"s3://checkpoints/team/{tracker.run_id}/epoch0003-step00000003", model)
    assert all(torch.equal(before[k], v) for k, v in weights_of(model).items())
    with pytest.warns(RuntimeWarning, match=r"model\.safetensors"):
        assert ut.load_checkpoint(f"{tracker.run_id}@best", model) == (4, 4)
    assert all(torch.equal(saved[4][k], v) for k, v in weights_of(model).items())


def test_an_outage_of_the_whole_stack_loses_nothing(stack: StackProcess, client_env: dict[str, str]) -> None:
    """PostgreSQL, SeaweedFS and MLflow all stopped (Ctrl-C) a third of the way through; restarted later."""
    from typer.testing import CliRunner

    from unitrack.cli.app import app

    steps = 3000
    config = quiet_config(tracking={"use_mlflow": True, "mlflow_tracking_uri": client_env["MLFLOW_TRACKING_URI"],
                                    "retry_attempts": 2, "retry_max_wait": 0.2, "breaker_cooldown": 1.0,
                                    "finish_timeout": 60})  # fmt: skip
    tracker = ut.ExperimentTracker("outage", config)
    for step in range(steps):
        if step == steps // 3:
            tracker.flush()
            assert stack.interrupt() == 0
        tracker.log_metrics({"loss": 1.0 / (step + 1)}, step=step)
    stack.start()  # same data, same port
    tracker.finish()
    result = CliRunner().invoke(app, ["sync", tracker.run_id, "--json"])
    assert result.exit_code == 0, result.output
    shown = CliRunner().invoke(app, ["show", tracker.run_id, "--json"])
    assert json.loads(shown.stdout)["delivery"]["mlflow"]["in_sync"] is True
    run = mlflow_run(client_env["MLFLOW_TRACKING_URI"], tracker.run_id, "outage")
    assert mlflow_points(client_env["MLFLOW_TRACKING_URI"], run.info.run_id, "loss") == [
        (s, 1.0 / (s + 1)) for s in range(steps)
    ]
    assert run.info.status == "FINISHED"


def test_ctrl_c_stops_every_service(stack: StackProcess) -> None:
    pids = stack.service_pids()
    assert len(pids) == 3, stack.output  # PostgreSQL, SeaweedFS, MLflow
    assert all(alive(pid) for pid in pids)
    assert stack.interrupt() == 0
    assert not [pid for pid in pids if alive(pid)]
    assert "unitrack server: stopped" in "".join(stack.output)
