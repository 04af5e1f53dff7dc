"""The flow's first task: :func:`sales_etl.preflight.run_preflight` (a deployment run has no CLI)."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from sales_etl.preflight import run_preflight
from sales_etl.settings import Settings


# No retries: every failure here is a ConfigError, which waiting cannot fix (tasks/retry.py).
@task(name="preflight", cache_policy=NO_CACHE, retries=0)
def preflight(settings: Settings) -> None:
    """Landing, marts, database, dimension tables and settings are usable (else ConfigError)."""
    run_preflight(settings)
