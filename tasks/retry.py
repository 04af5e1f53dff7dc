"""Retry policy shared by every task that touches storage, the database or Spark.

Only transient errors are retried (connection drops, timeouts, throttling, 5xx); a bad
file or a bug fails at once instead of wasting the retry budget. The budget is that of the
run: :func:`io_task` reads it from the ``settings`` each call is given.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from prefect import Task
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

from sales_etl.errors import ServiceUnreachableError, UserError
from sales_etl.settings import Settings

P = ParamSpec("P")
R = TypeVar("R")

TRANSIENT_NAMES = {
    # SQLAlchemy / DB-API (an OperationalError is checked further by _operational_is_transient)
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


#: MySQL/MariaDB error codes of an ``OperationalError`` worth retrying: too many connections,
#: server shutting down, lock wait timeout, deadlock, cannot connect, server gone, lost connection.
MYSQL_TRANSIENT_CODES = frozenset({1040, 1053, 1205, 1213, 2002, 2003, 2005, 2006, 2013, 2055})
#: SQLite ``OperationalError`` messages of a passing condition (the file is busy or unreachable).
SQLITE_TRANSIENT_MESSAGES = (
    "database is locked",
    "database table is locked",
    "unable to open database file",
    "disk i/o error",
)


def _operational_is_transient(exc: BaseException) -> bool:
    """An ``OperationalError`` is also raised for permanent faults (a wrong password, a missing
    table): retry only the codes and messages of a passing outage. Unknown drivers: retry."""
    dbapi = getattr(exc, "orig", None) or exc  # SQLAlchemy keeps the driver's error in .orig
    if type(dbapi).__module__.startswith("sqlite3"):
        return str(dbapi).lower().startswith(SQLITE_TRANSIENT_MESSAGES)
    args = getattr(dbapi, "args", ())
    if args and isinstance(args[0], int):  # PyMySQL / mysqlclient: (code, message)
        return args[0] in MYSQL_TRANSIENT_CODES
    return True


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` (or an exception it wraps) looks like a passing outage.

    A :class:`~sales_etl.errors.UserError` (a wrong setting, an empty dimension table, a bad
    input file) never is: retrying cannot fix it. The exception is
    :class:`~sales_etl.errors.ServiceUnreachableError`, judged by the error it wraps (a refused
    connection is retried; a wrong password is not).
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, UserError) and not isinstance(current, ServiceUnreachableError):
            return False
        name = type(current).__name__
        if name == "OperationalError":
            if _operational_is_transient(current):
                return True
        elif name in TRANSIENT_NAMES:
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


def retry_options(settings: Settings) -> dict[str, Any]:
    """``retries`` and ``retry_delay_seconds`` of an I/O task in a run with ``settings``.

    ``task_retries`` (``SALES_ETL_TASK_RETRIES``, default 3) retries, exponential back-off from
    ``retry_delay_seconds`` (``SALES_ETL_RETRY_DELAY_SECONDS``, default 2 s -> about 2, 4, 8 s
    before the jitter of :func:`io_task`).
    """
    retries = settings.task_retries
    delays = exponential_backoff(backoff_factor=settings.retry_delay_seconds)(retries)
    return {"retries": retries, "retry_delay_seconds": delays if retries else 0}


class RunRetriesTask(Task[P, R]):
    """A Prefect task that retries with the budget of the run calling it.

    Prefect fixes a task's ``retries`` and ``retry_delay_seconds`` when the task is defined, at
    import, and one worker process imports the tasks once for many runs. So every call (and
    ``submit``) runs a copy made by ``Task.with_options`` (Prefect docs, "Retries") from the
    :class:`~sales_etl.settings.Settings` the call is given as ``settings``, its first argument.
    """

    def for_run(self, settings: object) -> Task[P, R]:
        """This task with the retry options of ``settings``.

        Raises:
            TypeError: ``settings`` is not a :class:`~sales_etl.settings.Settings`.
        """
        if not isinstance(settings, Settings):
            raise TypeError(
                f"task {self.name!r} takes the run's Settings as its first argument "
                f"(settings=...), got {type(settings).__name__}"
            )
        return self.with_options(**retry_options(settings))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        run_task = self.for_run(kwargs.get("settings", args[0] if args else None))
        return Task.__call__(run_task, *args, **kwargs)

    def submit(self, *args: Any, **kwargs: Any) -> Any:
        run_task = self.for_run(kwargs.get("settings", args[0] if args else None))
        return Task.submit(run_task, *args, **kwargs)


def io_task(name: str) -> Callable[[Callable[P, R]], RunRetriesTask[P, R]]:
    """``@task`` of a step that touches storage, the database or Spark.

    No result cache (arguments hold Settings and Spark objects); transient failures only are
    retried (:func:`retry_on_transient`), with 50 % jitter, as many times as the calling run's
    settings say (:class:`RunRetriesTask`). The function's first parameter is ``settings``.
    """

    def decorate(fn: Callable[P, R]) -> RunRetriesTask[P, R]:
        return RunRetriesTask(
            fn=fn,
            name=name,
            cache_policy=NO_CACHE,
            retry_jitter_factor=0.5,
            retry_condition_fn=retry_on_transient,
        )

    return decorate
