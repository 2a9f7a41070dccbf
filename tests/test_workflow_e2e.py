"""End to end in a temporary git repository: two `unitrack commit` runs, then compare and explain.

Between the runs the model class gets wider layers, the helper it calls changes activation and
the learning rate goes from 0.01 to 0.5; compare must show all three, explain must name them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

TRAIN = '''
import argparse

import torch
from torch import nn

import unitrack as ut


def activate(x):
    return torch.relu(x)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(8, 16)
        self.out = nn.Linear(16, 2)

    def forward(self, x):
        return self.out(activate(self.hidden(x)))


parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, default=0.01)
parser.add_argument("--out-dir", default="outputs/a")
args = parser.parse_args()
torch.manual_seed(0)
x = torch.randn(256, 8)
y = (x[:, 0] + x[:, 1] > 0).long()
model = Net()
optimizer = torch.optim.SGD(model.parameters(), lr=args.lr)
loss_fn = nn.CrossEntropyLoss()
config = {"monitoring": {"enabled": False}, "capture": {"packages": False}}
with ut.ExperimentTracker("e2e", config) as tracker:
    tracker.log_hyperparameters({"lr": args.lr, "epochs": 30, "out_dir": args.out_dir})
    tracker.watch(model, optimizer, loss_fn=loss_fn)
    for step in range(30):
        optimizer.zero_grad()
        loss = loss_fn(model(x[:192]), y[:192])
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            logits = model(x[192:])
            val_loss = loss_fn(logits, y[192:]).item()
            val_acc = (logits.argmax(1) == y[192:]).float().mean().item()
        tracker.log_metrics({"train_loss": loss.item(), "val_loss": val_loss, "val_acc": val_acc}, step=step)
print("trained")
'''


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.email=t@example.com", "-c", "user.name=t", *args],
        cwd=repo, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return done.stdout


def unitrack(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC", "UNITRACK"))}  # store: repo/.unitrack
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-m", "unitrack.cli.app", *args], cwd=repo, capture_output=True, text=True, env=env, timeout=300
    )


@pytest.fixture(scope="module")
def two_commits(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    repo = tmp_path_factory.mktemp("repo")
    git(repo, "init", "-q")
    (repo / "train.py").write_text(textwrap.dedent(TRAIN))
    git(repo, "add", "train.py")
    git(repo, "commit", "-qm", "baseline model")
    first = unitrack(repo, "commit", "-m", "baseline", "--tag", "stage=1", "--", sys.executable, "train.py", "--lr", "0.01")
    assert first.returncode == 0, first.stderr
    source = (repo / "train.py").read_text()
    source = source.replace("nn.Linear(8, 16)", "nn.Linear(8, 64)").replace("nn.Linear(16, 2)", "nn.Linear(64, 2)")
    source = source.replace("return torch.relu(x)", "return torch.tanh(x)")
    (repo / "train.py").write_text(source)
    git(repo, "commit", "-qam", "wider, tanh")
    second = unitrack(
        repo, "commit", "-m", "wider and faster", "--", sys.executable, "train.py", "--lr", "0.5", "--out-dir", "outputs/b"
    )
    assert second.returncode == 0, second.stderr
    return {
        "repo": repo,
        "a": first.stdout.strip().splitlines()[-1],
        "b": second.stdout.strip().splitlines()[-1],
        "output": first.stdout,
    }


def test_commit_prints_the_run_id_and_the_script_joins_that_run(two_commits: dict[str, Any]) -> None:
    repo, run_a = two_commits["repo"], two_commits["a"]
    assert "trained" in two_commits["output"]  # the command's output still reaches the terminal
    shown = json.loads(unitrack(repo, "show", run_a, "--json").stdout)
    assert shown["message"] == "baseline"
    assert shown["tags"]["stage"] == "1"
    assert shown["experiment"] == "e2e"  # the script's own tracker wrote the run
    assert shown["params"]["lr"] == 0.01
    assert shown["info"]["exit_code"] == 0
    assert shown["info"]["git"]["dirty"] is False  # the store inside the repository is not a change
    assert "output.log" in {a["name"] for a in shown["artifacts"]}
    runs = json.loads(unitrack(repo, "ls", "--json").stdout)
    assert len(runs) == 2  # one run per commit, not one for unitrack and one for the script


def test_compare_json_shows_lr_architecture_source_lines_and_metrics(two_commits: dict[str, Any]) -> None:
    result = unitrack(two_commits["repo"], "compare", two_commits["a"], two_commits["b"], "--json")
    assert result.returncode == 0, result.stderr
    evidence = json.loads(result.stdout)
    changed = {c["key"]: c for c in evidence["config"]["changed"]}
    assert changed["lr"]["a"] == 0.01 and changed["lr"]["b"] == 0.5 and changed["lr"]["ratio"] == pytest.approx(50)
    bookkeeping = {e["key"]: e for e in evidence["config"]["bookkeeping"]}
    assert "out_dir" in bookkeeping and "out_dir" not in changed  # listed apart, never a cause
    assert bookkeeping["out_dir"]["reason"] == "name matches '*dir'"
    model = evidence["model"]
    assert model["architecture"]["changed"]
    assert model["parameters"]["b"] > model["parameters"]["a"]
    net = next(c for c in model["classes"] if c["name"].endswith("Net"))
    assert "self.hidden = nn.Linear(8, 64)" in [line.strip() for line in net["added_lines"]]
    assert "self.hidden = nn.Linear(8, 16)" in [line.strip() for line in net["removed_lines"]]
    helper = next(f for f in model["functions"] if f["name"].endswith("activate"))
    assert [line.strip() for line in helper["removed_lines"]] == ["return torch.relu(x)"]
    assert [line.strip() for line in helper["added_lines"]] == ["return torch.tanh(x)"]
    metrics = {m["key"]: m for m in evidence["metrics"]}
    acc = metrics["val_acc"]
    assert acc["goal"] == "max" and acc["winner"] in ("a", "b", "tie")
    assert acc["abs_change"] == pytest.approx(acc["b"]["last"] - acc["a"]["last"])
    assert acc["same_step"]["step"] == 29
    assert metrics["train_loss"]["goal"] == "min"
    assert evidence["git"]["commit"]["same"] is False
    assert evidence["model"]["optimizer"]["changed"][0]["key"] == "lr"


def test_compare_table_lists_the_differences(two_commits: dict[str, Any]) -> None:
    result = unitrack(two_commits["repo"], "compare", two_commits["a"], two_commits["b"])
    assert result.returncode == 0, result.stderr
    for text in ("config (differences)", "lr", "val_acc", "return torch.tanh(x)", "nn.Linear(8, 64)"):
        assert text in result.stdout


def test_explain_offline_names_lr_and_architecture_with_numbers(two_commits: dict[str, Any]) -> None:
    result = unitrack(two_commits["repo"], "explain", two_commits["a"], two_commits["b"], "--provider", "rules", "--json")
    assert result.returncode == 0, result.stderr
    explanation = json.loads(result.stdout)
    assert explanation["provider"] == "rules"
    titles = [c["title"] for c in explanation["causes"]]
    assert any(t.startswith("learning rate ×50") for t in titles), titles
    assert any("model" in t or "architecture" in t for t in titles), titles
    lr = next(c for c in explanation["causes"] if c["title"].startswith("learning rate"))
    assert lr["evidence"][0].startswith("lr 0.01 → 0.5 (×50)")
    arch = next(c for c in explanation["causes"] if "parameters" in c["title"])
    assert any("parameters 178 → 706" in fact for fact in arch["evidence"]), arch
    assert any("activate" in fact and "torch.tanh" in fact for fact in arch["evidence"])
    assert explanation["next_steps"]
    text = unitrack(two_commits["repo"], "explain", two_commits["a"], two_commits["b"], "--provider", "rules")
    assert "learning rate ×50" in text.stdout and "what to try next" in text.stdout


def test_ls_group_by_git_lists_runs_per_commit(two_commits: dict[str, Any]) -> None:
    groups = json.loads(unitrack(two_commits["repo"], "ls", "--group-by", "git", "--json").stdout)
    assert len(groups) == 2
    assert [g["runs"][0]["run_id"] for g in groups] == [two_commits["b"], two_commits["a"]]
    table = unitrack(two_commits["repo"], "ls", "--group-by", "git").stdout
    assert groups[0]["key"][:12] in table


def test_rerun_makes_a_new_run_with_the_same_params_linked_to_the_original(two_commits: dict[str, Any]) -> None:
    repo, run_a = two_commits["repo"], two_commits["a"]
    plan = json.loads(unitrack(repo, "rerun", run_a, "--dry-run").stdout)
    assert "temporary git worktree" in plan["where"]  # the tree is at the second commit now
    result = unitrack(repo, "rerun", run_a)
    assert result.returncode == 0, result.stderr
    new_id = result.stdout.strip().splitlines()[-1]
    original = json.loads(unitrack(repo, "show", run_a, "--json").stdout)
    again = json.loads(unitrack(repo, "show", new_id, "--json").stdout)
    assert again["info"]["rerun_of"] == run_a and again["tags"]["rerun_of"] == run_a
    assert again["params"] == original["params"]  # same lr, same model (the old, narrow one)
    assert again["info"]["git"]["commit"] == original["info"]["git"]["commit"]
    assert git(repo, "worktree", "list").count("\n") == 1  # the temporary worktree is gone
    again_plan = json.loads(unitrack(repo, "rerun", new_id, "--dry-run").stdout)  # its worktree is gone: the original's repo
    assert again_plan["commit"] == plan["commit"] and "temporary git worktree" in again_plan["where"]


def test_rollback_writes_code_and_config(two_commits: dict[str, Any], tmp_path: Path) -> None:
    target = tmp_path / "back"
    result = unitrack(two_commits["repo"], "rollback", two_commits["a"], "--to", str(target))
    assert result.returncode == 0, result.stderr
    assert "nn.Linear(8, 16)" in (target / "train.py").read_text()
    saved = json.loads((target / "unitrack-run.json").read_text())
    assert saved["params"]["lr"] == 0.01 and saved["command"][-2:] == ["--lr", "0.01"]
    again = unitrack(two_commits["repo"], "rollback", two_commits["a"], "--to", str(target))
    assert again.returncode == 1 and "not empty" in again.stderr
