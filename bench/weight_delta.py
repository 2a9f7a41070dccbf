"""Weight-delta throughput: two ~400 MB snapshots compared, streaming, against the naive way.

    python -m bench.weight_delta --write-doc

Contenders, each in a fresh interpreter, the two safetensors files read once beforehand so they
sit in the page cache:
- unitrack: ``compare_sources`` over the memory-mapped files, every per-tensor and per-neuron
  metric (L1, L2, L∞, dot / norms for cosine, changed count), the fused compiled loop
  (``unitrack.weights.fused``, numba), two threads (and one thread, for comparison); after the
  timing, every metric of every tensor is checked against a float64 NumPy reference;
- the other ways of getting the same numbers, measured so the fastest exact one is what ships:
  NumPy (blocks widened to float64, one ufunc or BLAS call per metric) and torch (the same on
  tensors over the memory maps, torch's own threads), both in float64 and streaming;
- naive torch: both state dicts loaded whole (``safetensors.torch.load_file``), then per-layer
  torch ops (L1, L2, relative, cosine, L∞, changed fraction) in float32;
- floor: ``np.copyto`` of 400 MB (reads 400 MB, writes 400 MB): the memory bandwidth one core gets.
Throughput is of input (both files). Peak RssAnon is sampled every 2 ms (mapped file pages do not
count). Snapshot cost: ``tracker.snapshot_weights`` of a ~100 MB state dict against ``torch.save``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.common import emit, machine, markdown_table, run_contender, update_doc_section

LAYERS = 22  # 4096 x 1024 float32 each (16 MiB), plus an embedding of 16384 x 1024 (64 MiB): ~416 MiB per file
REPEATS = 3


class PeakAnon:
    """The peak of this process's RssAnon, sampled on a thread."""

    def __init__(self) -> None:
        self.peak = self.now()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    @staticmethod
    def now() -> int:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) * 1024
        return 0

    def _sample(self) -> None:
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, self.now())

    def __enter__(self) -> PeakAnon:
        self.peak = self.now()
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.now())


def make_files(workdir: Path) -> tuple[Path, Path]:
    import numpy as np
    from safetensors.numpy import save_file

    a_path, b_path = workdir / "a.safetensors", workdir / "b.safetensors"
    if a_path.exists() and b_path.exists():
        return a_path, b_path
    rng = np.random.default_rng(0)
    a = {f"layers.{i}.weight": rng.standard_normal((4096, 1024), dtype=np.float32) for i in range(LAYERS)}
    a["embed.weight"] = rng.standard_normal((16384, 1024), dtype=np.float32)
    save_file(a, str(a_path))
    b = {name: value + rng.standard_normal(value.shape, dtype=np.float32) * 1e-3 for name, value in a.items()}
    save_file(b, str(b_path))
    return a_path, b_path


def warm(*paths: Path) -> None:
    for path in paths:
        with open(path, "rb") as handle:
            while handle.read(1 << 24):
                pass


def best_time(fn: Any) -> float:
    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def contender_unitrack(workdir: Path, threads: int) -> dict[str, Any]:
    from unitrack.weights.compare import compare_sources
    from unitrack.weights.sources import SafetensorsSource

    a_path, b_path = workdir / "a.safetensors", workdir / "b.safetensors"
    warm(a_path, b_path)
    report: Any = None

    def run() -> None:
        nonlocal report
        report = compare_sources(SafetensorsSource(a_path), SafetensorsSource(b_path), threads=threads)

    run()  # compiles the loop on a first use (cached on disk after that): not what is measured
    with PeakAnon() as memory:
        seconds = best_time(run)
    largest = max(c.delta.numel for c in report.changes) * 4
    return {"seconds": seconds, "bytes": a_path.stat().st_size + b_path.stat().st_size, "peak_anon": memory.peak,
            "largest": largest, "max_error": reference_error(report, a_path, b_path)}


def reference_error(report: Any, a_path: Path, b_path: Path) -> float:
    """The largest relative difference of any metric, per tensor and per neuron, from float64 NumPy."""
    import numpy as np

    from unitrack.weights.sources import SafetensorsSource

    source_a, source_b = SafetensorsSource(a_path), SafetensorsSource(b_path)
    worst = 0.0
    for change in report.changes:
        x = source_a.array(change.name).astype(np.float64)
        y = source_b.array(change.name).astype(np.float64)
        d = y - x
        rows_d = d.reshape(d.shape[0], -1)
        want = {
            "l1": np.abs(d).sum(), "d2": np.dot(d.ravel(), d.ravel()), "a2": np.dot(x.ravel(), x.ravel()),
            "b2": np.dot(y.ravel(), y.ravel()), "ab": np.dot(x.ravel(), y.ravel()), "max": np.abs(d).max(),
            "changed": np.count_nonzero(d),
        }  # fmt: skip
        delta = change.delta
        got = {"l1": delta.l1, "d2": delta.sum_d2, "a2": delta.sum_a2, "b2": delta.sum_b2, "ab": delta.sum_ab,
               "max": delta.max_abs, "changed": delta.changed}
        for key, value in want.items():
            worst = max(worst, abs(got[key] - value) / max(abs(value), 1e-300))
        rows = delta.rows
        per_row = {0: np.abs(rows_d).sum(axis=1), 1: (rows_d * rows_d).sum(axis=1), 5: np.abs(rows_d).max(axis=1)}
        for field, value in per_row.items():
            worst = max(worst, float(np.max(np.abs(rows[field] - value) / np.maximum(np.abs(value), 1e-300))))
        del x, y, d, rows_d
    return worst


