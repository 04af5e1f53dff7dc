"""The flow's first task: :func:`sales_etl.preflight.run_preflight` (a deployment run has no CLI)."""

from __future__ import annotations

from sales_etl.preflight import run_preflight
from sales_etl.settings import Settings
from sales_etl.tasks.retry import io_task


# Outage-only retries: a ConfigError is never retried, except a database or bucket that did not
# answer (ServiceUnreachableError wrapping a refused connection), which a nightly run should
# wait out like any other task's outage (tasks/retry.py).
@io_task("preflight")
def preflight(settings: Settings) -> None:
    """Landing, marts, database, dimension tables and settings are usable (else ConfigError)."""
    run_preflight(settings)
