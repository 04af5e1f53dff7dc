"""Retry policy shared by every task that touches storage, the database or Spark.

Only transient errors are retried (connection drops, timeouts, throttling, 5xx); a bad
file or a bug fails at once instead of wasting the retry budget.
"""

from __future__ import annotations

import os
from typing import Any

from prefect.tasks import exponential_backoff

TRANSIENT_NAMES = {
    # SQLAlchemy / DB-API
    "OperationalError",
    "InterfaceError",
    "DisconnectionError",
    "TimeoutError",
    # botocore
    "EndpointConnectionError",
    "ConnectionClosedError",
    "ReadTimeoutError",
    "ConnectTimeoutError",
    "ProxyConnectionError",
    # Python I/O
    "ConnectionError",
    "ConnectionResetError",
    "ConnectionRefusedError",
    "BrokenPipeError",
}


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` (or an exception it wraps) looks like a passing outage."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if type(current).__name__ in TRANSIENT_NAMES:
            return True
        response = getattr(current, "response", None)
        if isinstance(response, dict):  # botocore ClientError
            status = response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            code = response.get("Error", {}).get("Code", "")
            if status >= 500 or code in {"SlowDown", "Throttling", "RequestTimeout"}:
                return True
        text = str(current)
        # Spark wraps JVM-side I/O failures; their class names survive in the message.
        if "java.net.ConnectException" in text or "SocketTimeoutException" in text:
            return True
        current = current.__cause__ or current.__context__
    return False


def retry_on_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: retry only transient failures."""
    try:
        state.result()
    except Exception as exc:
        return is_transient(exc)
    return False


def retry_options() -> dict[str, Any]:
    """Keyword arguments for ``@task``: retries with exponential backoff and jitter.

    ``SALES_ETL_TASK_RETRIES`` and ``SALES_ETL_RETRY_DELAY_SECONDS`` tune the budget
    (defaults: 3 retries, 2 s base delay -> about 2, 4, 8 s).
    """
    retries = int(os.environ.get("SALES_ETL_TASK_RETRIES", "3"))
    base = float(os.environ.get("SALES_ETL_RETRY_DELAY_SECONDS", "2"))
    return {
        "retries": retries,
        "retry_delay_seconds": exponential_backoff(backoff_factor=base)(retries) if retries else 0,
        "retry_jitter_factor": 0.5,
        "retry_condition_fn": retry_on_transient,
    }