def contender_alternative(workdir: Path, engine: str) -> dict[str, Any]:
    """The same metrics (per tensor, and ΣΔ² per neuron) the other ways: NumPy or torch ops on
    float64 blocks of the memory-mapped tensors, one pass per metric."""
    import numpy as np

    from unitrack.weights.sources import SafetensorsSource

    a_path, b_path = workdir / "a.safetensors", workdir / "b.safetensors"
    warm(a_path, b_path)
    if engine == "torch":
        import torch

        torch.set_num_threads(os.cpu_count() or 1)
    rows_per_block = 256  # 1 Mi elements of 4096-wide... 256 Ki of 1024-wide rows: 2 MiB of float64 per side

    def one(x: Any, y: Any) -> tuple[float, ...]:
        if engine == "torch":
            x, y = torch.from_numpy(x).double(), torch.from_numpy(y).double()
            d = y - x
            e = d.abs()
            row = (d * d).sum(dim=1)
            return (e.sum().item(), row.sum().item(), (x * x).sum().item(), (y * y).sum().item(), (x * y).sum().item(),
                    e.max().item(), int((d != 0).sum().item()))  # fmt: skip
        x, y = x.astype(np.float64), y.astype(np.float64)
        d = y - x
        e = np.abs(d)
        row = np.einsum("ij,ij->i", d, d)
        flat_x, flat_y = x.ravel(), y.ravel()
        return (float(e.sum()), float(row.sum()), float(flat_x @ flat_x), float(flat_y @ flat_y), float(flat_x @ flat_y),
                float(e.max()), int(np.count_nonzero(d)))  # fmt: skip

    def run() -> None:
        source_a, source_b = SafetensorsSource(a_path), SafetensorsSource(b_path)
        for name in source_a.tensors():
            x, y = source_a.array(name), source_b.array(name)
            for first in range(0, x.shape[0], rows_per_block):
                one(x[first : first + rows_per_block], y[first : first + rows_per_block])

    from threadpoolctl import threadpool_limits

    with PeakAnon() as memory, threadpool_limits(limits=1, user_api="blas"):  # OpenBLAS's spinning threads only slow it here
        seconds = best_time(run)
    return {"seconds": seconds, "bytes": a_path.stat().st_size + b_path.stat().st_size, "peak_anon": memory.peak}


def contender_naive(workdir: Path) -> dict[str, Any]:
    import torch
    from safetensors.torch import load_file

    torch.set_num_threads(os.cpu_count() or 1)
    a_path, b_path = workdir / "a.safetensors", workdir / "b.safetensors"
    warm(a_path, b_path)

    def run() -> None:
        a, b = load_file(str(a_path)), load_file(str(b_path))
        for name, wa in a.items():
            wb = b[name]
            d = wb - wa
            _ = (d.abs().sum().item(), d.abs().mean().item(), d.norm().item(), (d.norm() / wa.norm()).item())
            _ = (torch.nn.functional.cosine_similarity(wa.flatten(), wb.flatten(), dim=0).item(), d.abs().max().item())
            _ = (d != 0).float().mean().item()
        del a, b

    with PeakAnon() as memory:
        seconds = best_time(run)
    return {"seconds": seconds, "bytes": a_path.stat().st_size + b_path.stat().st_size, "peak_anon": memory.peak}


def contender_floor(workdir: Path) -> dict[str, Any]:
    import numpy as np

    source = np.ones(100 * 2**20, dtype=np.float32)  # 400 MiB
    target = np.empty_like(source)
    seconds = best_time(lambda: np.copyto(target, source))
    return {"seconds": seconds, "bytes": source.nbytes, "peak_anon": PeakAnon.now()}


def contender_snapshot(workdir: Path) -> dict[str, Any]:
    import torch

    from unitrack import ExperimentTracker

    torch.manual_seed(0)
    model = torch.nn.Sequential(*[torch.nn.Linear(2048, 2048) for _ in range(6)])  # ~100 MB
    nbytes = sum(p.numel() * 4 for p in model.state_dict().values())
    config = {"store_dir": str(workdir / "store"), "monitoring": {"enabled": False}, "capture": {"git": False, "packages": False, "environment": False}}
    with ExperimentTracker("bench", config) as tracker:
        tracker.flush()
        started = time.perf_counter()
        tracker.snapshot_weights(model, step=0)
        tracker.flush()
        first = time.perf_counter() - started
        times_changed, times_durable, times_frozen = [], [], []
        for step in range(1, REPEATS + 1):
            with torch.no_grad():
                for p in model.parameters():
                    p.add_(1e-3)
            started = time.perf_counter()
            tracker.snapshot_weights(model, step=2 * step)
            times_changed.append(time.perf_counter() - started)
            tracker.flush()
            times_durable.append(time.perf_counter() - started)
            started = time.perf_counter()
            tracker.snapshot_weights(model, step=2 * step + 1)  # nothing changed since
            tracker.flush()
            times_frozen.append(time.perf_counter() - started)
    save_times = []
    for step in range(REPEATS):
        started = time.perf_counter()
        torch.save(model.state_dict(), workdir / f"save{step}.pt")
        save_times.append(time.perf_counter() - started)
        (workdir / f"save{step}.pt").unlink()
    return {"bytes": nbytes, "first": first, "changed": min(times_changed), "durable": min(times_durable), "unchanged": min(times_frozen), "torch_save": min(save_times)}


