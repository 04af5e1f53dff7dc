"""A SIGTERM from outside Prefect fails the flow run instead of crashing it.

``docker stop`` / ``podman stop`` / ``kill`` send SIGTERM. Prefect's engine turns that into a
Crashed run (``prefect.utilities.engine.capture_sigterm``: "Execution was aborted by a
termination signal"), which skips the flow's own failure handling. Inside the flow this module
raises :class:`RunTerminatedError` instead, an ordinary exception: the flow rolls back an
uncommitted batch, marks its files FAILED, publishes its failure report and ends Failed (issue 14).

A SIGTERM that Prefect's runner sent on purpose (a cancellation from the UI/API, a reschedule)
is left to Prefect, which marks the run Cancelled.
"""

from __future__ import annotations

import functools
import signal
import threading
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


class RunTerminatedError(RuntimeError):
    """The process received SIGTERM from outside Prefect while the flow was running."""


def _prefect_owns_this_signal() -> bool:
    """Whether Prefect's runner announced this SIGTERM (cancel / reschedule) over its control
    channel. Private Prefect API: if it moves, every SIGTERM fails the run (never loses one)."""
    try:
        from prefect._internal.control_listener import get_intent
    except ImportError:
        return False
    return get_intent() is not None


def fails_on_sigterm(body: F) -> F:
    """Decorate a flow's function so an outside SIGTERM raises :class:`RunTerminatedError` in it.

    Only the first SIGTERM raises; later ones (a second ``stop`` during the rollback) are ignored
    so the cleanup can finish before the engine's grace period ends in SIGKILL.
    """

    @functools.wraps(body)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if threading.current_thread() is not threading.main_thread():
            return body(*args, **kwargs)  # signal handlers live in the main thread only
        previous = signal.getsignal(signal.SIGTERM)
        raised = threading.Event()

        def on_sigterm(signum: int, frame: Any) -> None:
            if _prefect_owns_this_signal() and callable(previous):
                previous(signum, frame)
                return
            if raised.is_set():
                return
            raised.set()
            raise RunTerminatedError("terminated by SIGTERM (docker/podman stop or kill)")

        signal.signal(signal.SIGTERM, on_sigterm)
        try:
            return body(*args, **kwargs)
        finally:
            signal.signal(signal.SIGTERM, previous)

    return wrapper  # type: ignore[return-value]
