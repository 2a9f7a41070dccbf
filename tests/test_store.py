"""The local store: torn journal lines, concurrent writers, crashes, SIGTERM, the index."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest

import unitrack as ut
from tests.conftest import journal, quiet_config, run_script, start_script
from unitrack.errors import RunNotFoundError
from unitrack.names import new_run_id
from unitrack.store.history import metric_history
from unitrack.store.journal import JournalWriter, iter_journal, last_record, read_journal
from unitrack.store.runs import RunStore


def test_run_ids_are_short_unique_and_sort_by_time() -> None:
    ids = [new_run_id(now=1_800_000_000 + i * 0.001) for i in range(2000)]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)
    assert all(len(i) == 13 and i.isalnum() and i.islower() for i in ids)


def test_torn_last_line_is_tolerated_and_repaired(tmp_path: Path) -> None:
    with ut.experiment_tracking("exp", quiet_config()) as tracker:
        for step in range(10):
            tracker.log_metrics({"loss": float(step)}, step=step)
    events = tracker.run_dir / "events.jsonl"
    intact = events.read_bytes()
    with open(events, "ab") as handle:
        handle.write(b'{"seq":999,"kind":"metric","time":1.0,"step":10,"val')  # a kill mid-write
    history = metric_history(RunStore(tracker.store.root).resolve(tracker.run_id))
    assert [p["step"] for p in history["loss"]] == list(range(10))
    assert last_record(events)["kind"] == "status"
    chunk = read_journal(events)
    assert chunk.end_offset == len(intact) and chunk.unreadable_lines == 0
    writer = JournalWriter(events)  # reopening (resume, sync) cuts the torn line off
    assert events.read_bytes() == intact
    writer.append(b'{"seq":1000,"kind":"status","time":2.0,"status":"completed"}\n')
    writer.close()
    assert [r["seq"] for r in iter_journal(events)][-1] == 1000


def test_a_failed_append_leaves_no_partial_line(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    writer = JournalWriter(path)
    writer.append(b'{"seq":1}\n')
    os.close(writer._fd)  # make the next write fail like a vanished disk would
    writer._fd = os.open(path, os.O_RDONLY)
    with pytest.raises(OSError):
        writer.append(b'{"seq":2}\n')
    assert path.read_bytes() == b'{"seq":1}\n'


SIX_WRITERS = """
import sys, unitrack as ut
config = {"monitoring": {"enabled": False}, "capture": {"packages": False}}
with ut.experiment_tracking("parallel", config, tags={"worker": sys.argv[1]}) as tracker:
    tracker.log_hyperparameters({"worker": int(sys.argv[1])})
    for step in range(2000):
        tracker.log_metrics({"loss": 1.0 / (step + 1), "worker": int(sys.argv[1])}, step=step)
print(tracker.run_id)
"""


def test_six_processes_write_one_store_at_once(tmp_path: Path, store_dir: Path) -> None:
    script = tmp_path / "writer.py"
    script.write_text(SIX_WRITERS)
    import subprocess
    import sys

    processes = [
        subprocess.Popen([sys.executable, str(script), str(i)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(6)
    ]
    outputs = [p.communicate(timeout=300) for p in processes]
    assert all(p.returncode == 0 for p in processes), [err for _, err in outputs]
    run_ids = {out.strip() for out, _ in outputs}
    assert len(run_ids) == 6
    store = RunStore(store_dir)
    assert store.index.integrity_check() == "ok"
    rows = {row.run_id: row for row in store.rows()}
    assert set(rows) == run_ids
    for run_id in run_ids:
        record = store.load(run_id)
        assert record.status == "completed"
        assert record.metrics["loss"]["count"] == 2000
        assert rows[run_id].params["worker"] == rows[run_id].metrics["worker"]["last"]
        assert len(metric_history(store.resolve(run_id))["loss"]) == 2000
    with sqlite3.connect(store.layout.index) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


KILLED = """
import time, unitrack as ut
tracker = ut.ExperimentTracker("doomed", {"monitoring": {"enabled": False}, "capture": {"packages": False}})
for step in range(500):
    tracker.log_metrics({"loss": float(step)}, step=step)
