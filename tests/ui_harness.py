"""What the dashboard's tests, benchmarks and screenshots share: a real ``unitrack ui`` process,
plain HTTP calls to it, a store of small real runs, and headless Chromium driven by selenium
through Debian's chromedriver (nothing downloaded at run time).

``python -m tests.ui_harness --out docs/img`` runs the demo's training script twice into a fresh
store and screenshots every page of the dashboard over it (the pictures in docs/ui.md).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM = "/usr/bin/chromium"
URL_LINE = re.compile(r"^(http://[^\s/]+/)$")


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def http(url: str, method: str = "GET", headers: dict[str, str] | None = None, body: bytes | None = None) -> Answer:
    """One request; an HTTP error status is an answer, not an exception."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return Answer(response.status, {k.lower(): v for k, v in response.headers.items()}, response.read())
    except urllib.error.HTTPError as error:
        return Answer(error.code, {k.lower(): v for k, v in error.headers.items()}, error.read())


def ui_command(store: Path, *args: str) -> list[str]:
    return [sys.executable, "-c", "from unitrack.cli.app import main; main()", "ui", "--store", str(store), "--no-browser", *args]


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


@contextmanager
def ui_server(store: Path, *args: str, timeout: float = 60.0) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """A running ``unitrack ui``; yields its URL (read from its stdout) and the process."""
    process = subprocess.Popen(ui_command(store, *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env())
    try:
        url = wait_for_url(process, timeout)
        yield url, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_for_url(process: subprocess.Popen[str], timeout: float) -> str:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            if process.poll() is not None:
                raise RuntimeError(f"unitrack ui exited {process.returncode}: {process.stderr.read() if process.stderr else ''}")
            continue
        match = URL_LINE.match(line.strip())
        if match:
            return match.group(1)
    raise TimeoutError("unitrack ui printed no URL")


def page_write_token(url: str) -> str:
    """The per-process write secret the served page carries (what the page's own script sends)."""
    page = http(url).body.decode()
    match = re.search(r'name="unitrack-write-token" content="([^"]*)"', page)
    assert match is not None
    return match.group(1)


# --- a store of small, real runs -------------------------------------------------------------

QUIET = {"monitoring": {"enabled": False}, "capture": {"packages": False}}


def make_runs(store: Path) -> dict[str, str]:
    """Two trained runs of a tiny model (lr 0.05 and 0.2: snapshots, checkpoints, system samples,
    grouped metrics), a run with a 100,000-point series holding one spike, and a failed run."""
    import torch

    import unitrack as ut

    ids: dict[str, str] = {}
    for name, lr in (("baseline", 0.05), ("faster", 0.2)):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
        optimizer = torch.optim.SGD(model.parameters(), lr=lr)
        config = {**QUIET, "store_dir": str(store), "monitoring": {"enabled": True, "interval": 0.2}, "tags": {"sweep": "lr"}}
        with ut.experiment_tracking("digits-demo", config) as tracker:
            tracker.log_hyperparameters({"lr": lr, "batch_size": 32, "epochs": 4})
            tracker.watch(model, optimizer=optimizer, loss_fn=torch.nn.CrossEntropyLoss())
            x, y = torch.randn(256, 8), torch.randint(0, 2, (256,))
            step = 0
            for epoch in range(4):
                tracker.snapshot_weights(model, step=step)
                for batch in range(25):
                    loss = torch.nn.functional.cross_entropy(model(x[batch % 8 * 32 : batch % 8 * 32 + 32]), y[batch % 8 * 32 : batch % 8 * 32 + 32])
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                    tracker.log_metrics({"train/loss": loss.item(), "train/lr": lr}, step=step)
                    step += 1
                with torch.no_grad():
                    val = torch.nn.functional.cross_entropy(model(x), y).item()
                    acc = (model(x).argmax(1) == y).float().mean().item()
                tracker.log_metrics({"val/loss": val, "val/acc": acc}, step=step)
                tracker.save_checkpoint(model=model, epoch=epoch, step=step, optimizer=optimizer, val_loss=val)
            tracker.snapshot_weights(model, step=step)
            time.sleep(0.5)  # a few system samples
        ids[name] = tracker.run_id
    with ut.experiment_tracking("long", {**QUIET, "store_dir": str(store)}) as tracker:
        for step in range(100_000):
            tracker.log_metrics({"loss": 1.0 / (1 + step) + (1e6 if step == 61_234 else 0.0)}, step=step)
    ids["long"] = tracker.run_id
    try:
        with ut.experiment_tracking("broken", {**QUIET, "store_dir": str(store)}) as tracker:
            tracker.log_metrics({"loss": 1.0}, step=0)
            raise RuntimeError("the loss went NaN at step 1")
    except RuntimeError:
        pass
    ids["failed"] = tracker.run_id
    return ids


# --- headless Chromium ------------------------------------------------------------------------


def chrome(width: int = 1400, height: int = 1000) -> Any:
    """Debian's Chromium through Debian's chromedriver: headless, a fresh profile, no network
    chatter of its own, the browser console captured."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    if not Path(CHROMEDRIVER).exists():
        raise RuntimeError(f"{CHROMEDRIVER} is missing: apt-get install -y chromium chromium-driver (.ci/run does)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="unitrack-chromium-")
    for flag in (
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-dev-shm-usage", f"--user-data-dir={profile}",
        f"--window-size={width},{height}",
    ):  # fmt: skip
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def wait_for(driver: Any, script: str, timeout: float = 60.0) -> Any:
    """Poll ``script`` (JavaScript returning a value) until it is truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(0.1)
    raise TimeoutError(f"the page never satisfied: {script}")


def console_errors(driver: Any) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def foreign_resources(driver: Any, origin: str) -> list[str]:
    names = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    return [name for name in names if not (name.startswith(origin) or name.startswith("data:") or name.startswith("blob:"))]


def screenshot_pages(driver: Any, url: str, ids: dict[str, str], out: Path) -> list[Path]:
    """Each page of the dashboard, once loaded, as a PNG in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    shots = []
    pages = [
        ("ui-runs.png", "#/", "return document.body.dataset.runsReady"),
        ("ui-run.png", f"#/run/{ids['baseline']}", "return document.body.dataset.curvesReady"),
        ("ui-overlay.png", f"#/overlay?runs={ids['baseline']},{ids['faster']}&key=train/loss", "return document.body.dataset.overlayDrawMs"),
        ("ui-compare.png", f"#/compare?a={ids['baseline']}&b={ids['faster']}", "return document.body.dataset.compareReady"),
        ("ui-weights.png", f"#/weights/{ids['faster']}", "return document.body.dataset.weightsReady"),
    ]
    for name, route, ready in pages:
        driver.get(url + route)
        driver.refresh()  # a fresh page per route: the ready flags start unset
        wait_for(driver, ready)
        # two animation frames: the page has painted what it drew when its ready flag was set
        driver.execute_async_script("requestAnimationFrame(() => requestAnimationFrame(arguments[0]))")
        path = out / name
        driver.save_screenshot(str(path))
        shots.append(path)
    return shots


def _demo_store(folder: Path) -> dict[str, str]:
    """The demo's two training runs (``make demo``: the digits CNN at lr 0.05 and 0.2)."""
    env = {**child_env(), "UNITRACK_DIR": str(folder)}
    for lr in ("0.05", "0.2"):
        subprocess.run(
            [sys.executable, str(ROOT / "examples/train_digits.py"), "--config", str(ROOT / "configs/digits.yaml"), "--epochs", "3", "--lr", lr],
            check=True, env=env, cwd=folder.parent, stdout=subprocess.DEVNULL,
        )  # fmt: skip
    runs = sorted(p.name for p in (folder / "runs").iterdir())
    return {"baseline": runs[-2], "faster": runs[-1]}


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Screenshot every dashboard page over a fresh run of the demo.")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="unitrack-demo-") as tmp:
        store = Path(tmp) / "store"
        ids = _demo_store(store)
        with ui_server(store) as (url, _):
            driver = chrome(1400, 1100)
            try:
                for path in screenshot_pages(driver, url, ids, args.out):
                    print(path)
            finally:
                driver.quit()


if __name__ == "__main__":
    main()
