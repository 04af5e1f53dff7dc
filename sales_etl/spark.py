"""The one SparkSession of a flow run: built by the flow, shared by its tasks, stopped by the flow.

Tasks run as threads in the flow's process, so they reach the session through
:func:`active_spark` instead of receiving it as an argument Prefect would try to hash.
"""

from __future__ import annotations

import os
import tempfile
from importlib import resources
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from sales_etl.settings import Settings

_session: SparkSession | None = None
_owned = False  # stop only a session this module created (not one a notebook or test made)


def _log4j_config() -> str:
    return str(resources.files("sales_etl").joinpath("resources/log4j2.properties"))


def start_spark(settings: Settings, app_name: str = "sales-etl") -> SparkSession:
    """Create (or return) the run's SparkSession, configured from ``settings``."""
    global _session, _owned
    if _session is not None:
        return _session
    # pandera.pyspark pins SPARK_LOCAL_IP to 127.0.0.1 on import (pandera #2344); decide it
    # here, before anything imports pandera, so cluster runs are not broken by it.
    if settings.spark_master.startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

    if SparkContext._active_spark_context is not None:  # someone else's session: borrow it
        _session, _owned = SparkSession.builder.getOrCreate(), False
        return _session
    log4j = _log4j_config()
    java_opts = f"-Dlog4j2.configurationFile=file:{log4j} -Dfile.encoding=UTF-8"
    builder = (
        SparkSession.builder.master(settings.spark_master)
        .appName(app_name)
        .config("spark.driver.memory", settings.spark_driver_memory)
        .config("spark.driver.extraJavaOptions", java_opts)
        .config("spark.executor.extraJavaOptions", java_opts)
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", str(settings.spark_shuffle_partitions))
        .config("spark.sql.adaptive.enabled", "true")
        .config("spark.sql.autoBroadcastJoinThreshold", str(64 * 1024 * 1024))
        .config("spark.sql.parquet.compression.codec", "snappy")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.sources.partitionColumnTypeInference.enabled", "false")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        # Spark 4 runs with ANSI on: parsing goes through try_* functions instead of relying
        # on casts that silently give null.
        .config("spark.sql.ansi.enabled", "true")
        .config("spark.local.dir", os.environ.get("SALES_ETL_SPARK_SCRATCH", tempfile.gettempdir()))
        # Mart files are published by rename; Spark's _SUCCESS markers are not wanted there.
        .config("spark.hadoop.mapreduce.fileoutputcommitter.marksuccessfuljobs", "false")
        .config("spark.hadoop.parquet.summary.metadata.level", "NONE")
    )
    _session, _owned = builder.getOrCreate(), True
    _session.sparkContext.setLogLevel("ERROR")
    return _session


def active_spark() -> SparkSession:
    """The session started by :func:`start_spark` for this run."""
    if _session is None:
        raise RuntimeError("no SparkSession: the flow starts it before any Spark task runs")
    return _session


def stop_spark() -> None:
    """Stop the run's session (the flow calls this in ``finally``) if this module made it."""
    global _session, _owned
    if _session is not None and _owned:
        _session.stop()
    _session, _owned = None, False