tracker.flush()
print(tracker.run_id, flush=True)
time.sleep(60)
"""


def test_a_killed_process_reads_as_crashed_with_its_flushed_data(tmp_path: Path, store_dir: Path) -> None:
    process = start_script(KILLED, tmp_path)
    run_id = process.stdout.readline().strip()
    store = RunStore(store_dir)
    assert store.load(run_id).status == "running"
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    record = store.load(run_id)
    assert record.status == "crashed"
    assert len(metric_history(store.resolve(run_id))["loss"]) == 500
    assert json.loads((store.resolve(run_id).run_json).read_text())["status"] == "crashed"
    assert {row.run_id: row.attributes["status"] for row in store.rows()}[run_id] == "crashed"


def test_a_dead_run_on_another_host_reads_as_crashed_after_its_heartbeat_stops(store_dir: Path) -> None:
    tracker = ut.ExperimentTracker("exp", quiet_config())
    tracker.finish()
    paths = RunStore(store_dir).resolve(tracker.run_id)
    run = json.loads(paths.run_json.read_text())
    paths.run_json.write_text(json.dumps({**run, "status": "running", "host": "elsewhere", "end_time": None}))
    assert RunStore(store_dir).load(tracker.run_id).status == "running"
    old = time.time() - 3600
    os.utime(paths.heartbeat, (old, old))
    assert RunStore(store_dir).load(tracker.run_id).status == "crashed"


TERMINATED = """
import time, unitrack as ut
tracker = ut.ExperimentTracker("terminated", {"monitoring": {"enabled": False}, "capture": {"packages": False}})
for step in range(300):
    tracker.log_metrics({"loss": float(step)}, step=step)
print(tracker.run_id, flush=True)
while True:
    time.sleep(0.01)
"""


def test_sigterm_flushes_and_marks_interrupted(tmp_path: Path, store_dir: Path) -> None:
    process = start_script(TERMINATED, tmp_path)
    run_id = process.stdout.readline().strip()
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == -signal.SIGTERM
    store = RunStore(store_dir)
    assert store.load(run_id).status == "interrupted"
    assert len(metric_history(store.resolve(run_id))["loss"]) == 300


def test_a_run_never_finished_by_the_script_is_completed_at_exit(tmp_path: Path, store_dir: Path) -> None:
    done = run_script(
        """
        import unitrack as ut
        tracker = ut.ExperimentTracker("forgot", {"monitoring": {"enabled": False}})
        tracker.log_metrics({"loss": 1.0})
        print(tracker.run_id)
        """,
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert RunStore(store_dir).load(done.stdout.strip()).status == "completed"
    failed = run_script(
        """
        import unitrack as ut
        tracker = ut.ExperimentTracker("boom", {"monitoring": {"enabled": False}})
        print(tracker.run_id, flush=True)
        raise RuntimeError("boom")
        """,
        tmp_path,
    )
    assert failed.returncode == 1 and "RuntimeError: boom" in failed.stderr
    assert RunStore(store_dir).load(failed.stdout.strip()).status == "failed"


def test_resolve_by_id_prefix_and_latest(store_dir: Path) -> None:
    trackers = [ut.ExperimentTracker("exp", quiet_config()) for _ in range(3)]
    for tracker in trackers:
        tracker.finish()
    store = RunStore(store_dir)
    first = trackers[0].run_id
    assert store.resolve(first).run_id == first
    assert store.resolve(first[:-1]).run_id == first or len({t.run_id[:-1] for t in trackers}) < 3
    assert store.resolve("latest").run_id == trackers[-1].run_id
    assert store.resolve("latest~2").run_id == first
    with pytest.raises(RunNotFoundError, match="matches 3 runs"):
        store.resolve(first[:3])
    with pytest.raises(RunNotFoundError, match="no run"):
        store.resolve("zzzz")
    with pytest.raises(RunNotFoundError, match="not a run id"):
        store.resolve("../etc")
    with pytest.raises(RunNotFoundError, match="holds 3 run"):
        store.resolve("latest~3")


def test_reindex_rebuilds_the_index_from_the_folders(store_dir: Path) -> None:
    with ut.experiment_tracking("exp", quiet_config()) as tracker:
        tracker.log_hyperparameters({"lr": 0.1})
        tracker.log_metrics({"acc": 0.5})
        tracker.log_metrics({"acc": 0.75})
    store = RunStore(store_dir)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{store.layout.index}{suffix}").unlink(missing_ok=True)
    assert RunStore(store_dir).reindex() == 1
    (row,) = RunStore(store_dir).rows()
    assert row.params == {"lr": 0.1}
    assert row.metrics["acc"]["last"] == 0.75 and row.metrics["acc"]["min"] == 0.5
    assert row.attributes["status"] == "completed"


def test_rows_pick_up_folders_missing_from_the_index_and_drop_deleted_ones(store_dir: Path) -> None:
    import shutil

    first = ut.ExperimentTracker("a", quiet_config())
    first.finish()
    second = ut.ExperimentTracker("b", quiet_config())
    second.finish()
    store = RunStore(store_dir)
    store.index.delete([first.run_id])
    shutil.rmtree(second.run_dir)
    assert [row.run_id for row in store.rows()] == [first.run_id]


def test_journal_records_are_ordered_and_numbered() -> None:
    with ut.experiment_tracking("exp", quiet_config()) as tracker:
        tracker.log_hyperparameters({"a": 1})
        for step in range(100):
            tracker.log_metrics({"x": step}, step=step)
    records = journal(tracker.run_dir)
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
    assert records[-1]["kind"] == "status"
