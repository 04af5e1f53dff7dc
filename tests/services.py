"""Real servers for the integration tests: moto's S3 server and MariaDB, on 127.0.0.1.

Each is started once per test session on a free port, with private state (a fresh datadir for
MariaDB; moto keeps its buckets in memory), and stopped at the end. A server that cannot be
started FAILS the tests that need it, with the command that installs it: these tests are never
skipped. ``scripts/install-services.sh`` (run by ``scripts/install.sh --dev``) installs both.

Fixtures (registered from ``tests/conftest.py``):

``moto_server``  (session) the S3 endpoint URL; while it runs, the standard ``AWS_*`` variables
                 point boto3 and Spark's s3a at it (saved and restored around the session).
``s3_bucket``    (function) a new, empty bucket on it; yields its name.
``mariadb``      (session) a :class:`MariaDB` server; ``new_database()`` gives a fresh database
                 and a SQLAlchemy URL for a least-privilege user.
``mysql_url``    (function) a fresh database's ``mysql+pymysql://`` URL.
``spark_cluster`` (session) a :class:`SparkCluster`: a Spark standalone master and two workers
                 (1 core, 2g each) started from the pyspark wheel; ``master_url`` is ``spark://...``.
"""

from __future__ import annotations

import itertools
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from harness import free_port, stop_process, tail
from helpers import WaitTimeout, wait_until

REPO = Path(__file__).resolve().parent.parent
INSTALL_HINT = "run `bash scripts/install-services.sh` (or `scripts/install.sh --dev`) first"
SPARK_HINT = "install the dev environment (`scripts/install.sh --dev`: pyspark and a Java 17+ JRE)"

#: The privileges the product's database user needs (docs/s3-mysql.md): run the flow, create
#: its tables (init-db) and load dimensions. No DROP, ALTER, GRANT, FILE or SUPER.
APP_PRIVILEGES = "SELECT, INSERT, UPDATE, DELETE, CREATE, INDEX"

_AWS_VARS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_EC2_METADATA_DISABLED",
    "SALES_ETL_AWS_CREDENTIALS_BLOCK",
)


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _wait_for_server(
    proc: subprocess.Popen[bytes],
    log: Path,
    name: str,
    answers: Callable[[], bool],
    *,
    timeout: float,
    interval: float,
) -> None:
    """Wait until ``answers()`` returns true (any exception means "not yet"). If the server
    exits, or does not answer within ``timeout`` seconds (then it is stopped), fail the test
    with the tail of its ``log``."""

    def probe() -> bool:
        if proc.poll() is not None:
            pytest.fail(f"{name} exited with {proc.returncode}:\n{tail(log)}", pytrace=False)
        return answers()

    try:
        wait_until(
            probe,
            timeout=timeout,
            describe=f"{name} answering",
            interval=interval,
            retry_on=(Exception,),
        )
    except WaitTimeout as exc:
        stop_process(proc, grace=30)
        pytest.fail(f"{exc}\n{tail(log)}", pytrace=False)


def _find(executable: str, *preferred_dirs: str) -> str | None:
    """``executable`` from ``preferred_dirs`` (in order), else from PATH."""
    for folder in preferred_dirs:
        candidate = Path(folder, executable)
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which(executable)


# --- S3 (moto server) -----------------------------------------------------------------------------


