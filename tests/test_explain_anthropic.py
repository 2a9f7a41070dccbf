"""The Anthropic explainer against a local HTTP server that speaks the Messages API.

The real ``anthropic`` SDK talks to it through ``base_url``; the server records what it got.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

import unitrack as ut
from tests.conftest import quiet_config
from unitrack.analysis import gather_evidence
from unitrack.analysis.explain import explain
from unitrack.config import AnalysisConfig
from unitrack.store.runs import RunStore

API_KEY = "sk-ant-test-not-a-real-key-42"
ANSWER = {
    "headline": "val_acc fell because lr went up 10x",
    "causes": [{"title": "learning rate ×10", "evidence": ["lr 0.01 → 0.1"], "score": 0.9}],
    "next_steps": ["sweep lr between 0.01 and 0.1"],
}


class MessagesServer:
    """``POST /v1/messages``: answers as the API does, or with a 500, or too slowly."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.answer: dict[str, Any] = ANSWER
        self.requests: list[dict[str, Any]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                server.requests.append({"path": self.path, "headers": headers, "body": body.decode()})
                if server.mode == "slow":
                    time.sleep(3)
                if server.mode == "error":
                    self._send(500, {"type": "error", "error": {"type": "api_error", "message": "boom"}})
                    return
                reply = {
                    "id": "msg_test", "type": "message", "role": "assistant", "model": json.loads(body)["model"],
                    "content": [{"type": "text", "text": json.dumps(server.answer)}], "stop_reason": "end_turn",
                    "stop_sequence": None, "usage": {"input_tokens": 10, "output_tokens": 20},
                }  # fmt: skip
                self._send(200, reply)

            def _send(self, status: int, data: dict[str, Any]) -> None:
                payload = json.dumps(data).encode()
                try:
                    self.send_response(status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out and left

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def server() -> Iterator[MessagesServer]:
    running = MessagesServer()
    yield running
    running.close()


@pytest.fixture
def evidence(server: MessagesServer) -> dict[str, Any]:
    server.mode, server.answer, server.requests[:] = "ok", ANSWER, []
    ids = []
    for lr, acc, every in ((0.01, 0.9, 10), (0.1, 0.7, 50)):
        with ut.experiment_tracking("llm", quiet_config()) as tracker:
            tracker.log_hyperparameters({"lr": lr, "db_password": "hunter2", "log_every": every})
            for step in range(6):
                tracker.log_metrics({"val_acc": acc + step * 0.01 + (0.003 if step % 2 else 0.0)}, step=step)
        ids.append(tracker.run_id)
    data = gather_evidence(RunStore(tracker.store.root), ids[0], ids[1])
    # a run read from a backend may carry a secret the local store would have redacted
    data["config"]["changed"].append({"key": "hf_token", "a": "hf_secret_a", "b": "hf_secret_b", "ratio": None})
    return data


def settings(server: MessagesServer, **extra: Any) -> AnalysisConfig:
    return AnalysisConfig(provider="anthropic", api_key=API_KEY, base_url=server.url, **extra)


def test_the_request_carries_the_evidence_and_no_secret(server: MessagesServer, evidence: dict[str, Any]) -> None:
    result = explain(evidence, settings(server, model="claude-test-model", retries=0))
    assert result.provider == "anthropic" and result.notice is None
    assert [c.title for c in result.causes] == ["learning rate ×10"]
    assert result.next_steps == ["sweep lr between 0.01 and 0.1"]
    (request,) = server.requests
    assert request["path"] == "/v1/messages"
    headers = request["headers"]
    assert API_KEY in (headers.get("x-api-key", ""), headers.get("authorization", "").removeprefix("Bearer "))  # the key goes in a header...
    body = request["body"]
    assert API_KEY not in body  # ...and nowhere else
    for secret in ("hunter2", "hf_secret_a", "hf_secret_b"):
        assert secret not in body
    sent = json.loads(body)
    assert sent["model"] == "claude-test-model"
    prompt = sent["messages"][0]["content"]
    sent_evidence = json.loads(prompt.split("\n", 1)[1])
    changed = {c["key"]: c for c in sent_evidence["config"]["changed"]}
    assert (changed["lr"]["a"], changed["lr"]["b"]) == (0.01, 0.1)  # the evidence itself
    assert changed["hf_token"]["a"] == changed["hf_token"]["b"] == "***REDACTED***"
    assert [m["key"] for m in sent_evidence["metrics"]] == ["val_acc"]
    assert "metric_history" not in prompt  # summaries, never the raw series
    # the same evidence the rules read: the noise band and the bookkeeping list, explained in the prompt
    noise = sent_evidence["metrics"][0]["noise"]
    assert noise["band"] > 0 and noise["within"] is False and noise["sources"]["tail"] is not None
    assert sent_evidence["config"]["bookkeeping"] == [
        {"key": "log_every", "a": 10, "b": 50, "ratio": 5.0, "change": "changed", "reason": "name matches 'log_*'"}
    ]
    assert "never causes" in sent["system"] and "within noise" in sent["system"]


def test_causes_the_evidence_does_not_support_are_dropped_with_a_note(
    server: MessagesServer, evidence: dict[str, Any]
) -> None:
    server.answer = {
        "headline": "B is worse",
        "causes": [
            {"title": "logging every 50 steps instead of 10", "keys": ["log_every"], "evidence": ["log_every 10 → 50"], "score": 0.9},
            {"title": "batch size halved", "evidence": ["batch_size 64 → 32"], "score": 0.8},
            {"title": "learning rate ×10", "evidence": ["lr 0.01 → 0.1", "val_acc -0.2"], "score": 0.7},
            {"title": "a newer GPU driver", "evidence": ["driver 535 → 550"], "score": 0.6},
        ],
        "next_steps": [],
    }
    result = explain(evidence, settings(server, retries=0))
    assert result.provider == "anthropic"
    assert [(c.title, c.keys) for c in result.causes] == [("learning rate ×10", ["lr"])]
    dropped = {d["title"]: d["reason"] for d in result.dropped}
    assert dropped == {
        "logging every 50 steps instead of 10": "rests on bookkeeping (log_every), which never changes what a run learns",
        "batch size halved": "names nothing the evidence shows changed",
        "a newer GPU driver": "names nothing the evidence shows changed",
    }
    assert result.noise is not None and result.noise["metric"] == "val_acc"
    assert [e["key"] for e in result.bookkeeping] == ["log_every"]


def test_a_within_noise_verdict_the_answer_left_out_is_restored(server: MessagesServer) -> None:
    server.mode, server.requests[:] = "ok", []
    ids = []
    for seed, lr in ((1, 0.01), (2, 0.02)):
        with ut.experiment_tracking("llm-noise", quiet_config()) as tracker:
            tracker.log_hyperparameters({"lr": lr, "seed": seed})
            for step in range(12):
                tracker.log_metrics({"val_acc": 0.9 + 0.01 * ((step * (seed + 2)) % 3)}, step=step)
        ids.append(tracker.run_id)
    data = gather_evidence(RunStore(tracker.store.root), ids[0], ids[1])
    server.answer = {"headline": "lr", "causes": [{"title": "learning rate ×2", "evidence": ["lr"], "score": 0.9}]}
    result = explain(data, settings(server, retries=0))
    assert result.causes[0].title.startswith("within noise: no recorded change moved val_acc beyond ±")
    assert "added by the check" in result.causes[0].evidence[-1]
    lr = result.causes[1]
    assert lr.title == "learning rate ×2" and lr.score == 0.3 and "score capped" in lr.evidence[-1]


@pytest.mark.parametrize("mode", ["error", "slow"])
def test_failure_falls_back_to_the_rules_with_a_one_line_notice(
    server: MessagesServer, evidence: dict[str, Any], mode: str
) -> None:
    server.mode = mode
    result = explain(evidence, settings(server, timeout=0.5, retries=0))
    assert result.provider == "rules"
    assert result.notice is not None and "\n" not in result.notice
    assert result.notice.startswith("anthropic explanation failed (") and "using the built-in rules" in result.notice
    assert any(c.title.startswith("learning rate ×10") for c in result.causes)
    assert len(server.requests) == 1


def test_retries_are_configurable(server: MessagesServer, evidence: dict[str, Any]) -> None:
    server.mode = "error"
    result = explain(evidence, settings(server, retries=1))
    assert result.provider == "rules"
    assert len(server.requests) == 2


def test_without_a_key_auto_uses_the_rules(evidence: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    assert explain(evidence, AnalysisConfig()).provider == "rules"
    forced = explain(evidence, AnalysisConfig(), provider="anthropic")
    assert forced.provider == "rules" and "no API key" in (forced.notice or "")


def test_cli_prints_the_notice_on_stderr_and_the_rules_on_stdout(
    server: MessagesServer, evidence: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from unitrack.cli.app import app

    server.mode = "error"
    monkeypatch.setenv("ANTHROPIC_API_KEY", API_KEY)
    monkeypatch.setenv("UNITRACK__ANALYSIS__BASE_URL", server.url)
    monkeypatch.setenv("UNITRACK__ANALYSIS__RETRIES", "0")
    a, b = evidence["runs"]["a"]["run_id"], evidence["runs"]["b"]["run_id"]
    result = CliRunner().invoke(app, ["explain", a, b, "--provider", "anthropic"], catch_exceptions=False)
    assert result.exit_code == 0
    notices = [line for line in result.stderr.splitlines() if line.startswith("note: ")]
    assert len(notices) == 1 and "anthropic explanation failed" in notices[0]
    assert "learning rate ×10" in result.stdout
