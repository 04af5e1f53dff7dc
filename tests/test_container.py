"""The sales-etl image built with podman and run for real (issue 14).

The image is built on base images made from Debian packages (scripts/build-images.sh: bookworm ->
Python 3.11, trixie -> Python 3.13), reused while its inputs do not change. Every check looks at
the container from outside: the named volume's files and SQLite on the host, moto's S3 and
MariaDB through their own clients, a Prefect server outside the container through its API.

1. ``demo`` as uid 10001 with a named volume (both bases), on bookworm twice: the second run
   sends every file the first run loaded to duplicates.
2. ``sales-etl run`` in the container on the suite's moto S3 + MariaDB (host network): the same
   outcome as tests/test_three_configurations.py's in-process S3 + MySQL scenario.
5. SIGTERM (``podman stop``) mid-run: the flow run ends Failed naming SIGTERM (not Crashed:
   sales_etl.termination), nothing is lost, the next run recovers and equals one clean run
   (tests/crash_helpers.py's oracle).
6. uid 10001, no secret in the image's environment, labels or history; the entrypoint passes
   ``prefect``, ``python`` and ``bash`` through.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from container_helpers import SUITES, USER_ID, image_for, inspect, podman, volume_path
from crash_helpers import (
    ALL_FILES,
    BATCH_1,
    BATCH_2,
    assert_nothing_lost,
    base_env,
    diff_states,
    new_workspace,
    run_cli,
    workspace_state,
    write_crash_dimensions,
)
from harness import PrefectServer, Workspace
from ops_helpers import api_post, reporting_tables
from test_dockerfile import SECRET_NAME, URL_WITH_PASSWORD, env_pairs
from test_three_configurations import Config, run_scenario
from test_three_configurations import outcome_of as outcome_of  # a fixture

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]

#: Small, fast JVMs on 2 shared cores (as tests/crash_helpers.py's base_env).
SMALL_SPARK = {
    "SALES_ETL_SPARK_MASTER": "local[2]",
    "SALES_ETL_SPARK_SHUFFLE_PARTITIONS": "2",
    "SALES_ETL_SPARK_DRIVER_MEMORY": "1g",
    "JAVA_TOOL_OPTIONS": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
}


def env_flags(names: list[str]) -> list[str]:
    """``-e NAME`` for each name: podman copies the value from its own environment, so values
    (passwords, keys) never appear on a command line."""
    return [arg for name in names for arg in ("-e", name)]


def run_container(
    tag: str, args: list[str], env: dict[str, str], *, extra: list[str] = (), timeout=900
) -> subprocess.CompletedProcess:
    """``podman run --rm --network host`` with ``env`` passed through; output captured."""
    return subprocess.run(
        ["podman", "run", "--rm", "--network", "host", *env_flags(list(env)), *extra, tag, *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture(params=SUITES)
def image(request: pytest.FixtureRequest) -> str:
    return image_for(request.param)


@pytest.fixture
def bookworm_image() -> str:
    return image_for("bookworm")


# --- 1. demo with a named volume, twice -----------------------------------------------------------


def _files(folder: Path) -> dict[str, str]:
    """File name -> sha256 of every file under ``folder`` (names are unique in a batch)."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*.*")}


def test_demo_as_uid_10001_on_a_named_volume_then_again_on_bookworm(image: str) -> None:
    """The demo, then (bookworm, the image prefect.yaml runs) the demo again on the same volume.
    On trixie one run: the second run's duplicate routing does not depend on the base image,
    and each demo run costs a JVM start in a container on the suite's 2 shared cores."""
    volume = f"sales-etl-test-{secrets.token_hex(4)}"
    podman("volume", "create", volume)
    try:
        first = run_container(image, ["demo"], {}, extra=["-v", f"{volume}:/data"])
        assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
        assert "demo data:" in first.stdout
        data = volume_path(volume)
        processed = _files(data / "landing" / "processed")
        assert processed, "the first run loaded no file"
        tables = reporting_tables(data / "sales_etl.db")
        assert tables["customer_monthly_purchase"], "no monthly totals after the first run"
        if image == image_for("bookworm"):
            second = run_container(image, ["demo"], {}, extra=["-v", f"{volume}:/data"])
            assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
            # Every file the first run loaded came again (same bytes) and went to duplicates;
            # the archive and the reporting tables did not change.
            assert _files(data / "landing" / "error_files" / "duplicates") == processed
            assert _files(data / "landing" / "processed") == processed
            assert reporting_tables(data / "sales_etl.db") == tables
        assert list((data / "landing" / "to_process").iterdir()) == []
        # Everything in the volume was written by the image's non-root user.
        owners = {(p.stat().st_uid, p.stat().st_gid) for p in data.rglob("*")}
        assert owners == {(USER_ID, USER_ID)}
    finally:
        podman("volume", "rm", "-f", volume, check=False)


