"""Two "nodes" on one machine with nothing shared on disk: two ``torchrun --nnodes 2`` launches, each
with its own working directory and its own ``UNITRACK_DIR``, meet through torch.distributed's store."""

from __future__ import annotations

import collections
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.backend_services import mlflow_points, mlflow_run
from tests.conftest import PROCESS_TIMEOUT_S, journal
from tests.integrations.test_ddp import free_port, run_ids_printed
from unitrack.server.tracking import MlflowServer
from unitrack.store.runs import RunStore

JOB = Path(__file__).with_name("two_node_job.py")
ROOT = JOB.parents[2]
STEPS = 12
TIMEOUT = PROCESS_TIMEOUT_S  # a hang guard, not a speed bound

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    with MlflowServer(tmp_path_factory.mktemp("mlflow-server")) as server:
        yield server


def two_nodes(tmp_path: Path, *args: str) -> list[str]:
    """Start node 0 and node 1 (one rank each), wait for both (bounded); return their outputs."""
    port = free_port()
    launches = []
    for node in (0, 1):
        folder = tmp_path / f"node{node}"
        folder.mkdir()
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "UNITRACK_DIR": str(folder / "store")}
        command = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "1",
                   "--node_rank", str(node), "--master_addr", "127.0.0.1", "--master_port", str(port),
                   str(JOB), *args]  # fmt: skip
        launches.append(subprocess.Popen(command, cwd=folder, env=env, stdout=subprocess.PIPE,
                                         stderr=subprocess.STDOUT, text=True))  # fmt: skip
    outputs = []
    try:
        for launch in launches:
            output, _ = launch.communicate(timeout=TIMEOUT)
            assert launch.returncode == 0, output
            outputs.append(output)
    finally:
        for launch in launches:
            if launch.poll() is None:
                launch.kill()
    return outputs


def test_two_nodes_make_one_run_in_node0s_store_and_one_mlflow_run(tmp_path: Path, mlflow_server: MlflowServer) -> None:
    outputs = two_nodes(tmp_path, "--mlflow", mlflow_server.uri)
    node0, node1 = RunStore(tmp_path / "node0" / "store"), tmp_path / "node1" / "store"
    runs = node0.run_ids()
    assert len(runs) == 1 and run_ids_printed("".join(outputs)) == set(runs)  # both ranks name it
    assert not (node1 / "runs").exists()  # node 1's store holds no run of this job
    events = journal(node0.layout.run(runs[0]).root)
    own = [e["step"] for e in events if e["kind"] == "metric" and "train/loss" in e["values"]]
    rank1 = [e["step"] for e in events if e["kind"] == "metric" and "rank1/train/loss" in e["values"]]
    assert own == rank1 == list(range(STEPS))  # every point once; node 1's arrive labelled
    system = collections.Counter(e.get("rank") for e in events if e["kind"] == "system")
    assert system[1] >= 1  # node 1's system samples, labelled rank 1
    assert node0.load(runs[0]).status == "completed"
    mlflow = mlflow_run(mlflow_server.uri, runs[0], "two-nodes")  # exactly one MLflow run for the job
    assert [step for step, _ in mlflow_points(mlflow_server.uri, mlflow.info.run_id, "train/loss")] == list(range(STEPS))
    assert [s for s, _ in mlflow_points(mlflow_server.uri, mlflow.info.run_id, "rank1/train/loss")] == list(range(STEPS))
    assert mlflow.info.status == "FINISHED"


def test_a_rank_that_never_finishes_holds_rank0_only_for_rank_join_timeout(tmp_path: Path) -> None:
    outputs = two_nodes(tmp_path, "--vanish")  # bounded by TIMEOUT: it must not hang
    node0 = RunStore(tmp_path / "node0" / "store")
    (run,) = node0.run_ids()
    assert node0.load(run).status == "completed"
    assert "rank(s) [1] had not finished after 5 s" in outputs[0]
    steps = [e["step"] for e in journal(node0.layout.run(run).root) if e["kind"] == "metric" and "train/loss" in e["values"]]
    assert steps == list(range(STEPS))
