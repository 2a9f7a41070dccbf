"""Sharded checkpoints of an FSDP2 model on CPU (gloo, two processes): saved through the tracker by
every rank, registered once, verified per shard file, restored into 2 ranks, 1 rank and a plain
model, exported whole to safetensors."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from tests.conftest import PROCESS_TIMEOUT_S, journal
from tests.integrations.test_ddp import free_port
from unitrack.store.runs import RunStore

JOB = Path(__file__).with_name("fsdp_job.py")
ROOT = JOB.parents[2]
TIMEOUT = PROCESS_TIMEOUT_S  # a hang guard, not a speed bound

pytestmark = pytest.mark.slow


def launch(tmp_path: Path, ranks: int, *args: str) -> str:
    """Run the FSDP job (torchrun for 2 ranks, a bare process for 1) on the store in ``tmp_path``; return its output."""
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    if ranks > 1:
        command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(ranks),
                   "--master_addr", "127.0.0.1", "--master_port", str(free_port())]  # fmt: skip
    else:
        command = [sys.executable]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "UNITRACK_DIR": str(tmp_path / "store")}
    result = subprocess.run(
        [*command, str(JOB), *args[:1], str(out), *args[1:]],
        capture_output=True, text=True, timeout=TIMEOUT, cwd=tmp_path, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def cli(store: Path, *args: str) -> Result:
    from unitrack.cli.app import app

    return CliRunner().invoke(app, [*args, "--store", str(store)])


def flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """One FSDP2 training job of two ranks with sharded checkpoints at steps 1, 3 and 6 (1 evicted)."""
    tmp_path = tmp_path_factory.mktemp("fsdp")
    output = launch(tmp_path, 2, "train")
    run_id = re.search(r"rank 0: run ([0-9a-z]{13})", output).group(1)  # type: ignore[union-attr]
    losses = {int(k): v for k, v in json.loads((tmp_path / "out" / "train_losses.json").read_text()).items()}
    return {"tmp": tmp_path, "store": tmp_path / "store", "run": run_id, "losses": losses}


def store_of(trained: dict[str, object], monkeypatch: pytest.MonkeyPatch) -> Path:
    store = Path(str(trained["store"]))
    monkeypatch.setenv("UNITRACK_DIR", str(store))
    return store


def checkpoints(store: Path, run: str) -> list[dict[str, object]]:
    return json.loads((store / "runs" / run / "checkpoints.json").read_text())["checkpoints"]


def test_every_rank_saves_its_shards_and_rank0_registers_once(trained: dict[str, object], monkeypatch) -> None:
    store = store_of(trained, monkeypatch)
    run = str(trained["run"])
    assert RunStore(store).run_ids() == [run]  # rank 1 joined rank 0's run
    entries = checkpoints(store, run)
    assert [e["step"] for e in entries] == [3, 6]  # keep_last 2: step 1's was evicted, shards and all
    events = journal(store / "runs" / run)
    assert [e["step"] for e in events if e["kind"] == "checkpoint"] == [1, 3, 6]  # one event each, from rank 0
    assert [e["name"] for e in events if e["kind"] == "checkpoint_removed"] == ["epoch0000-step00000001"]
    folder = Path(str(entries[0]["path"]))
    assert sorted(p.name for p in folder.parent.iterdir()) == [str(e["name"]) for e in entries]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["layout"] == "dcp"
    assert {"__0_0.distcp", "__1_0.distcp", ".metadata", "state.json"} <= set(manifest["files"])
    assert manifest["algorithm"] == "blake3" and all(len(e["digest"]) == 64 for e in manifest["files"].values())
    assert not list(folder.parent.glob(".tmp-*"))
    assert cli(store, "verify", run).exit_code == 0


def test_restore_into_a_plain_model_in_one_process_equals_the_gathered_state(trained, monkeypatch) -> None:
    import torch
    from safetensors.torch import load_file

    import unitrack as ut

    store = store_of(trained, monkeypatch)
    first = Path(str(checkpoints(store, str(trained["run"]))[0]["path"]))
    model = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    with ut.ExperimentTracker("plain", {"monitoring": {"enabled": False}, "capture": {"packages": False}}) as tracker:
        assert tracker.load_checkpoint(first, model, optimizer) == (0, 3)
    expected = load_file(str(Path(str(trained["tmp"])) / "out" / "full_step3.safetensors"))
    actual = model.state_dict()
    assert expected.keys() == actual.keys()
    for key, tensor in expected.items():
        assert torch.equal(actual[key], tensor), key
    assert int(optimizer.state_dict()["state"][0]["step"]) == 3  # the optimizer's state came back by name
    other = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))
    assert ut.load_checkpoint(first, other) == (0, 3)  # the module-level loader, on a machine with no tracker
    assert all(torch.equal(other.state_dict()[k], v) for k, v in expected.items())


def test_export_weights_gathers_the_shards_into_one_safetensors_file(trained, monkeypatch, tmp_path: Path) -> None:
    import torch
    from safetensors.torch import load_file

    store = store_of(trained, monkeypatch)
    run = str(trained["run"])
    first = checkpoints(store, run)[0]
    expected = load_file(str(Path(str(trained["tmp"])) / "out" / "full_step3.safetensors"))
    for ref in (str(first["path"]), f"{run}@{first['name']}"):
        target = tmp_path / "model.safetensors"
        result = cli(store, "export-weights", ref, "--to", str(target))
        assert result.exit_code == 0, result.output
        exported = load_file(str(target))
        assert exported.keys() == expected.keys()
        assert all(torch.equal(exported[k], v) for k, v in expected.items())


def test_restore_into_two_ranks_continues_with_the_same_losses(trained: dict[str, object], monkeypatch) -> None:
    store = store_of(trained, monkeypatch)
    tmp = Path(str(trained["tmp"]))
    first = Path(str(checkpoints(store, str(trained["run"]))[0]["path"]))
    launch(tmp, 2, "resume", str(first))
    resumed = {int(k): v for k, v in json.loads((tmp / "out" / "resume_losses.json").read_text()).items()}
    uninterrupted = trained["losses"]
    assert resumed == {step: uninterrupted[step] for step in (4, 5, 6)}  # type: ignore[index]


def test_a_flipped_byte_in_a_shard_fails_verify_and_load_best_falls_back(trained, monkeypatch) -> None:
    import torch
    from safetensors.torch import load_file

    import unitrack as ut

    store = store_of(trained, monkeypatch)
    tmp, run = Path(str(trained["tmp"])), str(trained["run"])
    best = Path(str(checkpoints(store, run)[-1]["path"]))  # step 6: the lowest val_loss
    flip_byte(best / "__1_0.distcp", 100)
    result = cli(store, "verify", run)
    assert result.exit_code == 1
    assert "__1_0.distcp" in result.output and best.name in result.output
    # into one rank of a sharded model (DCP reshards 2 -> 1), past the damaged best: step 3
    output = launch(tmp, 1, "best", run)
    assert "skipping checkpoint" in output and "__1_0.distcp" in output
    expected = load_file(str(tmp / "out" / "full_step3.safetensors"))
    for name in ("best_world1", "best_module_world1"):  # tracker.load_best and unitrack.load_checkpoint(RUN@best)
        loaded = load_file(str(tmp / "out" / f"{name}.safetensors"))
        assert all(torch.equal(loaded[k], v) for k, v in expected.items()), name
    # and into a plain model in this process
    model = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))
    config = {"monitoring": {"enabled": False}, "capture": {"packages": False}, "checkpointing": {"monitor": "val_loss"}}
    with ut.ExperimentTracker("fsdp", config, resume=run) as tracker, pytest.warns(RuntimeWarning, match="__1_0.distcp"):
        assert tracker.load_best(model) == (0, 3)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in expected.items())


def test_a_save_one_rank_cannot_capture_fails_on_every_rank_and_the_next_one_works(tmp_path: Path) -> None:
    output = launch(tmp_path, 2, "fail")
    assert "could not capture sharded checkpoint" in output and "rank 1:" in output  # warned (on_error: warn)
    results = json.loads((tmp_path / "out" / "fail_losses.json").read_text())
    assert results == {"1": 0.0, "2": 1.0}  # None for the failed save; the next one saved and registered alone