# --- 6. user, secrets, entrypoint -----------------------------------------------------------------


def test_uid_no_secrets_and_entrypoint_passes_commands_through(bookworm_image: str) -> None:
    info = inspect(bookworm_image)
    assert info["Config"]["User"] == f"{USER_ID}:{USER_ID}"
    env = dict(item.split("=", 1) for item in info["Config"]["Env"])
    labels = info["Config"].get("Labels") or {}
    history = podman("history", "--no-trunc", "--format", "{{ .CreatedBy }}", bookworm_image)
    for name, value in [*env.items(), *labels.items()]:
        assert not SECRET_NAME.search(name), f"{name} looks like a secret"
        assert not URL_WITH_PASSWORD.search(value), f"{name} holds a URL with a password"
    assert len(history.stdout.splitlines()) > 5  # the build steps are there to be checked
    for line in history.stdout.splitlines():
        assert not URL_WITH_PASSWORD.search(line), f"history: {line}"
        for name, _ in env_pairs(line):
            assert not SECRET_NAME.search(name), f"history sets {name}: {line}"
    assert not any(name.startswith("AWS_") for name in env)

    checks = {
        ("python", "-c", "import os; print(os.getuid(), os.getgid())"): f"{USER_ID} {USER_ID}",
        ("bash", "-c", 'echo "bash $(id -u) ${BASH_VERSION%%.*}"'): f"bash {USER_ID} 5",
        ("prefect", "version"): "Version:",
        ("--help",): "usage: sales-etl",
    }
    for argv, expect in checks.items():
        done = run_container(bookworm_image, list(argv), {}, timeout=300)
        assert done.returncode == 0, f"{argv}: {done.stderr[-2000:]}"
        assert expect in done.stdout, f"{argv}: {done.stdout[-2000:]}"


# --- 2. sales-etl run in the container on moto S3 + MariaDB ---------------------------------------


class ContainerConfig(Config):
    """tests/test_three_configurations.py's S3 + MySQL configuration, the flow run by
    ``sales-etl run --json`` in the container (host network) instead of in this process."""

    image = ""

    def run_flow(self) -> dict[str, Any]:
        import json

        env = {
            "SALES_ETL_LANDING": self.landing,
            "SALES_ETL_MARTS": self.marts,
            "SALES_ETL_DATABASE_URL": self.flow_url,
            # As the in-process scenario (Config.run_flow): the guard off, row outcomes compared.
            "SALES_ETL_MAX_BAD_ROW_FRACTION": "1.0",
            **{k: os.environ[k] for k in os.environ if k.startswith("AWS_") and "FILE" not in k},
            **SMALL_SPARK,
        }
        done = run_container(self.image, ["run", "--json"], env)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        return json.loads(done.stdout[done.stdout.index("{") :])


def test_run_on_s3_and_mariadb_equals_the_in_process_scenario(
    bookworm_image, outcome_of, moto_server, mariadb, tmp_path, spark
) -> None:
    config = ContainerConfig("s3+mysql", tmp_path / "container", moto=moto_server, mariadb=mariadb)
    config.image = bookworm_image
    outcome = run_scenario(config, spark, tmp_path, prove_direct_writes=False)
    reference = outcome_of("s3+mysql")
    assert reference["mart_rows"]["customer_data_mart"]  # not vacuous
    for part in reference:
        if part != "timings":
            assert outcome[part] == reference[part], f"the container run differs in {part}"