@dataclass
class MotoServer:
    """A running ``moto_server`` and the credentials the tests use against it."""

    endpoint: str
    access_key: str
    secret_key: str
    region: str
    process: subprocess.Popen[bytes]
    log: Path

    def client(self):
        """A boto3 S3 client for test set-up and checks (independent of the product's client)."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            config=Config(s3={"addressing_style": "path"}),
        )


def start_moto_server(log_dir: Path) -> MotoServer:
    """Start ``.venv/bin/moto_server`` on a free 127.0.0.1 port and wait until it answers."""
    exe = _find("moto_server", str(Path(sys.executable).parent))  # the venv's, not PATH's
    if exe is None:
        pytest.fail(f"moto_server is not installed: {INSTALL_HINT}", pytrace=False)
    port = free_port()
    log = log_dir / "moto_server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [exe, "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    endpoint = f"http://127.0.0.1:{port}"
    server = MotoServer(
        endpoint=endpoint,
        access_key="test" + secrets.token_hex(8),
        secret_key=secrets.token_urlsafe(24),
        region="us-east-1",
        process=proc,
        log=log,
    )

    # boto3 only once the port is open: its own connection retries would take longer.
    _wait_for_server(
        proc,
        log,
        f"moto_server at {endpoint}",
        lambda: _port_open(port) and server.client().list_buckets() is not None,
        timeout=60,
        interval=0.2,
    )
    return server


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """moto's S3 server for the session; the ``AWS_*`` environment points at it meanwhile."""
    from sales_etl.storage.s3 import clear_s3_cache

    server = start_moto_server(tmp_path_factory.mktemp("moto"))
    with pytest.MonkeyPatch.context() as env:  # undone at the end of the session
        for name in _AWS_VARS:
            env.delenv(name, raising=False)
        for name, value in {
            "AWS_ACCESS_KEY_ID": server.access_key,
            "AWS_SECRET_ACCESS_KEY": server.secret_key,
            "AWS_REGION": server.region,
            "AWS_DEFAULT_REGION": server.region,
            "AWS_ENDPOINT_URL_S3": server.endpoint,
            # No profile files of the machine, no instance-metadata probing.
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
        }.items():
            env.setenv(name, value)
        clear_s3_cache()
        try:
            yield server
        finally:
            stop_process(server.process)
    clear_s3_cache()  # after the environment is restored: no client keeps moto's endpoint


_bucket_numbers = itertools.count(1)


@pytest.fixture
def s3_bucket(moto_server: MotoServer) -> str:
    """A new empty bucket (unique name: Hadoop caches one S3A file system per bucket)."""
    name = f"sales-etl-test-{os.getpid()}-{next(_bucket_numbers)}"
    moto_server.client().create_bucket(Bucket=name)
    return name


# --- MariaDB -------------------------------------------------------------------------------------


@dataclass
class MariaDB:
    """A private ``mariadbd`` (own datadir, socket and port) and its least-privilege user."""

    port: int
    socket: str
    datadir: Path
    process: subprocess.Popen[bytes]
    log: Path
    app_user: str
    app_password: str
    _databases: itertools.count

    def root_connect(self, database: str | None = None):
        """A PyMySQL connection as root over the private Unix socket."""
        import pymysql

        return pymysql.connect(
            unix_socket=self.socket, user="root", database=database, autocommit=True
        )

    def url(self, database: str, user: str | None = None, password: str | None = None) -> str:
        """``mysql+pymysql://`` URL of ``database`` over TCP (the app user by default)."""
        from sqlalchemy.engine import URL

        return URL.create(
            "mysql+pymysql",
            username=user or self.app_user,
            password=password if user else self.app_password,
            host="127.0.0.1",
            port=self.port,
            database=database,
        ).render_as_string(hide_password=False)

    def new_database(self, prefix: str = "etl") -> str:
        """A new empty utf8mb4 database the app user may use; returns its URL."""
        name = f"{prefix}_{next(self._databases)}"
        with self.root_connect() as conn, conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
            cur.execute(f"GRANT {APP_PRIVILEGES} ON `{name}`.* TO %s@'127.0.0.1'", (self.app_user,))
        return self.url(name)

    def create_user(self, grants: list[str]) -> tuple[str, str]:
        """A new user on 127.0.0.1 with exactly ``grants`` (``"SELECT ON db.t"``...)."""
        user = f"u{secrets.token_hex(4)}"
        password = secrets.token_urlsafe(18)
        with self.root_connect() as conn, conn.cursor() as cur:
            cur.execute("CREATE USER %s@'127.0.0.1' IDENTIFIED BY %s", (user, password))
            for grant in grants:
                cur.execute(f"GRANT {grant} TO %s@'127.0.0.1'", (user,))
        return user, password


