"""``unitrack ui``'s JSON API against a real server process: the documented shapes (the CLI's
``--json``), full-fidelity buckets, live events, notes, and the security rules."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.ui_harness import child_env, http, make_runs, page_write_token, ui_command, ui_server
from unitrack.cli.app import app

runner = CliRunner()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("ui-api") / "store"
    return root, make_runs(root)


@pytest.fixture(scope="module")
def server(store: tuple[Path, dict[str, str]]) -> Iterator[str]:
    with ui_server(store[0]) as (url, _):
        yield url


def cli_json(store: Path, *args: str) -> Any:
    result = runner.invoke(app, [*args, "--store", str(store), "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def get(url: str) -> Any:
    answer = http(url)
    assert answer.status == 200, answer.body[:300]
    return answer.json()


def test_runs_list_is_ls_json_and_takes_the_filter_grammar(server: str, store: tuple[Path, dict[str, str]]) -> None:
    root, ids = store
    assert get(server + "api/runs") == cli_json(root, "ls")
    expression = "params.lr > 0.1"
    query = urllib.parse.urlencode({"filter": expression})
    assert get(f"{server}api/runs?{query}") == cli_json(root, "ls", "--filter", expression) != []
    assert [r["run_id"] for r in get(f"{server}api/runs?{query}")] == [ids["faster"]]
    bad = http(server + "api/runs?" + urllib.parse.urlencode({"filter": "params.lr >"}))
    assert bad.status == 400 and "error" in bad.json()


def test_runs_are_served_in_pages_sorted_and_grouped(server: str, store: tuple[Path, dict[str, str]]) -> None:
    _, ids = store
    answer = http(server + "api/runs?offset=1&limit=2&sort=params.lr&order=asc")
    assert answer.status == 200 and answer.headers["x-total-count"] == "4"
    page = answer.json()
    assert [r["run_id"] for r in page] == [ids["faster"], ids["failed"]]  # lr 0.05, 0.2, then runs without lr, newest first
    grouped = get(server + "api/runs?group=experiment")
    assert all("group" in r for r in grouped)
    groups = get(server + "api/groups?by=tag:sweep")
    assert {g["key"]: g["count"] for g in groups} == {"lr": 2, "(none)": 2}
    columns = get(server + "api/columns")
    assert "lr" in columns["default_params"] and "val/acc" in columns["metrics"]


def test_run_is_show_json(server: str, store: tuple[Path, dict[str, str]]) -> None:
    root, ids = store
    served = get(f"{server}api/runs/{ids['baseline']}")
    shown = cli_json(root, "show", ids["baseline"])
    assert served == shown
    assert get(f"{server}api/runs/{ids['baseline'][:8]}")["run_id"] == ids["baseline"]


def test_bucketed_metric_keeps_a_single_spike(server: str, store: tuple[Path, dict[str, str]]) -> None:
    _, ids = store
    data = get(f"{server}api/runs/{ids['long']}/metric?key=loss&buckets=1000")
    assert data["key"] == "loss" and data["total"] == 100_000 and data["raw"] is False
    assert len(data["step"]) == len(data["value"]) == len(data["min"]) == len(data["max"]) <= 1000
    assert max(data["max"]) == pytest.approx(1e6, rel=1e-6)
    spike = data["max"].index(max(data["max"]))
    assert data["value"][spike] < 1e6 and data["min"][spike] < 1.0  # the mean hides it; the band does not


def test_zoomed_range_returns_the_raw_points(server: str, store: tuple[Path, dict[str, str]]) -> None:
    _, ids = store
    data = get(f"{server}api/runs/{ids['long']}/metric?key=loss&buckets=1000&start=61000&end=61499")
    assert data["raw"] is True and data["total"] == 500
    assert data["step"] == list(range(61_000, 61_500))
    expected = [1.0 / (1 + s) + (1e6 if s == 61_234 else 0.0) for s in data["step"]]
    assert data["value"] == pytest.approx(expected) and data["min"] == data["value"] == data["max"]
    by_time = get(f"{server}api/runs/{ids['long']}/metric?key=loss&buckets=10&x=index&start=5&end=9")
    assert by_time["step"] == [5, 6, 7, 8, 9] and by_time["index"] == [5, 6, 7, 8, 9]
    assert http(f"{server}api/runs/{ids['long']}/metric?key=nope").status == 404
    assert http(f"{server}api/runs/{ids['long']}/metric?key=loss&buckets=0").status == 400


def test_compare_and_explain_are_the_cli_json(server: str, store: tuple[Path, dict[str, str]]) -> None:
    root, ids = store
    a, b = ids["baseline"], ids["faster"]
    assert get(f"{server}api/compare?a={a}&b={b}") == cli_json(root, "compare", a, b)
    assert get(f"{server}api/explain?a={a}&b={b}") == cli_json(root, "explain", a, b)


def test_run_page_parts(server: str, store: tuple[Path, dict[str, str]]) -> None:
    _, ids = store
    run = ids["baseline"]
    checkpoints = get(f"{server}api/runs/{run}/checkpoints?verify=1")
    assert len(checkpoints) >= 1 and all(c["ok"] is True for c in checkpoints)
    assert get(f"{server}api/runs/{run}/model")["model"]["parameters"]["total"] == 178
    assert get(f"{server}api/runs/{run}/environment")["python"]
    assert any(key.startswith("cpu/") for key in get(f"{server}api/runs/{run}/system"))
    weights = get(f"{server}api/runs/{run}/weights")
    assert weights["layers"] and weights["delta"]["tensors"] and "activations" in weights
    artifact = http(f"{server}api/runs/{run}/artifact?name=model/summary.json")
    assert artifact.status == 200 and json.loads(artifact.body)["model"]


def test_a_note_saved_is_in_show_json(server: str, store: tuple[Path, dict[str, str]]) -> None:
    root, ids = store
    run = ids["faster"]
    origin = server.rstrip("/")
    write = {"Authorization": f"Bearer {page_write_token(server)}", "Origin": origin, "Content-Type": "application/json"}
    body = json.dumps({"note": "lr 0.2 learns faster"}).encode()
    assert http(f"{server}api/runs/{run}/note", "PUT", write, body).status == 200
    assert cli_json(root, "show", run)["info"]["note"] == "lr 0.2 learns faster"
    assert get(f"{server}api/runs/{run}/note")["note"] == "lr 0.2 learns faster"
    note_events = [json.loads(line) for line in (root / "runs" / run / "events.jsonl").read_text().splitlines() if '"note"' in line]
    assert note_events[-1]["kind"] == "note" and note_events[-1]["text"] == "lr 0.2 learns faster"
    # no page token, another origin, or a cross-site fetch: refused, and nothing written
    for headers in (
        {"Origin": origin, "Content-Type": "application/json"},
        {**write, "Origin": "http://evil.example"},
        {**write, "Sec-Fetch-Site": "cross-site"},
        {k: v for k, v in write.items() if k != "Origin"},
    ):
        assert http(f"{server}api/runs/{run}/note", "PUT", headers, json.dumps({"note": "x"}).encode()).status == 403
    assert cli_json(root, "show", run)["info"]["note"] == "lr 0.2 learns faster"


def test_unknown_paths_and_traversal_never_return_a_file(server: str, store: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    root, ids = store
    run = ids["baseline"]
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP SECRET")
    link = root / "runs" / run / "artifacts" / "escape.txt"
    link.symlink_to(secret)
    events = root / "runs" / run / "events.jsonl"
    with open(events, "a") as journal:  # an artifact entry pointing out of the run (a forged journal line)
        journal.write(json.dumps({"seq": 10**8, "kind": "artifact", "time": time.time(), "name": "up", "path": "../../../../secret.txt", "size": 1, "sha256": ""}) + "\n")
        journal.write(json.dumps({"seq": 10**8 + 1, "kind": "artifact", "time": time.time(), "name": "link", "path": "artifacts/escape.txt", "size": 1, "sha256": ""}) + "\n")
    attempts = [
        "nothing", "index.html", "static/../../../etc/passwd", "static/%2e%2e/%2e%2e/etc/passwd", "static/..%2f..%2fui%2fapp.py",
        "static/js/../../app.py", "api/runs/..%2F..%2Fetc%2Fpasswd", f"api/runs/{run}/artifact?name=../../run.json",
        f"api/runs/{run}/artifact?name=up", f"api/runs/{run}/artifact?name=link", f"api/runs/{run}/artifact?name=/etc/passwd",
        f"api/runs/tb:{urllib.parse.quote(str(tmp_path))}", f"api/runs/wandb:{urllib.parse.quote(str(tmp_path))}",
        f"api/runs/mlflow:{'a' * 32}", "api/compare?a=tb:/etc&b=" + run, f"api/runs/{run}/../../etc/passwd",
    ]  # fmt: skip
    for path in attempts:
        answer = http(server + path)
        assert answer.status == 404, (path, answer.status)
        assert b"TOP SECRET" not in answer.body and b"root:" not in answer.body
    assert http(server + "static/vendor/uplot/LICENSE").status == 200


def test_access_log_records_every_request(server: str, store: tuple[Path, dict[str, str]]) -> None:
    root, _ = store
    http(server + "api/runs?filter=params.lr%3E0")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        lines = [json.loads(line) for line in (root / "ui-access.jsonl").read_text().splitlines()]
        if any(e["query"] == "filter=params.lr%3E0" for e in lines):
            break
        time.sleep(0.1)
    entry = next(e for e in lines if e["query"] == "filter=params.lr%3E0")
    assert entry["method"] == "GET" and entry["path"] == "/api/runs" and entry["status"] == 200
    assert entry["client"].startswith("127.0.0.1:") and entry["time"] > 0


def test_dns_rebinding_host_is_refused(server: str) -> None:
    assert http(server + "api/runs", headers={"Host": "evil.example:80"}).status == 403


def test_token_is_required_for_every_api_call(store: tuple[Path, dict[str, str]]) -> None:
    root, ids = store
    with ui_server(root, "--token", "s3cret") as (url, _):
        assert http(url + "api/runs").status == 401
        assert http(url + "api/runs", headers={"Authorization": "Bearer wrong"}).status == 401
        assert http(f"{url}api/runs/{ids['long']}/metric?key=loss").status == 401
        assert http(url + "api/runs", headers={"Authorization": "Bearer s3cret"}).status == 200
        page = http(url)
        assert page.status == 200 and b"s3cret" not in page.body  # the page gets the token from its URL only
        origin = url.rstrip("/")
        put = {"Origin": origin, "Content-Type": "application/json"}
        note = json.dumps({"note": "n"}).encode()
        assert http(f"{url}api/runs/{ids['long']}/note", "PUT", put, note).status == 401
        assert http(f"{url}api/runs/{ids['long']}/note", "PUT", {**put, "Authorization": "Bearer s3cret"}, note).status == 200


def test_other_addresses_need_a_token() -> None:
    result = runner.invoke(app, ["ui", "--host", "0.0.0.0", "--no-browser"], catch_exceptions=False)
    assert result.exit_code == 1 and "--token" in result.output and "refusing" in result.output


def test_port_zero_prints_the_real_port_and_sigterm_stops_cleanly(store: tuple[Path, dict[str, str]]) -> None:
    root, _ = store
    with ui_server(root, "--port", "0") as (url, process):
        port = int(url.rsplit(":", 1)[1].strip("/"))
        assert port > 0 and http(url).status == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0
    with ui_server(root, "--port", "0") as (url, process):
        process.send_signal(signal.SIGINT)  # Ctrl-C
        assert process.wait(timeout=60) == 0


def test_a_taken_port_is_a_clear_error(store: tuple[Path, dict[str, str]]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        done = subprocess.run(ui_command(store[0], "--port", str(port)), capture_output=True, text=True, timeout=120, env=child_env())
    assert done.returncode == 1 and f"cannot listen on 127.0.0.1:{port}" in done.stderr


def test_live_events_bring_new_points_of_a_running_run(server: str, store: tuple[Path, dict[str, str]]) -> None:
    import threading

    import unitrack as ut

    root, _ = store
    tracker = ut.ExperimentTracker("live", {"store_dir": str(root), "monitoring": {"enabled": False}, "capture": {"packages": False}})
    try:
        tracker.log_metrics({"loss": 1.0}, step=0)
        tracker.flush()
        import urllib.request

        messages: list[dict[str, Any]] = []
        response = urllib.request.urlopen(f"{server}api/runs/{tracker.run_id}/events", timeout=120)

        def read() -> None:
            for raw in response:
                line = raw.decode().strip()
                if line.startswith("data: "):
                    messages.append(json.loads(line[6:]))

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        deadline = time.monotonic() + 60
        while not messages and time.monotonic() < deadline:
            time.sleep(0.05)
        assert messages and messages[0] == {"run_id": tracker.run_id}  # hello: the stream is tailing
        tracker.log_metrics({"loss": 0.5}, step=1)
        tracker.flush()
        while not any(m.get("type") == "update" for m in messages) and time.monotonic() < deadline:
            time.sleep(0.05)
        update = next(m for m in messages if m.get("type") == "update")
        assert update["metrics"]["loss"] == [[1, 0.5]]
    finally:
        tracker.finish("completed")
    while reader.is_alive() and time.monotonic() < deadline:  # the run's end closes the stream
        time.sleep(0.05)
    assert any(m.get("status") == "completed" for m in messages)
    assert not reader.is_alive()


def test_unitrack_help_stays_light() -> None:
    code = "import sys; from unitrack.cli.app import app; print(sorted(m for m in ('starlette', 'uvicorn') if m in sys.modules))"
    done = subprocess.run([os.sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=child_env())
    assert done.stdout.strip() == "[]"
