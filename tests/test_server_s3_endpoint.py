"""``unitrack server --artifacts s3 --s3-endpoint URL``: a team's existing object store, used as
given (its keys from the standard AWS variables), never started nor stopped by us."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import unitrack as ut
from tests.backend_services import mlflow_run
from tests.conftest import quiet_config
from tests.server_stack import StackProcess
from unitrack.server.seaweed import SeaweedS3, s3_client

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def existing_s3() -> Iterator[SeaweedS3]:
    """An S3 endpoint that was there before unitrack (here SeaweedFS, started on its own)."""
    folder = Path(tempfile.mkdtemp(prefix="unitrack-s3-"))
    store = SeaweedS3(folder, "127.0.0.1", 0)
    store.start(buckets=())
    yield store
    store.stop()
    shutil.rmtree(folder, ignore_errors=True)


def test_an_existing_endpoint_gets_the_artifacts_and_outlives_the_stack(
    existing_s3: SeaweedS3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = {"AWS_ACCESS_KEY_ID": existing_s3.credentials.access_key,
            "AWS_SECRET_ACCESS_KEY": existing_s3.credentials.secret_key}  # fmt: skip
    stack = StackProcess(tmp_path / "data", None, "--artifacts", "s3", "--s3-endpoint", existing_s3.endpoint,
                         "--bucket", "team-artifacts", "--workers", "1", env=keys).start()  # fmt: skip
    try:
        output = "".join(stack.output)
        assert "SeaweedS3" not in output and "created bucket 'team-artifacts'" in output
        assert stack.env["AWS_ENDPOINT_URL"] == existing_s3.endpoint
        assert existing_s3.credentials.secret_key not in output  # the team's own secret is never printed

        for key, value in stack.env.items():
            monkeypatch.setenv(key, value)
        (tmp_path / "notes.txt").write_text("what the run learned\n")
        with ut.experiment_tracking("team-s3", quiet_config(tracking={"use_mlflow": True})) as tracker:
            tracker.log_metrics({"loss": 0.5}, step=0)
            tracker.log_artifact(tmp_path / "notes.txt")
        run = mlflow_run(stack.env["MLFLOW_TRACKING_URI"], tracker.run_id, "team-s3")
        client = s3_client(existing_s3.endpoint, keys["AWS_ACCESS_KEY_ID"], keys["AWS_SECRET_ACCESS_KEY"])
        listed = client.list_objects_v2(Bucket="team-artifacts").get("Contents", [])
        stored = [o["Key"] for o in listed if o["Key"].endswith("notes.txt") and run.info.run_id in o["Key"]]
        assert stored, [o["Key"] for o in listed]
        assert client.get_object(Bucket="team-artifacts", Key=stored[0])["Body"].read() == b"what the run learned\n"
    finally:
        assert stack.interrupt() == 0
    assert "team-artifacts" in {b["Name"] for b in client.list_buckets()["Buckets"]}  # not ours to stop


def test_an_endpoint_it_cannot_use_is_named_at_start_up(existing_s3: SeaweedS3, tmp_path: Path) -> None:
    wrong = {"AWS_ACCESS_KEY_ID": "nobody", "AWS_SECRET_ACCESS_KEY": "not-the-secret"}
    stack = StackProcess(tmp_path / "data", None, "--artifacts", "s3", "--s3-endpoint", existing_s3.endpoint,
                         "--workers", "1", env=wrong)  # fmt: skip
    with pytest.raises(RuntimeError) as failed:
        stack.start()
    assert f"--s3-endpoint {existing_s3.endpoint}" in str(failed.value) and "'mlflow'" in str(failed.value)