def start_mariadb(base: Path) -> MariaDB:
    """Initialise a datadir under ``base``, start ``mariadbd`` on a free port, create the user."""
    sbin = ("/usr/sbin", "/usr/local/sbin", "/usr/bin")
    mariadbd = _find("mariadbd", *sbin) or _find("mysqld", *sbin)
    install_db = _find("mariadb-install-db", *sbin) or _find("mysql_install_db", *sbin)
    if mariadbd is None or install_db is None:
        pytest.fail(f"MariaDB server binaries not found: {INSTALL_HINT}", pytrace=False)
    datadir, log = base / "data", base / "mariadbd.log"
    run_dir = Path(tempfile.mkdtemp(prefix="mdb-"))  # short path: Unix sockets max ~107 chars
    sock = str(run_dir / "mysqld.sock")
    as_root = ["--user=root"] if os.geteuid() == 0 else []
    init = subprocess.run(
        [
            install_db,
            "--no-defaults",
            f"--datadir={datadir}",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            *as_root,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if init.returncode != 0:
        pytest.fail(
            f"mariadb-install-db failed ({init.returncode}):\n{init.stdout[-2000:]}\n{init.stderr[-2000:]}",
            pytrace=False,
        )
    port = free_port()
    proc = subprocess.Popen(
        [
            mariadbd,
            "--no-defaults",
            f"--datadir={datadir}",
            f"--socket={sock}",
            f"--port={port}",
            "--bind-address=127.0.0.1",
            f"--pid-file={run_dir / 'mysqld.pid'}",
            f"--log-error={log}",
            "--skip-name-resolve",
            "--skip-log-bin",
            "--character-set-server=utf8mb4",
            "--collation-server=utf8mb4_bin",
            "--innodb-buffer-pool-size=256M",
            "--innodb-log-file-size=96M",
            "--innodb-flush-log-at-trx-commit=2",  # test data: no fsync per commit
            "--max-allowed-packet=64M",
            *as_root,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    server = MariaDB(
        port=port,
        socket=sock,
        datadir=datadir,
        process=proc,
        log=log,
        app_user="sales_etl",
        app_password=secrets.token_urlsafe(18),
        _databases=itertools.count(1),
    )

    def select_1() -> bool:
        with server.root_connect() as conn, conn.cursor() as cur:
            cur.execute("SELECT 1")
        return True

    _wait_for_server(proc, log, f"mariadbd on {sock}", select_1, timeout=120, interval=0.3)
    with server.root_connect() as conn, conn.cursor() as cur:
        cur.execute(
            "CREATE USER %s@'127.0.0.1' IDENTIFIED BY %s", (server.app_user, server.app_password)
        )
    return server


@pytest.fixture(scope="session")
def mariadb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MariaDB]:
    """A private MariaDB server for the session; stopped and its datadir deleted at the end
    (its error log stays under pytest's temp folder)."""
    server = start_mariadb(tmp_path_factory.mktemp("mariadb"))
    try:
        yield server
    finally:
        stop_process(server.process, grace=60)
        shutil.rmtree(Path(server.socket).parent, ignore_errors=True)
        if server.process.returncode is not None:
            shutil.rmtree(server.datadir, ignore_errors=True)


@pytest.fixture
def mysql_url(mariadb: MariaDB) -> str:
    """A fresh, empty database on the session's MariaDB; the app user's URL."""
    return mariadb.new_database()


# --- Spark standalone cluster ----------------------------------------------------------------------


@dataclass
class SparkCluster:
    """A Spark standalone master and two workers on 127.0.0.1, all from the pyspark wheel.

    Two workers of one core each (the machine's two cores, as one worker of two before): an
    application gets one executor on each, so a test can see work spread over both.
    """

    master_url: str  # spark://127.0.0.1:<port>
    webui_url: str  # the master's web UI (its JSON state is at ``/json/``)
    spark_home: Path
    work_dir: Path  # the workers' --work-dir: app-*/<executor id>/stderr of every executor
    master: subprocess.Popen[bytes]
    workers: list[subprocess.Popen[bytes]]
    master_log: Path
    worker_logs: list[Path]

    def state(self) -> dict:
        """The master's JSON state: ``aliveworkers``, ``activeapps``, ``completedapps``..."""
        import json
        import urllib.request

        with urllib.request.urlopen(f"{self.webui_url}/json/", timeout=5) as response:
            return json.load(response)

    def logs(self, lines: int = 40) -> str:
        """The tail of every daemon's log (for failure messages)."""
        return "\n".join(
            f"--- {name} log ({log}):\n{tail(log, lines)}"
            for name, log in [("master", self.master_log)]
            + [(f"worker {i + 1}", log) for i, log in enumerate(self.worker_logs)]
        )


def _spark_class(spark_home: Path) -> list[str]:
    """How to call ``bin/spark-class`` (through bash if the wheel lost its executable bit)."""
    script = spark_home / "bin" / "spark-class"
    if not script.is_file():
        pytest.fail(
            f"{script} is missing (incomplete pyspark install): {SPARK_HINT}", pytrace=False
        )
    return [str(script)] if os.access(script, os.X_OK) else ["bash", str(script)]


def _start_daemon(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )


def start_spark_cluster(base: Path, timeout: float = 180) -> SparkCluster:
    """Start ``Master`` and ``Worker`` with ``spark-class`` on free ports; wait for the worker.

    The wheel has no ``sbin/start-master.sh``; ``spark-class`` runs the daemons in the
    foreground (it ``exec``s the JVM, so SIGTERM reaches it). Everything they write stays
    under ``base``: logs, the worker's work dir (executor logs, fetched jars) and a private,
    empty ``SPARK_CONF_DIR`` (no ``spark-env.sh`` or ``spark-defaults.conf`` of the machine).
    """
    try:
        import pyspark
    except ImportError:
        pytest.fail(f"pyspark is not installed: {SPARK_HINT}", pytrace=False)
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        pytest.fail(f"no Java runtime (java on PATH or JAVA_HOME): {SPARK_HINT}", pytrace=False)
    spark_home = Path(pyspark.__file__).resolve().parent
    spark_class = _spark_class(spark_home)
    logs, work_dir, conf_dir = base / "logs", base / "work", base / "conf"
    for folder in (logs, work_dir, conf_dir):
        folder.mkdir(parents=True, exist_ok=True)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("SPARK_", "PYSPARK_"))},
        "SPARK_HOME": str(spark_home),
        "SPARK_CONF_DIR": str(conf_dir),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_LOG_DIR": str(logs),
        "SPARK_WORKER_DIR": str(work_dir),
        # Small daemons; executors inherit the worker's environment: on 2 shared cores the C1
        # JIT and the serial GC make short JVMs much faster (as in tests/crash_helpers.py).
        "SPARK_DAEMON_MEMORY": "512m",
        "JAVA_TOOL_OPTIONS": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
    }
    port, webui_port = free_port(), free_port()
    master_url = f"spark://127.0.0.1:{port}"
    master_log = logs / "master.log"
    master = _start_daemon(
        [
            *spark_class,
            "org.apache.spark.deploy.master.Master",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--webui-port",
            str(webui_port),
        ],
        env,
        master_log,
    )
    worker_logs = [logs / f"worker-{i}.log" for i in (1, 2)]
    workers = [
        _start_daemon(
            [
                *spark_class,
                "org.apache.spark.deploy.worker.Worker",
                master_url,  # the worker retries until the master listens
                "--host",
                "127.0.0.1",
                "--cores",
                "1",
                "--memory",
                "2g",
                "--webui-port",
                str(free_port()),
                "--work-dir",
                str(work_dir),  # shared: executor ids are unique within an application
            ],
            env,
            log,
        )
        for log in worker_logs
    ]
    cluster = SparkCluster(
        master_url=master_url,
        webui_url=f"http://127.0.0.1:{webui_port}",
        spark_home=spark_home,
        work_dir=work_dir,
        master=master,
        workers=workers,
        master_log=master_log,
        worker_logs=worker_logs,
    )

    def give_up(why: str) -> None:
        for worker in workers:
            stop_process(worker)
        stop_process(master)
        pytest.fail(f"Spark standalone cluster: {why}\n{cluster.logs()}", pytrace=False)

    def alive_workers() -> int:
        named = [("master", master)] + [(f"worker {i + 1}", w) for i, w in enumerate(workers)]
        for name, proc in named:
            if proc.poll() is not None:
                give_up(f"the {name} exited with {proc.returncode}")
        return cluster.state().get("aliveworkers", 0)

    try:
        wait_until(
            alive_workers,
            lambda count: count >= len(workers),
            timeout=timeout,
            describe=f"{len(workers)} workers registered with {master_url}",
            retry_on=(OSError, ValueError),  # web UI not up yet
        )
    except WaitTimeout as exc:
        give_up(str(exc))
    return cluster


@pytest.fixture(scope="session")
def spark_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SparkCluster]:
    """A Spark standalone master + two workers for the session (logs and work dir stay under
    pytest's temp folder); all are stopped at the end."""
    cluster = start_spark_cluster(tmp_path_factory.mktemp("spark_cluster"))
    try:
        yield cluster
    finally:
        for worker in cluster.workers:
            stop_process(worker)  # stops its executors too
        stop_process(cluster.master)
