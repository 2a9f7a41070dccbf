"""Rank detection and joining rank 0's run, through files or a torch.distributed store, in one process
(the torchrun tests cover two processes and two nodes)."""

from __future__ import annotations

from pathlib import Path

import pytest

import unitrack as ut
from tests.conftest import QUIET, journal
from unitrack.distributed import ranks as distributed
from unitrack.distributed import rendezvous
from unitrack.distributed.ranks import current_rank
from unitrack.distributed.roles import FollowerRole
from unitrack.errors import UnitrackError


@pytest.fixture
def launch(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in (*distributed.RANK_ENV, *distributed.WORLD_SIZE_ENV, *rendezvous.LAUNCH_ENV, "TORCHELASTIC_USE_AGENT_STORE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "29999")
    return monkeypatch


def as_process(monkeypatch: pytest.MonkeyPatch, rank: int, world_size: int = 2) -> None:
    """Pretend to be another process of the launch: its rank, and its own count of trackers made."""
    monkeypatch.setenv("RANK", str(rank))
    monkeypatch.setenv("WORLD_SIZE", str(world_size))
    monkeypatch.setattr(rendezvous, "_generations", {})


def test_rank_comes_from_rank_local_rank_or_slurm(launch: pytest.MonkeyPatch) -> None:
    assert current_rank() == distributed.RankInfo(0, 1)
    launch.setenv("SLURM_PROCID", "3")
    launch.setenv("SLURM_NTASKS", "4")
    assert current_rank() == distributed.RankInfo(3, 4)
    launch.setenv("LOCAL_RANK", "1")  # preferred to SLURM_PROCID, as Lightning does
    assert current_rank().rank == 1
    launch.setenv("RANK", "2")
    assert current_rank().rank == 2


def test_other_ranks_join_rank0s_run_and_record_nothing(launch: pytest.MonkeyPatch, store_dir: Path) -> None:
    as_process(launch, 0)
    owner = ut.ExperimentTracker("ddp", QUIET)
    as_process(launch, 1)
    with ut.ExperimentTracker("ddp", QUIET) as follower:
        assert type(follower) is ut.ExperimentTracker  # no subclass: the tracker holds the follower role
        assert isinstance(follower._role, FollowerRole) and follower.run_id == owner.run_id
        follower.log_metrics({"loss": 1.0}, step=0)
        follower.log_hyperparameters({"lr": 0.5})
        assert follower.save_checkpoint(object(), epoch=0, step=0) is None
    owner.log_metrics({"loss": 2.0}, step=0)
    owner.finish()
    events = journal(owner.run_dir)
    assert [e["values"] for e in events if e["kind"] == "metric"] == [{"loss": 2.0}]
    assert not any(e["kind"] == "params" for e in events)
    assert sorted(p.name for p in (store_dir / "runs").iterdir()) == [owner.run_id]


def test_a_finished_launch_is_not_joined_by_the_next(launch: pytest.MonkeyPatch) -> None:
    as_process(launch, 0)
    ut.ExperimentTracker("ddp", QUIET).finish()
    as_process(launch, 1)
    launch.setattr(rendezvous, "_CLOCK_SLACK_S", -1e9)  # as if this process started after that run
    follower = ut.ExperimentTracker("ddp", {**QUIET, "tracking": {"rank_join_timeout": 0.3}})
    with pytest.raises(UnitrackError, match="rank 0 published no run"):
        follower.run_id  # noqa: B018


def test_a_rank_that_is_not_a_number_is_named(launch: pytest.MonkeyPatch) -> None:
    launch.setenv("RANK", "zero")
    with pytest.raises(UnitrackError, match="RANK='zero'"):
        current_rank()


def test_other_ranks_resume_from_rank0s_checkpoints_without_touching_its_saves(
    launch: pytest.MonkeyPatch,
) -> None:
    import torch

    from unitrack.checkpoint.storage import TEMP_PREFIX

    as_process(launch, 0)
    owner = ut.ExperimentTracker("ddp", QUIET)
    model = torch.nn.Linear(3, 2)
    owner.save_checkpoint(model, epoch=0, step=5)
    owner.list_checkpoints()  # the save is done
    as_process(launch, 1)
    follower = ut.ExperimentTracker("ddp", QUIET)
    in_progress = owner.run_dir / "checkpoints" / f"{TEMP_PREFIX}rank0-saving"
    in_progress.mkdir(parents=True)

    replica = torch.nn.Linear(3, 2)
    assert follower.load_checkpoint("last", replica) == (0, 5)
    assert torch.equal(replica.weight, model.weight)
    owner.save_checkpoint(model, epoch=1, step=9)
    owner.list_checkpoints()
    assert [c.step for c in follower.list_checkpoints()] == [5, 9]  # read afresh: rank 0 keeps saving
    assert in_progress.is_dir()  # a rank that only reads never cleans up rank 0's saves
    follower.finish()
    owner.finish()


def test_rank_policy_all_through_files_merges_another_ranks_points(launch: pytest.MonkeyPatch, store_dir: Path) -> None:
    config = {**QUIET, "tracking": {"rank_policy": "all"}}
    as_process(launch, 0)
    owner = ut.ExperimentTracker("ddp", config)
    as_process(launch, 1)
    follower = ut.ExperimentTracker("ddp", config)
    for step in range(5):
        follower.log_metrics({"loss": float(step)}, step=step)
    follower.finish()
    assert (owner.run_dir / "ranks" / "1" / "events.jsonl").is_file()  # no process group: files in the run
    owner.finish()
    points = [(e["step"], e["values"]["rank1/loss"]) for e in journal(owner.run_dir) if e["kind"] == "metric"]
    assert points == [(s, float(s)) for s in range(5)]


def test_under_torchrun_the_ranks_meet_and_send_through_its_store(launch: pytest.MonkeyPatch, store_dir: Path) -> None:
    import torch.distributed as dist

    server = dist.TCPStore("127.0.0.1", 0, is_master=True, wait_for_workers=False)  # what torchrun's agent holds
    launch.setenv("MASTER_PORT", str(server.port))
    launch.setenv("TORCHELASTIC_USE_AGENT_STORE", "True")
    config = {**QUIET, "tracking": {"rank_policy": "all", "rank_join_timeout": 30}}
    as_process(launch, 0)
    owner = ut.ExperimentTracker("ddp", config)
    as_process(launch, 1)
    follower = ut.ExperimentTracker("ddp", config)
    assert follower.run_id == owner.run_id
    for step in range(5):
        follower.log_metrics({"loss": float(step)}, step=step)
    follower.finish()
    owner.finish()
    points = [(e["step"], e["values"]["rank1/loss"]) for e in journal(owner.run_dir) if e["kind"] == "metric"]
    assert points == [(s, float(s)) for s in range(5)]
    assert not (owner.run_dir / "ranks").exists() and not (store_dir / "rendezvous").exists()  # nothing on disk
    del server
