"""The flow's first task: :func:`sales_etl.preflight.run_preflight` (a deployment run has no CLI)."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from sales_etl.preflight import run_preflight
from sales_etl.settings import Settings
from sales_etl.tasks.retry import retry_options


# Outage-only retries: a ConfigError is never retried, except a database or bucket that did not
# answer (ServiceUnreachableError wrapping a refused connection), which a nightly run should
# wait out like any other task's outage (tasks/retry.py).
@task(name="preflight", cache_policy=NO_CACHE, **retry_options())
def preflight(settings: Settings) -> None:
    """Landing, marts, database, dimension tables and settings are usable (else ConfigError)."""
    run_preflight(settings)
