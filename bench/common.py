"""What the benchmarks share: isolated contenders, latency statistics, and the docs table writer.

Each contender runs in a fresh interpreter (``python -m bench.<module> --contender NAME``) so that
one library's threads, imports and GIL traffic never colour another's figures; the parent collects
their JSON results and prints one table, with ratios to unitrack, for docs/performance.md.
"""

from __future__ import annotations

import json
import platform
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PERFORMANCE_DOC = ROOT / "docs" / "performance.md"


def latency_stats(samples_ns: Sequence[int]) -> dict[str, float]:
    """Median, p99 and max of per-call latencies, in microseconds."""
    ordered = sorted(samples_ns)
    count = len(ordered)
    return {
        "median_us": ordered[count // 2] / 1000,
        "p99_us": ordered[min(count - 1, int(count * 0.99))] / 1000,
        "max_us": ordered[-1] / 1000,
        "mean_us": statistics.fmean(ordered) / 1000,
    }


def run_contender(module: str, name: str, *args: str, timeout: float = 900) -> dict[str, Any]:
    """Run one contender in a fresh interpreter; its last stdout line is its JSON result. Progress
    (its name, then that result) goes to stderr, so a long bench shows where it is."""
    print(f"running {name} {' '.join(args)} ...", file=sys.stderr, flush=True)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", module, "--contender", name, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )
    if done.returncode != 0:
        result: dict[str, Any] = {"name": name, "error": (done.stderr.strip().splitlines() or ["failed"])[-1]}
    else:
        result = json.loads(done.stdout.strip().splitlines()[-1])
        result.setdefault("name", name)
        result["wall_s"] = time.perf_counter() - started
    print(json.dumps(result), file=sys.stderr, flush=True)
    return result


def emit(result: dict[str, Any]) -> None:
    """A contender's last act: print its result as one JSON line."""
    print(json.dumps(result))


def machine() -> str:
    import os

    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def update_doc_section(section: str, body: str, path: Path = PERFORMANCE_DOC) -> None:
    """Replace the text between ``<!-- bench:SECTION -->`` and ``<!-- /bench:SECTION -->``."""
    start, end = f"<!-- bench:{section} -->", f"<!-- /bench:{section} -->"
    text = path.read_text() if path.exists() else "# Performance\n"
    block = f"{start}\n{body.strip()}\n{end}"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + f"\n\n{block}\n"
    path.write_text(text)
