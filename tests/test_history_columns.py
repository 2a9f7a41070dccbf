"""The columnar history beside the journal: every point, in logged order, equal to the journal's
content whatever happened to the run (step resets, NaN / inf, a rewind, a torn tail, kill -9, a
reader in another process while the run writes, a deleted or broken history)."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import unitrack as ut
from tests.checkpoint_helpers import make_model, train_step
from tests.conftest import quiet_config, run_script
from unitrack.nonfinite import json_safe
from unitrack.store.history import read_views
from unitrack.store.layout import RunPaths


def journal_curves(run_dir: Path) -> dict[str, tuple[list[int], list[float], list[float]]]:
    """Every live point per key as the original journal reader (one full parse) gives it."""
    return {
        key: ([p["step"] for p in points], [p["value"] for p in points], [p["time"] for p in points])
        for key, points in read_views(RunPaths(run_dir)).metrics.items()
    }


def assert_history_is_the_journal(run: ut.RunView) -> None:
    assert run.path is not None
    expected = journal_curves(run.path)
    assert list(run.curves()) == list(expected)  # same keys, in the order they were first logged
    for key, (steps, values, times) in expected.items():
        got_steps, got_values, got_times = run.history(key, with_time=True)
        assert got_steps.dtype == np.int64 and got_values.dtype == np.float64
        assert got_steps.tolist() == steps and got_times.tolist() == times
        np.testing.assert_array_equal(got_values, np.array(values, dtype=np.float64))  # NaN == NaN here


def exported_as_before(run: ut.RunView) -> str:
    """``export --json`` as the journal-parsing reader printed it before the columnar history."""
    assert run.path is not None
    views = read_views(RunPaths(run.path))
    data = {**run.to_dict(), "metric_history": views.metrics, "system_history": views.system}
    return json.dumps(json_safe(data), indent=2, allow_nan=False, default=str)


def test_step_resets_non_finite_values_and_ints_come_back_in_logged_order() -> None:
    with ut.experiment_tracking("resets", quiet_config()) as tracker:
        for epoch in range(3):
            for step in range(4):  # seed 003's loop: step restarts every epoch
                tracker.log_metrics({"loss": 1.0 / (1 + step + epoch), "epoch": epoch}, step=step)
        tracker.log_metrics({"loss": math.nan}, step=4)
        tracker.log_metrics({"loss": math.inf, "grad": -math.inf}, step=5)
    run = ut.open_run(tracker.run_id)
    assert run.history("loss")[0].tolist() == [0, 1, 2, 3] * 3 + [4, 5]
    assert run.history("epoch")[1].tolist() == [0.0] * 4 + [1.0] * 4 + [2.0] * 4 and run.int_valued("epoch")
    assert_history_is_the_journal(run)
    from unitrack.cli.export import export_json

    assert export_json(run) == exported_as_before(run)  # ints stay ints, NaN stays "nan"


def test_a_rewind_after_resume_drops_the_superseded_points() -> None:
    model = make_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    with ut.experiment_tracking("rewound", quiet_config()) as tracker:
        for step in range(6):
            tracker.log_metrics({"loss": train_step(model, optimizer), "only_late": 1.0} if step > 3 else {"loss": 1.0}, step=step)
            if step == 2:
                tracker.save_checkpoint(model, 0, step, optimizer)
    with ut.experiment_tracking("rewound", quiet_config(), resume=tracker.run_id) as resumed:
        for step in range(3, 5):
            resumed.log_metrics({"loss": 10.0 + step}, step=step)
    run = ut.open_run(tracker.run_id)
    steps, values = run.history("loss")
    assert steps.tolist() == [0, 1, 2, 3, 4] and values[3:].tolist() == [13.0, 14.0]
    assert "only_late" not in run.curves()  # every point of it was superseded
    assert_history_is_the_journal(run)


def test_a_torn_tail_is_left_out_until_its_line_is_whole() -> None:
    with ut.experiment_tracking("torn", quiet_config()) as tracker:
        for step in range(5):
            tracker.log_metrics({"loss": float(step)}, step=step)
    events = tracker.run_dir / "events.jsonl"
    with open(events, "ab") as handle:
        handle.write(b'{"seq":999,"kind":"metric","time":1.0,"step":5,"values":{"loss":5')
    assert ut.open_run(tracker.run_id).history("loss")[0].tolist() == [0, 1, 2, 3, 4]
    with open(events, "ab") as handle:
        handle.write(b".5}}\n")
    run = ut.open_run(tracker.run_id)
    assert run.history("loss")[1].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.5]
    assert_history_is_the_journal(run)


KILLED = """
import os, signal, sys
import unitrack as ut

tracker = ut.ExperimentTracker("killed", {"monitoring": {"enabled": False}, "capture": {"packages": False}})
for step in range(5000):
    tracker.log_metrics({"loss": 1.0 / (step + 1), "acc": step / 5000}, step=step % 700)
