"""A run's life in its process: finished at exit, on SIGTERM, and told why when an exception ended it.

- At exit (``atexit``), a run still open is finished: ``completed``, or ``failed`` /
  ``interrupted`` when an uncaught exception ended the program (remembered by an ``excepthook``
  installed once per process, with what :func:`unitrack.failure.describe_failure` makes of it).
- On SIGTERM (when ``capture.handle_signals``, on the main thread): the run is finished as
  ``interrupted``, then the previous handler runs (or the default one: the process still ends).
- Leaving ``with`` maps the exception to a status with :func:`status_for`.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any

from unitrack.failure import describe_failure

# (status, failure) -> None: how the lifecycle ends the run
EndRun = Callable[[str, "dict[str, Any] | None"], None]


class UncaughtExceptions:
    """Remembers an exception that reached the top of the program, for runs finished at exit."""

    last: type[BaseException] | None = None
    error: dict[str, Any] | None = None  # what describe_failure made of it
    _installed = False

    @classmethod
    def install(cls) -> None:
        if cls._installed:
            return
        previous = sys.excepthook

        def hook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
            cls.last = kind
            cls.error = describe_failure(kind, value, tb)
            previous(kind, value, tb)

        sys.excepthook = hook
        cls._installed = True


def status_for(kind: type[BaseException] | None, value: BaseException | None = None) -> str:
    """The final status of a run ended by ``kind`` (None: no exception)."""
    if kind is None:
        return "completed"
    if issubclass(kind, KeyboardInterrupt):
        return "interrupted"
    if issubclass(kind, SystemExit):
        code = getattr(value, "code", 1)
        return "completed" if code in (0, None) else "failed"
    return "failed"


class RunLifecycle:
    """The exit and SIGTERM hooks of one run; ``end(status, failure)`` finishes it."""

    def __init__(self, end: EndRun) -> None:
        self._end = end
        self._previous_sigterm: Any = None
        self._started = False

    def start(self, signals: bool) -> None:
        """Finish the run at exit; with ``signals``, on SIGTERM too (main thread only)."""
        if signals and threading.current_thread() is threading.main_thread():
            try:
                self._previous_sigterm = signal.signal(signal.SIGTERM, self._on_sigterm)
            except (ValueError, OSError):  # not allowed here (embedded interpreters)
                self._previous_sigterm = None
        UncaughtExceptions.install()
        atexit.register(self._at_exit)
        self._started = True

    def stop(self) -> None:
        """The run is finished: put the previous SIGTERM handler back and forget the exit hook."""
        if not self._started:
            return
        atexit.unregister(self._at_exit)
        if self._previous_sigterm is not None:
            try:
                if signal.getsignal(signal.SIGTERM) == self._on_sigterm:
                    signal.signal(signal.SIGTERM, self._previous_sigterm)
            except (ValueError, OSError):
                pass

    def _at_exit(self) -> None:
        kind = UncaughtExceptions.last
        self._end(status_for(kind) if kind is not None else "completed", UncaughtExceptions.error)

    def _on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        previous = self._previous_sigterm
        self._end("interrupted", None)
        if callable(previous):
            previous(signum, frame)
        elif previous != signal.SIG_IGN:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)


def peak_rss_mb() -> float | None:
    """This process's peak resident memory in MB (``run.json``'s ``peak_rss_mb``), None where unknown."""
    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 1024 if sys.platform != "darwin" else peak / 2**20
    except (ImportError, OSError):
        return None
