"""``unitrack ui``: start-up, the server's answers, and the page in headless Chromium.

    python -m bench.ui_speed [--write-doc]

Server (a real ``unitrack ui`` process, timed from this process over HTTP on localhost):
- start-up: process start to the URL line on stdout (target ≤ 1.5 s);
- the bucketed metric request, a 100,000-point series into 1,000 buckets (target ≤ 50 ms median),
  the first request (the run is opened) and the following ones;
- one page (100 rows) of the runs list of a 10,000-run store (target ≤ 100 ms): with a new filter
  each time (the list is read again through ``unitrack.runs``) and while scrolling (the list is
  already in memory).

Browser (Debian's Chromium, headless, Performance API marks set by the page):
- the runs page of a 1,000-run store, navigation start to the first rows drawn (target ≤ 1 s);
- the overlay of 10 runs × 100,000 points: from the data's arrival to uPlot's first draw (target
  ≤ 300 ms), with the default buckets (one per pixel of the chart, min/max bands) and with every
  raw point (``buckets=100000``: 1,000,000 points).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

from bench.common import machine, markdown_table, update_doc_section

REPEATS = 30


def _template_run(store: Path, name: str, points: int, seed: int) -> str:
    import math

    import unitrack as ut

    config = {"store_dir": str(store), "monitoring": {"enabled": False}, "capture": {"packages": False}}
    with ut.experiment_tracking(name, config) as tracker:
        tracker.log_hyperparameters({"lr": 0.01 * (1 + seed), "batch_size": 32, "seed": seed})
        for step in range(points):
            tracker.log_metrics({"loss": math.exp(-step / 20_000) * (1 + 0.1 * math.sin(step + seed)) + 0.01 * seed}, step=step)
    return tracker.run_id


def make_many(store: Path, count: int) -> None:
    """``count`` runs: one small real run, and copies of its ``run.json``, ``params.json`` and
    ``summary.json`` (all that listing reads) with their own id, params and last metrics."""
    from unitrack.names import new_run_id
    from unitrack.store.runs import RunStore

    template = store / "runs" / _template_run(store, "template", 50, 0)
    run = json.loads((template / "run.json").read_text())
    summary = json.loads((template / "summary.json").read_text())
    for index in range(count - 1):
        run_id = new_run_id()
        target = store / "runs" / run_id
        target.mkdir()
        (target / "events.jsonl").touch()
        run.update(run_id=run_id, name=f"sweep-{index}", experiment=f"exp-{index % 7}", tags={"team": ["cv", "nlp"][index % 2]})
        (target / "run.json").write_text(json.dumps(run))
        (target / "params.json").write_text(json.dumps({"lr": 0.001 * (index % 50 + 1), "batch_size": 2 ** (index % 6 + 3), "seed": index}))
        summary["metrics"]["loss"].update(last=1.0 / (index + 1))
        (target / "summary.json").write_text(json.dumps(summary))
    RunStore(store).reindex()


def _timed_get(url: str) -> tuple[float, bytes]:
    from tests.ui_harness import http

    started = time.perf_counter()
    answer = http(url)
    elapsed = time.perf_counter() - started
    assert answer.status == 200, answer.body[:200]
    return elapsed * 1000, answer.body


def start_up(store: Path) -> list[float]:
    """Seconds from process start to the URL line, a few times."""
    from tests.ui_harness import child_env, ui_command, wait_for_url

    figures = []
    for _ in range(5):
        started = time.perf_counter()
        process = subprocess.Popen(ui_command(store), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=child_env())
        wait_for_url(process, 60)
        figures.append(time.perf_counter() - started)
        process.terminate()
        process.wait(30)
    return figures


def server_figures(many: Path, long_store: Path, long_id: str) -> dict[str, Any]:
    from tests.ui_harness import ui_server

    out: dict[str, Any] = {"start_up_s": statistics.median(start_up(many))}
    with ui_server(long_store) as (url, _):
        metric = f"{url}api/runs/{long_id}/metric?key=loss&buckets=1000"
        first, body = _timed_get(metric)
        data = json.loads(body)
        assert data["total"] == 100_000 and len(data["step"]) <= 1000
        out["metric_first_ms"] = first
        out["metric_ms"] = statistics.median(_timed_get(metric)[0] for _ in range(REPEATS))
    with ui_server(many) as (url, _):
        fresh = [
            _timed_get(url + "api/runs?" + urllib.parse.urlencode({"filter": f"params.seed >= {i}", "limit": 100}))[0]
            for i in range(REPEATS)
        ]
        out["runs_fresh_ms"] = statistics.median(fresh)
        scrolled = [_timed_get(f"{url}api/runs?offset={100 * i}&limit=100")[0] for i in range(REPEATS)]
        out["runs_scroll_ms"] = statistics.median(scrolled)
        answer = _timed_get(url + "api/runs?limit=1")
        out["runs_total"] = len(json.loads(answer[1]))
    return out


def browser_figures(thousand: Path, long_store: Path, long_ids: list[str]) -> dict[str, Any]:
    from tests.ui_harness import chrome, ui_server, wait_for

    out: dict[str, Any] = {}
    driver = chrome(1400, 1000)
    try:
        with ui_server(thousand) as (url, _):
            samples = []
            for _ in range(5):
                driver.get("about:blank")
                driver.get(url + "#/")
                wait_for(driver, "return document.body.dataset.runsReady")
                samples.append(driver.execute_script("return performance.getEntriesByName('runs-interactive')[0].startTime"))
            out["runs_page_ms"] = statistics.median(samples)
        with ui_server(long_store) as (url, _):
            runs = ",".join(long_ids)
            for label, extra in (("overlay_bucketed", ""), ("overlay_raw", "&buckets=100000")):
                samples, points = [], 0
                for _ in range(5):
                    driver.get("about:blank")
                    driver.get(f"{url}#/overlay?runs={runs}&key=loss{extra}")
                    samples.append(float(wait_for(driver, "return document.body.dataset.overlayDrawMs", 300)))
                    points = int(driver.execute_script("return document.body.dataset.overlayPoints"))
                out[f"{label}_ms"] = statistics.median(samples)
                out[f"{label}_points"] = points
    finally:
        driver.quit()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write-doc", action="store_true", help="write the figures into docs/performance.md")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="unitrack-ui-bench-") as tmp:
        root = Path(tmp)
        print("building a 10,000-run store, a 1,000-run store and 10 runs of 100,000 points...", file=sys.stderr)
        make_many(root / "many", 10_000)
        make_many(root / "thousand", 1_000)
        long_ids = [_template_run(root / "long", f"long-{i}", 100_000, i) for i in range(10)]
        server = server_figures(root / "many", root / "long", long_ids[0])
        browser = browser_figures(root / "thousand", root / "long", long_ids)
    load = f"load average {load_before:.0f} at the start, {os.getloadavg()[0]:.0f} at the end"
    rows = [
        ["`unitrack ui` start-up to its URL line", f"{server['start_up_s']:.2f} s", "≤ 1.5 s"],
        ["metric, 100,000 points → 1,000 buckets (median)", f"{server['metric_ms']:.1f} ms", "≤ 50 ms"],
        ["the same, first request (run opened)", f"{server['metric_first_ms']:.1f} ms", ""],
        ["runs list, 10,000 runs, one page of 100, new filter each time", f"{server['runs_fresh_ms']:.1f} ms", "≤ 100 ms"],
        ["runs list, 10,000 runs, next page while scrolling", f"{server['runs_scroll_ms']:.1f} ms", ""],
        ["browser: runs page of 1,000 runs, navigation to rows drawn", f"{browser['runs_page_ms']:.0f} ms", "≤ 1 s"],
        [f"browser: overlay 10 runs × 100,000 points, bucketed ({browser['overlay_bucketed_points']:,} points sent), data → drawn", f"{browser['overlay_bucketed_ms']:.0f} ms", "≤ 300 ms"],
        [f"browser: the same with every raw point ({browser['overlay_raw_points']:,} points), data → drawn", f"{browser['overlay_raw_ms']:.0f} ms", ""],
    ]
    table = markdown_table(["what", "measured", "target"], rows)
    print(table)
    if args.write_doc:
        body = (
            "## The dashboard (`unitrack ui`)\n\n"
            f"`python -m bench.ui_speed --write-doc` on {machine()}; medians of {REPEATS} requests (server) and 5 page loads "
            f"(headless Chromium, Performance API), {load}. Server times are whole HTTP requests from another process.\n\n" + table
        )
        update_doc_section("ui_speed", body)


if __name__ == "__main__":
    main()