# --- 5. SIGTERM mid-run ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    """A Prefect server outside the containers; they reach it over the host network."""
    server = PrefectServer(tmp_path_factory.mktemp("prefect_home"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _flow_runs(api_url: str) -> list[dict[str, Any]]:
    return api_post(api_url, "/flow_runs/filter", {"sort": "START_TIME_ASC"})


def _workspace_for_uid(ws: Workspace) -> None:
    """The container's user owns the workspace (bind-mounted at the same path)."""
    for path in [ws.root, *ws.root.rglob("*")]:
        os.chown(path, USER_ID, USER_ID)


def _container_run(
    tag: str, ws: Workspace, api_url: str, log: Path, name: str
) -> subprocess.Popen[bytes]:
    env = {**ws.env(), **SMALL_SPARK, "PREFECT_API_URL": api_url}
    _workspace_for_uid(ws)
    with log.open("wb") as out:
        return subprocess.Popen(
            [
                "podman",
                "run",
                "--rm",
                "--name",
                name,
                "--network",
                "host",
                "-v",
                f"{ws.root}:{ws.root}",
                *env_flags(list(env)),
                tag,
                "run",
            ],
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )


def test_sigterm_mid_run_then_recovery_equals_one_clean_run(
    bookworm_image: str, prefect_server: PrefectServer, tmp_path: Path
) -> None:
    api = prefect_server.api_url
    template = Workspace(tmp_path / "template")
    template.root.mkdir()
    dims = write_crash_dimensions(tmp_path / "dims")
    loaded = run_cli(
        ["load-dimensions", str(dims)],
        template,
        base_env(tmp_path / "prefect-cli", api),
        label="load-dimensions",
    )
    assert loaded.returncode == 0, loaded.tail()

    # The reference: one clean run of the container over all files.
    reference = new_workspace(tmp_path / "reference", template.db)
    reference.drop(ALL_FILES)
    clean = _container_run(bookworm_image, reference, api, tmp_path / "clean.log", "clean")
    assert clean.wait(timeout=900) == 0, (tmp_path / "clean.log").read_text()[-3000:]
    expected = workspace_state(reference)
    assert_nothing_lost(reference, ALL_FILES)

    # SIGTERM while Spark builds the marts (the rejected files are already routed).
    ws = new_workspace(tmp_path / "killed", template.db)
    ws.drop(BATCH_1)
    runs_before = {r["id"] for r in _flow_runs(api)}
    log = tmp_path / "killed.log"
    name = f"sales-etl-sigterm-{secrets.token_hex(4)}"
    proc = _container_run(bookworm_image, ws, api, log, name)
    deadline = time.monotonic() + 600
    while "Task run 'route-rejected-files" not in log.read_text(errors="replace"):
        assert proc.poll() is None, f"the run ended before the kill point:\n{log.read_text()}"
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.2)
    podman("stop", "--time", "60", name, timeout=120)
    returncode = proc.wait(timeout=120)
    assert returncode != 0, f"a stopped run exited 0:\n{log.read_text()[-3000:]}"
    killed_runs = [r for r in _flow_runs(api) if r["id"] not in runs_before]
    assert len(killed_runs) == 1, killed_runs
    state = killed_runs[0]["state"]
    # Prefect alone would end it CRASHED ("Execution was aborted by a termination signal",
    # capture_sigterm); sales_etl.termination turns an outside SIGTERM into a normal failure, so
    # the flow rolls back and ends FAILED with its reason.
    assert state["type"] == "FAILED", f"{state['type']}: {state.get('message')}"
    assert "SIGTERM" in (state.get("message") or ""), state.get("message")
    assert_nothing_lost(ws, BATCH_1)

    # The next run (with the second batch) recovers; the result equals the clean run.
    ws.drop(BATCH_2)
    again = _container_run(bookworm_image, ws, api, tmp_path / "again.log", "again")
    assert again.wait(timeout=900) == 0, (tmp_path / "again.log").read_text()[-3000:]
    assert_nothing_lost(ws, ALL_FILES)
    actual = workspace_state(ws)
    assert actual == expected, diff_states(actual, expected)
