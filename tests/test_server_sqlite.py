"""``unitrack server`` in its one-machine form: MLflow on SQLite with artifacts in a folder, and
TensorBoard beside it; every service answers, and Ctrl-C stops them all."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest

from tests.server_stack import StackProcess, alive
from unitrack.server.procs import port_open

pytestmark = pytest.mark.slow


def test_sqlite_and_a_folder_with_tensorboard_start_answer_and_stop(tmp_path: Path) -> None:
    stack = StackProcess(tmp_path / "data", None, "--workers", "1", "--tensorboard", "--tensorboard-port", "0",
                         "--logdir", str(tmp_path / "tb")).start()  # fmt: skip
    try:
        env = stack.env
        assert set(env) == {"MLFLOW_TRACKING_URI", "UNITRACK_TENSORBOARD_URL"}  # no S3: nothing secret to print
        with urllib.request.urlopen(env["MLFLOW_TRACKING_URI"] + "/health", timeout=10) as response:
            assert response.status == 200
        host, port = env["UNITRACK_TENSORBOARD_URL"].removeprefix("http://").split(":")
        assert port_open(host, int(port))
        assert (tmp_path / "data" / "mlflow" / "mlflow.db").exists()
        pids = stack.service_pids()
        assert len(pids) == 2 and all(alive(p) for p in pids)  # MLflow, TensorBoard
    finally:
        assert stack.interrupt() == 0
    assert not [p for p in pids if alive(p)]


def test_a_taken_port_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        stack = StackProcess(tmp_path / "data", taken.getsockname()[1], "--workers", "1")
        with pytest.raises(RuntimeError, match="is taken"):
            stack.start()