def report(results: dict[str, dict[str, Any]], load: str) -> str:
    def rate(r: dict[str, Any]) -> float:
        return r["bytes"] / r["seconds"] / 1e9

    stream, naive = results["unitrack"], results["naive"]
    rows = []
    for name, label in (
        ("unitrack", "unitrack: fused compiled loop (numba), every metric per tensor and per neuron, 2 threads"),
        ("unitrack-1", "unitrack: the same, 1 thread"),
        ("numpy", "option: NumPy, float64 blocks, one pass per metric"),
        ("torch", "option: torch ops on the mapped tensors, float64 blocks, torch's threads"),
        ("naive", "naive torch: both loaded whole, per-layer ops"),
        ("floor", "np.copyto of 400 MiB (bandwidth floor)"),
    ):
        r = results[name]
        rows.append([label, f"{r['seconds']:.3f}", f"{rate(r):.2f}", f"{r['peak_anon'] / 2**20:.0f}", f"{naive['seconds'] / r['seconds']:.1f}x" if name != "floor" else "-"])
    table = markdown_table(["contender", "seconds", "GB/s of input", "peak RssAnon MiB", "speed-up vs naive"], rows)
    bound = 3 * stream["largest"] + 200 * 2**20
    snap = results["snapshot"]
    lines = [
        f"Command: `python -m bench.weight_delta --write-doc` ({time.strftime('%Y-%m-%d')}, {machine()}; load average before the run: {load}). "
        f"Two safetensors files of {stream['bytes'] / 2 / 2**20:.0f} MiB each ({LAYERS} tensors of 4096×1024 and one of 16384×1024, float32), in the page cache; best of {REPEATS}.",
        "",
        table,
        "",
        f"Targets: ≥ 4 GB/s of input → {'met' if rate(stream) >= 4 else 'NOT met'} ({rate(stream):.2f} GB/s); "
        f"≥ 4× naive → {'met' if naive['seconds'] / stream['seconds'] >= 4 else 'NOT met'} ({naive['seconds'] / stream['seconds']:.1f}×); "
        f"peak RssAnon ≤ 3 × largest tensor + 200 MiB = {bound / 2**20:.0f} MiB → {'met' if stream['peak_anon'] <= bound else 'NOT met'} ({stream['peak_anon'] / 2**20:.0f} MiB); "
        f"every metric within 1e-9 relative of the float64 NumPy reference → {'met' if stream['max_error'] <= 1e-9 else 'NOT met'} "
        f"(largest difference {stream['max_error']:.1e}, per tensor and per neuron).",
        "",
        f"Snapshot cost ({snap['bytes'] / 2**20:.0f} MiB state dict, 6 × Linear(2048, 2048)), every tensor changed: "
        f"{snap['changed']:.3f} s in the loop (a copy; hashing and writing go to the job thread), {snap['durable']:.3f} s until on disk "
        f"(first snapshot {snap['first']:.3f} s); nothing changed: {snap['unchanged'] * 1000:.1f} ms until on disk. "
        f"`torch.save` of the same state dict: {snap['torch_save']:.3f} s, all in the loop.",
    ]
    return "\n".join(lines)


CONTENDERS = {
    "unitrack": lambda workdir: contender_unitrack(workdir, 2),
    "unitrack-1": lambda workdir: contender_unitrack(workdir, 1),
    "numpy": lambda workdir: contender_alternative(workdir, "numpy"),
    "torch": lambda workdir: contender_alternative(workdir, "torch"),
    "naive": contender_naive,
    "floor": contender_floor,
    "snapshot": contender_snapshot,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "unitrack-bench-weights")
    parser.add_argument("--write-doc", action="store_true", help="write the figures into docs/performance.md")
    parser.add_argument("--contender", choices=sorted(CONTENDERS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    if args.contender:
        emit(CONTENDERS[args.contender](args.workdir))
        return
    make_files(args.workdir)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    results = {}
    for name in CONTENDERS:
        results[name] = run_contender("bench.weight_delta", name, "--workdir", str(args.workdir))
        if "error" in results[name]:
            raise SystemExit(f"{name} failed: {results[name]['error']}")
    text = report(results, load)
    print(text)
    if args.write_doc:
        update_doc_section("weight_delta", text)


if __name__ == "__main__":
    main()