tracker.flush()
print(tracker.run_id, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_sigkilled_run_reads_back_whole_and_its_history_catches_up(tmp_path: Path) -> None:
    result = run_script(KILLED, tmp_path)
    assert result.returncode == -signal.SIGKILL, result.stderr
    run = ut.open_run(result.stdout.strip())
    assert run.status == "crashed"
    assert len(run.history("loss")[0]) == 5000 and run.history("acc")[0][-1] == 4999 % 700
    assert_history_is_the_journal(run)
    index = json.loads((run.path / "history" / "index.json").read_text())  # type: ignore[operator]
    assert index["offset"] == (run.path / "events.jsonl").stat().st_size  # type: ignore[operator]


WRITER = """
import sys, time
import unitrack as ut

tracker = ut.ExperimentTracker("live", {"monitoring": {"enabled": False}, "capture": {"packages": False},
                                        "tracking": {"flush_interval": 0.05}})
print(tracker.run_id, flush=True)
for step in range(int(sys.argv[1])):
    tracker.log_metrics({"a": step * 0.5, "b": -float(step)}, step=step)
    if step % 500 == 0:
        time.sleep(0.02)
tracker.finish()
"""


def test_a_reader_in_another_process_sees_a_consistent_prefix_while_the_run_writes(tmp_path: Path) -> None:
    total = 60_000
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    writer = subprocess.Popen([sys.executable, str(script), str(total)], stdout=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        assert writer.stdout is not None
        run_id = writer.stdout.readline().strip()
        seen: list[int] = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            done = writer.poll() is not None
            run = ut.open_run(run_id)
            if "a" in run.metric_keys:
                steps, a = run.history("a")
                _, b = run.history("b")
                count = len(steps)
                assert steps.tolist() == list(range(count))  # a prefix: no gap, no repeat
                np.testing.assert_array_equal(a, steps * 0.5)  # never a half-written value
                assert len(b) in (count, count - 1, count + 1) or done
                np.testing.assert_array_equal(b[: min(count, len(b))], -steps[: min(count, len(b))].astype(np.float64))
                seen.append(count)
            if done:
                break
        assert writer.wait(60) == 0
    finally:
        if writer.poll() is None:
            writer.kill()
    assert seen == sorted(seen) and any(0 < count < total for count in seen), seen  # read mid-run, never shrinking
    final = ut.open_run(run_id)
    assert len(final.history("a")[0]) == total and final.status == "completed"
    assert_history_is_the_journal(final)


def test_a_deleted_history_is_rebuilt_from_the_journal_and_equals_it() -> None:
    import shutil

    with ut.experiment_tracking("rebuilt", quiet_config()) as tracker:
        for step in range(300):
            tracker.log_metrics({"loss": math.nan if step == 7 else 1.0 / (step + 1), "lr": 0.1}, step=step % 50)
    history = tracker.run_dir / "history"
    before = {p.name: p.read_bytes() for p in history.iterdir() if p.name != ".lock"}
    shutil.rmtree(history)
    run = ut.open_run(tracker.run_id)
    assert_history_is_the_journal(run)
    after = {p.name: p.read_bytes() for p in history.iterdir() if p.name != ".lock"}
    assert after == before  # the writer's history and the rebuilt one are the same bytes


@pytest.mark.parametrize("damage", ["zeros", "journal_replaced", "index_garbage"])
def test_a_broken_history_is_noticed_and_rebuilt(damage: str) -> None:
    with ut.experiment_tracking("broken", quiet_config()) as tracker:
        for step in range(100):
            tracker.log_metrics({"loss": 1.0 / (step + 1)}, step=step)
    history, events = tracker.run_dir / "history", tracker.run_dir / "events.jsonl"
    if damage == "zeros":  # a power loss after the index was renamed, before the data reached the disk
        (history / "0.value").write_bytes(bytes(800))
    elif damage == "journal_replaced":  # the journal cut short and written again
        lines = events.read_bytes().splitlines(keepends=True)
        events.write_bytes(b"".join(lines[:-3]) + lines[-3].replace(b'"seq"', b'"seq" '))
    else:
        (history / "index.json").write_text("{not json")
    run = ut.open_run(tracker.run_id)
    assert_history_is_the_journal(run)


def test_a_reader_in_the_writers_process_reads_the_journal_past_the_history() -> None:
    tracker = ut.ExperimentTracker("same-process", quiet_config())
    try:
        for step in range(10):
            tracker.log_metrics({"loss": float(step)}, step=step)
        tracker.flush()
        assert ut.open_run(tracker.run_id).history("loss")[0].tolist() == list(range(10))
        tracker.log_metrics({"loss": 10.0}, step=10)
        tracker.flush()
        assert ut.open_run(tracker.run_id).history("loss")[1][-1] == 10.0
    finally:
        tracker.finish()


def test_system_samples_and_artifacts_come_from_the_history(tmp_path: Path) -> None:
    note = tmp_path / "note.txt"
    note.write_text("hello")
    with ut.experiment_tracking("system", quiet_config(monitoring={"enabled": True, "interval": 0.05})) as tracker:
        tracker.log_artifact(note)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not _system_samples(tracker.run_dir):
            time.sleep(0.05)
    run = ut.open_run(tracker.run_id)
    views = read_views(RunPaths(tracker.run_dir))
    assert run.system_history == views.system and run.system_history
    assert run.artifacts == views.artifacts and any(a["name"] == "note.txt" for a in run.artifacts)


def _system_samples(run_dir: Path) -> list[Any]:
    return [line for line in (run_dir / "events.jsonl").read_text().splitlines() if '"kind":"system"' in line]


def test_reading_imports_no_backend_torch_or_pydantic(tmp_path: Path) -> None:
    with ut.experiment_tracking("light", quiet_config()) as tracker:
        tracker.log_metrics({"loss": 1.0}, step=0)
    probe = (
        "import sys, unitrack as ut\n"
        f"run = ut.open_run({tracker.run_id!r}); run.to_dict(); run.history('loss'); ut.runs()\n"
        "print(' '.join(m for m in ('torch', 'mlflow', 'wandb', 'tensorboard', 'pydantic') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == []
