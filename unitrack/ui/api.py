"""The dashboard's JSON API: the page's only data source, and usable by scripts (docs/ui.md).

Handlers are plain functions (Starlette runs them on its thread pool, so a slow read never
blocks the event loop) over a :class:`~unitrack.ui.source.RunSource`; errors become JSON
``{"error": ...}`` with 400 (bad input), 404 (no such run, metric or artifact) or 409.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, Response, StreamingResponse
from starlette.routing import Route

from unitrack.errors import RunNotFoundError
from unitrack.nonfinite import json_safe
from unitrack.store.layout import RunPaths
from unitrack.ui.runs_table import RunsTable
from unitrack.ui.source import RunSource

DEFAULT_BUCKETS = 1000
PAGE_LIMIT_MAX = 10_000
LIVE_POLL_S = 0.5


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None, checked: bool = False) -> Response:
    """``data`` as strict JSON; ``checked`` data (already free of NaN/inf) skips the walk that replaces them."""
    body = json.dumps(data if checked else json_safe(data), allow_nan=False, separators=(",", ":"), default=str)
    return Response(body, status, headers=headers, media_type="application/json")


def _error(status: int, message: str) -> Response:
    return json_response({"error": message}, status)


def _int(request: Request, name: str, default: int | None, low: int, high: int) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r}: give a whole number") from None
    if not low <= value <= high:
        raise ValueError(f"{name}={value}: give a number from {low} to {high}")
    return value


def _float(request: Request, name: str) -> float | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r}: give a number") from None


def _required(request: Request, name: str) -> str:
    value = request.query_params.get(name)
    if not value:
        raise ValueError(f"the query needs {name}=...")
    return value


class Api:
    """The routes, bound to one store."""

    def __init__(self, source: RunSource, stopping: threading.Event) -> None:
        self.source = source
        self.table = RunsTable(source.list_runs)
        self.stopping = stopping

    def routes(self) -> list[Route]:
        guarded = self._guarded
        return [
            Route("/api/runs", guarded(self.runs)),
            Route("/api/groups", guarded(self.groups)),
            Route("/api/columns", guarded(self.columns)),
            Route("/api/compare", guarded(self.compare)),
            Route("/api/explain", guarded(self.explain)),
            Route("/api/sweep", guarded(self.sweep)),
            Route("/api/runs/{ref}", guarded(self.run)),
            Route("/api/runs/{ref}/metric", guarded(self.metric)),
            Route("/api/runs/{ref}/system", guarded(self.system)),
            Route("/api/runs/{ref}/checkpoints", guarded(self.checkpoints)),
            Route("/api/runs/{ref}/model", guarded(self.model)),
            Route("/api/runs/{ref}/environment", guarded(self.environment)),
            Route("/api/runs/{ref}/artifact", guarded(self.artifact)),
            Route("/api/runs/{ref}/weights", guarded(self.weights)),
            Route("/api/runs/{ref}/note", guarded(self.note), methods=["GET", "PUT"]),
            Route("/api/runs/{ref}/events", self.events),
        ]

    @staticmethod
    def _guarded(handler: Callable[..., Response]) -> Callable[[Request], Any]:
        """``handler`` run off the event loop, with expected errors turned into JSON answers."""

        async def endpoint(request: Request) -> Response:
            try:
                if request.method in ("GET", "HEAD"):
                    return await asyncio.to_thread(handler, request)
                return await asyncio.to_thread(handler, request, await request.body())
            except RunNotFoundError as exc:
                return _error(404, str(exc))
            except KeyError as exc:
                return _error(404, str(exc.args[0]) if exc.args else "not found")
            except ValueError as exc:
                return _error(400, str(exc))

        return endpoint

    # --- the runs table -----------------------------------------------------------------------

    def runs(self, request: Request) -> Response:
        """``GET /api/runs[?filter=EXPR]``: a list shaped like ``unitrack ls --json``. Optional:
        ``sort`` (a column: ``start_time``, ``name``, ``params.lr``, ``metrics.acc``...),
        ``order=asc|desc``, ``group=experiment|git|status|tag:NAME``, ``offset`` and ``limit``
        (a page; the header ``X-Total-Count`` says how many runs match in all)."""
        query = request.query_params
        offset = _int(request, "offset", 0, 0, 10**9) or 0
        limit = _int(request, "limit", None, 1, PAGE_LIMIT_MAX)
        descending = query.get("order", "desc") != "asc"
        page, total = self.table.page(query.get("filter"), query.get("sort"), descending, query.get("group"), offset, limit)
        return json_response(page, headers={"X-Total-Count": str(total)})

    def groups(self, request: Request) -> Response:
        """``GET /api/groups?by=experiment|git|status|tag:NAME[&filter=EXPR]``: ``[{"key", "count"}]``."""
        return json_response(self.table.groups(request.query_params.get("filter"), _required(request, "by")))

    def columns(self, request: Request) -> Response:
        """``GET /api/columns[?filter=EXPR]``: the param and metric keys the table can show."""
        return json_response(self.table.columns(request.query_params.get("filter")))

    # --- one run ------------------------------------------------------------------------------

    def run(self, request: Request) -> Response:
        """``GET /api/runs/{run_id}``: what ``unitrack show --json`` prints."""
        return json_response(self.source.details(request.path_params["ref"]))

    def metric(self, request: Request) -> Response:
        """``GET /api/runs/{run_id}/metric?key=K&buckets=N[&start=S&end=E][&x=step|time]``:
        ``{"key", "total", "raw", "step", "value", "min", "max", "time", "index"}``, bucketed when
        the range holds more than N points, raw otherwise (min = max = value). ``start``/``end`` are
        steps, wall-clock seconds with ``x=time``, or positions in logged order with ``x=index``
        (a series whose steps go back); NaN and ±inf values are null."""
        from unitrack.ui.buckets import bucket_series  # numpy: loaded by the first curve, not at start-up

        key = _required(request, "key")
        buckets = _int(request, "buckets", DEFAULT_BUCKETS, 1, 200_000) or DEFAULT_BUCKETS
        x = request.query_params.get("x", "step")
        steps, values, times = self.source.series(request.path_params["ref"], key)
        out = bucket_series(steps, values, buckets, _float(request, "start"), _float(request, "end"), times, x)
        return json_response({"key": key, **out}, checked=True)  # bucket_series sends NaN/inf as null

    def system(self, request: Request) -> Response:
        """``GET /api/runs/{run_id}/system``: the system monitor's series, ``{key: {"time", "value"}}``."""
        return json_response(self.source.system(request.path_params["ref"]))

    def checkpoints(self, request: Request) -> Response:
        """``GET /api/runs/{run_id}/checkpoints[?verify=1]``: kept checkpoints; with ``verify`` their
        checksums are checked (``ok``, ``problems``), as ``unitrack verify`` does."""
        from unitrack.ui.run_data import checkpoints

        root = self._local(request)
        return json_response(checkpoints(root, request.query_params.get("verify") in ("1", "true")))

    def model(self, request: Request) -> Response:
        """``GET /api/runs/{run_id}/model``: the model summary ``tracker.watch`` recorded, or null."""
        from unitrack.ui.run_data import model_summary

        return json_response(model_summary(self._local(request), self.source.view(request.path_params["ref"]).artifacts))

    def environment(self, request: Request) -> Response:
        """``GET /api/runs/{run_id}/environment``: Python, OS, host, packages, torch / CUDA, GPUs ({} when not recorded)."""
        return json_response(self.source.view(request.path_params["ref"]).environment)

    def artifact(self, request: Request) -> Response:
        """``GET /api/runs/{run_id}/artifact?name=NAME``: the bytes of one artifact the run recorded."""
        from unitrack.ui.run_data import artifact_file

        root = self._local(request)
        path = artifact_file(root, self.source.view(request.path_params["ref"]).artifacts, _required(request, "name"))
        return FileResponse(path, filename=path.name, content_disposition_type="attachment")

    def weights(self, request: Request) -> Response:
        """``GET /api/runs/{run_id}/weights``: per-layer change heatmaps and ``unitrack delta``'s table."""
        from unitrack.ui.run_data import weights_page

        self._local(request)
        return json_response(weights_page(self.source.store, request.path_params["ref"]))

    def note(self, request: Request, body: bytes = b"") -> Response:
        """``GET /api/runs/{run_id}/note`` → ``{"run_id", "note"}``; ``PUT`` with ``{"note": TEXT}``
        stores it in the run and mirrors it to the run's MLflow / W&B backends."""
        root = self._local(request)
        if request.method == "GET":
            details = self.source.details(root.name)
            return json_response({"run_id": root.name, "note": (details.get("info") or {}).get("note") or ""})
        from unitrack.workflow.notes import NoteError, deliver_in_background, set_note

        try:
            data = json.loads(body or b"{}")
        except ValueError:
            raise ValueError("the body must be JSON: {\"note\": \"...\"}") from None
        text = data.get("note") if isinstance(data, dict) else None
        if not isinstance(text, str):
            raise ValueError("the body must be JSON: {\"note\": \"...\"}")
        try:
            saved = set_note(self.source.store, root.name, text)
        except NoteError as exc:
            return _error(409, str(exc))
        deliver_in_background(self.source.store, root.name)
        return json_response(saved)

    def _local(self, request: Request) -> Any:
        root = self.source.local_root(request.path_params["ref"])
        if root is None:
            raise RunNotFoundError("this part of a run is shown for runs of the store only")
        return root

    # --- two runs -----------------------------------------------------------------------------

    def _evidence(self, request: Request) -> tuple[dict[str, Any], Any]:
        from unitrack.analysis import gather_evidence
        from unitrack.analysis_settings import analysis_settings
        from unitrack.ui.source import check_ref

        a, b = check_ref(_required(request, "a")), check_ref(_required(request, "b"))
        settings = analysis_settings()
        return gather_evidence(self.source.store, a, b, settings), settings

    def compare(self, request: Request) -> Response:
        """``GET /api/compare?a=A&b=B``: ``unitrack compare A B --json``."""
        return json_response(self._evidence(request)[0])

    def explain(self, request: Request) -> Response:
        """``GET /api/explain?a=A&b=B``: ``unitrack explain A B --json``."""
        from unitrack.analysis.explain import explain

        evidence, settings = self._evidence(request)
        return json_response(explain(evidence, settings).to_dict())

    def sweep(self, request: Request) -> Response:
        """``GET /api/sweep?experiment=E[&metric=K]``: ``unitrack explain --sweep E --json``."""
        from unitrack.analysis.sweep import explain_sweep
        from unitrack.analysis_settings import analysis_settings

        experiment, metric = _required(request, "experiment"), request.query_params.get("metric")
        result = explain_sweep(experiment, metric, store=self.source.store, settings=analysis_settings())
        return json_response(result.to_dict())

    # --- live ---------------------------------------------------------------------------------

    async def events(self, request: Request) -> Response:
        """``GET /api/runs/{run_id}/events``: server-sent events while the run is written. The
        journal is tailed every half second; each new batch sends ``{"type": "update", "seq",
        "metrics": {key: [[step, value]...]}, "status"}``; a status event ends the stream."""
        try:
            root = await asyncio.to_thread(self._local, request)
        except RunNotFoundError as exc:
            return _error(404, str(exc))
        return StreamingResponse(
            self._tail(request, root), media_type="text/event-stream", headers={"Cache-Control": "no-store"}
        )

    async def _tail(self, request: Request, root: Any) -> AsyncIterator[str]:
        from unitrack.store.journal import read_journal

        journal = RunPaths(root).events
        offset = journal.stat().st_size if journal.exists() else 0
        yield f"event: hello\ndata: {json.dumps({'run_id': root.name})}\n\n"
        while not self.stopping.is_set():
            if await request.is_disconnected():
                return
            chunk = await asyncio.to_thread(read_journal, journal, offset, 20_000)
            if chunk.records:
                offset = chunk.end_offset
                message, ended = _live_message(chunk.records)
                yield f"data: {json.dumps(json_safe(message), allow_nan=False)}\n\n"
                if ended:
                    return
            else:
                yield ": idle\n\n"  # lets a closed connection show up as one
            await asyncio.sleep(LIVE_POLL_S)


def _live_message(records: list[dict[str, Any]]) -> tuple[dict[str, Any], bool]:
    from unitrack.nonfinite import decode_number

    metrics: dict[str, list[list[Any]]] = {}
    status = None
    for record in records:
        kind = record.get("kind")
        if kind == "metric":
            for key, value in (record.get("values") or {}).items():
                metrics.setdefault(key, []).append([record.get("step"), decode_number(value)])
        elif kind == "status":
            status = record.get("status")
    message = {"type": "update", "seq": records[-1].get("seq"), "metrics": metrics, "status": status}
    return message, status is not None and status != "running"
