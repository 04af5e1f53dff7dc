"""The one SparkSession of a flow run: built by the flow, shared by its tasks, stopped by the flow.

Tasks run as threads in the flow's process, so they reach the session through
:func:`active_spark` instead of receiving it as an argument Prefect would try to hash.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from sales_etl.settings import Settings

_session: SparkSession | None = None
_owned = False  # stop only a session this module created (not one a notebook or test made)
_run_cache: dict[object, object] = {}
_lock = threading.RLock()  # one session, even when a background start races the flow


def run_cache() -> dict[object, object]:
    """Values shared by the tasks of one run (e.g. the dimension frames), emptied whenever a
    run starts or stops its session, so nothing outlives the run that read it."""
    return _run_cache


def _log4j_config() -> str:
    return str(resources.files("sales_etl").joinpath("resources/log4j2.properties"))


# --- s3a: the jars and the connector's settings -------------------------------------------------

_SIMPLE_PROVIDER = "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider"
_TEMPORARY_PROVIDER = "org.apache.hadoop.fs.s3a.TemporaryAWSCredentialsProvider"


def jars_dir(settings: Settings) -> Path:
    """Where scripts/fetch-jars.sh puts hadoop-aws + the AWS SDK bundle.

    ``settings.jars_dir`` (``SALES_ETL_JARS_DIR``) if set, else ``.jars/`` at the root of the
    source checkout (an editable install), else ``./.jars``.
    """
    if settings.jars_dir:
        return Path(settings.jars_dir).expanduser().resolve()
    checkout = Path(__file__).resolve().parent.parent / ".jars"
    return checkout if checkout.is_dir() else Path.cwd() / ".jars"


def s3a_jars(settings: Settings) -> list[str]:
    """The jar files of :func:`jars_dir` (empty when they were never fetched)."""
    folder = jars_dir(settings)
    if not folder.is_dir():
        return []
    return sorted(str(p) for p in folder.glob("*.jar") if p.is_file())


def _uses_s3(settings: Settings) -> bool:
    return any(url.startswith(("s3://", "s3a://")) for url in (settings.landing, settings.marts))


def s3a_options(settings: Settings) -> dict[str, str | None]:
    """Hadoop options for ``s3a://`` from the same connection boto3 uses (None = unset).

    The endpoint comes from ``AWS_ENDPOINT_URL_S3`` (or ``AWS_ENDPOINT_URL``, or the Prefect
    block); a custom endpoint turns path-style access on, and its scheme decides TLS. Static
    credentials (environment, profile file, Prefect block) are handed over explicitly, so the
    JVM does not depend on the environment it was started with; self-refreshing ones (instance
    or container roles) are left to s3a's default provider chain. Marts on S3 are committed
    with FileOutputCommitter v2: one server-side copy per file at task commit instead of two.
    """
    from sales_etl.storage.s3 import resolve_s3_connection

    conn = resolve_s3_connection()
    options: dict[str, str | None] = {
        "fs.s3a.endpoint": conn.endpoint_url,
        "fs.s3a.path.style.access": "true" if conn.path_style else "false",
        "fs.s3a.connection.ssl.enabled": (
            "false"
            if conn.endpoint_url and urlsplit(conn.endpoint_url).scheme == "http"
            else "true"
        ),
        "fs.s3a.endpoint.region": conn.region or ("us-east-1" if conn.endpoint_url else None),
        "fs.s3a.access.key": conn.access_key,
        "fs.s3a.secret.key": conn.secret_key,
        "fs.s3a.session.token": conn.session_token,
        "fs.s3a.aws.credentials.provider": (
            None
            if not conn.access_key
            else (_TEMPORARY_PROVIDER if conn.session_token else _SIMPLE_PROVIDER)
        ),
        "mapreduce.fileoutputcommitter.algorithm.version": (
            "2" if settings.marts.startswith(("s3://", "s3a://")) else "1"
        ),
    }
    return options


def _s3a_on_class_path(session: SparkSession) -> bool:
    jvm = session.sparkContext._jvm
    try:
        loader = jvm.java.lang.Thread.currentThread().getContextClassLoader()
        jvm.java.lang.Class.forName("org.apache.hadoop.fs.s3a.S3AFileSystem", False, loader)
    except Exception as exc:
        return "ClassNotFoundException" not in str(exc)  # unsure: let the first s3a call tell
    return True


def configure_s3a(session: SparkSession, settings: Settings) -> None:
    """Apply :func:`s3a_options` to a live session (its SQL conf reaches every read and write).

    Runs on every :func:`start_spark`, also for a borrowed session, so a long-lived session
    (tests, notebooks) follows the current environment. Hadoop caches one S3A file system per
    bucket, created with the options in force at its first use: change endpoint or credentials
    for a bucket only in a new process.
    """
    if not _uses_s3(settings):
        session.conf.set("mapreduce.fileoutputcommitter.algorithm.version", "1")
        return
    if not _s3a_on_class_path(session):
        if not s3a_jars(settings):
            raise RuntimeError(
                f"s3:// storage needs the s3a connector jars in {jars_dir(settings)}: run "
                "scripts/fetch-jars.sh (or point SALES_ETL_JARS_DIR at them) before starting "
                "the flow, or use a Spark whose class path has them (EMR)"
            )
        raise RuntimeError(
            "the running SparkSession was started without the s3a jars (hadoop-aws): start it "
            "with sales_etl.spark.start_spark after scripts/fetch-jars.sh, in a new process"
        )
    for key, value in s3a_options(settings).items():
        if value is None:
            session.conf.unset(key)
        else:
            session.conf.set(key, value)


# --- small batches (issue 16, section 3) ----------------------------------------------------------

#: A batch of at most this many bytes of CSV (~330,000 rows of the generator's) is small: most
#: nights. Its JVM lives for seconds, so it is started for that (bench/RESULTS.md, "Small
#: batches"). Measured at 1,000 and 100,000 rows; the border itself is a judgement: a 1M-row
#: batch (48 MiB) keeps the settings of any size.
SMALL_BATCH_BYTES = 16 * 2**20

#: JVM options of a small batch's driver. The C1 compiler alone compiles Spark's code paths
#: sooner than tiered C1 + C2, whose optimised code would pay off only in a long run, and the
#: serial collector has no GC threads to start or to compete with on a small machine.
SMALL_BATCH_JAVA_OPTIONS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"


def is_small_batch(settings: Settings, input_bytes: int | None) -> bool:
    """True for a batch of known size up to :data:`SMALL_BATCH_BYTES` on a ``local`` master
    (a cluster's executors start apart from this process: nothing to tune here)."""
    return (
        input_bytes is not None
        and input_bytes <= SMALL_BATCH_BYTES
        and settings.spark_master.startswith("local")
    )


def start_spark(
    settings: Settings, app_name: str = "sales-etl", *, input_bytes: int | None = None
) -> SparkSession:
    """Create (or return) the run's SparkSession, configured from ``settings``.

    ``input_bytes``: the size of the batch's CSV files, when known before the JVM starts; a
    small batch (:func:`is_small_batch`) gets :data:`SMALL_BATCH_JAVA_OPTIONS`. Unknown
    (None): the settings for any size. Waits for a start begun by
    :func:`start_spark_in_background` and returns that session.
    """
    with _lock:
        return _start_spark(settings, app_name, input_bytes)


def start_spark_in_background(
    settings: Settings, *, input_bytes: int | None = None
) -> threading.Thread:
    """Start the JVM and the session in a daemon thread, so that the 5-10 s it takes overlap
    other start-up work (Prefect's server, file validation). An error is not raised here: the
    next :func:`start_spark` tries again and raises it where the flow can report it.

    For a small batch (:func:`is_small_batch`) the thread then runs
    :func:`sales_etl.warm_up.warm_up` under the session lock: the Spark stage's code paths once,
    on a made-up batch of two rows, so that the first real jobs of a 1,000-row run do not pay
    for class loading and compilation after Prefect has started (a flow's ``start_spark``
    waits for it).
    """

    def run() -> None:
        # Errors are dropped here on purpose: the flow's start_spark raises them again.
        with contextlib.suppress(Exception), _lock:
            session = _start_spark(settings, "sales-etl", input_bytes)
            if is_small_batch(settings, input_bytes):
                from sales_etl.warm_up import warm_up

                warm_up(session)

    thread = threading.Thread(target=run, name="sales-etl-spark-start", daemon=True)
    thread.start()
    return thread


def _start_spark(settings: Settings, app_name: str, input_bytes: int | None = None) -> SparkSession:
    global _session, _owned
    _run_cache.clear()
    if _session is not None:
        configure_s3a(_session, settings)
        return _session
    # pandera.pyspark pins SPARK_LOCAL_IP to 127.0.0.1 on import (pandera #2344); decide it
    # here, before anything imports pandera, so cluster runs are not broken by it.
    if settings.spark_master.startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

    if SparkContext._active_spark_context is not None:  # someone else's session: borrow it
        _session, _owned = SparkSession.builder.getOrCreate(), False
        configure_s3a(_session, settings)
        return _session
    log4j = _log4j_config()
    # -XX:-OmitStackTraceInFastThrow: once HotSpot has compiled a hot path it throws implicit
    # exceptions (e.g. univocity's "Index 20480 out of bounds") as a preallocated instance
    # without message; the reason a file lands in error_files/unknown/ would then say nothing.
    java_opts = (
        f"-Dlog4j2.configurationFile=file:{log4j} -Dfile.encoding=UTF-8"
        " -XX:-OmitStackTraceInFastThrow"
    )
    driver_opts = java_opts
    if is_small_batch(settings, input_bytes):
        driver_opts = f"{java_opts} {SMALL_BATCH_JAVA_OPTIONS}"
    builder = (
        SparkSession.builder.master(settings.spark_master)
        .appName(app_name)
        .config("spark.driver.memory", settings.spark_driver_memory)
        .config("spark.driver.extraJavaOptions", driver_opts)
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
        .config("spark.local.dir", settings.spark_scratch or tempfile.gettempdir())
        # Mart files are published by rename; Spark's _SUCCESS markers are not wanted there.
        .config("spark.hadoop.mapreduce.fileoutputcommitter.marksuccessfuljobs", "false")
        .config("spark.hadoop.parquet.summary.metadata.level", "NONE")
    )
    jars = s3a_jars(settings)
    if jars:
        if settings.spark_master.startswith("local"):
            # Driver and executors share this JVM: put the jars on its class path directly.
            # (spark.jars would copy the ~0.7 GB SDK bundle into spark.local.dir every start.)
            builder = builder.config("spark.driver.extraClassPath", os.pathsep.join(jars))
        else:
            builder = builder.config("spark.jars", ",".join(jars))  # shipped to the executors
        builder = (
            builder
            # Upload buffers in memory: Spark's output goes straight to S3, no local block files.
            .config("spark.hadoop.fs.s3a.fast.upload.buffer", "array")
            .config("spark.hadoop.fs.s3a.multipart.size", "32M")
            .config("spark.hadoop.fs.s3a.fast.upload.active.blocks", "4")
        )
    _session, _owned = builder.getOrCreate(), True
    _session.sparkContext.setLogLevel("ERROR")
    configure_s3a(_session, settings)
    return _session


def active_spark() -> SparkSession:
    """The session started by :func:`start_spark` for this run."""
    if _session is None:
        raise RuntimeError("no SparkSession: the flow starts it before any Spark task runs")
    return _session


def stop_spark() -> None:
    """Stop the run's session (the flow calls this in ``finally``) if this module made it."""
    global _session, _owned
    with _lock:
        _run_cache.clear()
        if _session is not None and _owned:
            _session.stop()
        _session, _owned = None, False
