"""Prefect workers and the sales-etl image (issue 14, tests 3 and 4).

3. A Prefect process worker inside the container (``prefect worker start`` through the image's
   entrypoint) runs a deployment run of prefect.yaml's ``nightly-process``, created on a Prefect
   server outside the container; the run completes, its outputs equal one clean run (computed
   by tests/ops_helpers.py from the hand-written rows) and its artifacts are in the API.

4. prefect.yaml's ``nightly-docker`` through a Prefect docker worker (prefect-docker) talking to
   ``podman system service``'s Docker-compatible socket: one container per flow run; completes.

The server, the deployment and the workspace are made with the host's Prefect CLI and
``sales-etl`` exactly as tests/test_deployment.py does; the container reaches the server over
the host network and the workspace through a bind mount at the same path.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest
from container_helpers import USER_ID, image_for, podman
from harness import PREFECT, SALES_ETL, PrefectServer, stop_process
from ops_helpers import (
    REPO,
    artifacts,
    assert_outputs_equal_clean_run,
    dimension_csvs,
    prepare_workspace,
    sales_bytes,
    wait_for_state,
)
from test_deployment import RUN_TIMEOUT, UUID_RE, cli

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]


def test_process_worker_in_the_container_runs_a_deployment_run(tmp_path: Path) -> None:
    image = image_for("bookworm")
    server = PrefectServer(tmp_path / "prefect-home", tmp_path / "server.log")
    worker = f"sales-etl-worker-{secrets.token_hex(4)}"
    try:
        server.start()
        env = server.env()
        ws = prepare_workspace(tmp_path / "ws", env)
        for path in [ws.root, *ws.root.rglob("*")]:
            os.chown(path, USER_ID, USER_ID)
        cli(env, "work-pool", "create", "sales-etl-process", "--type", "process")
        # SALES_ETL_HOME unset: the pull step resolves it in the worker (/opt/sales-etl).
        cli(env, "--no-prompt", "deploy", "--name", "nightly-process", timeout=600)

        worker_env = {
            **ws.env(),
            "PREFECT_API_URL": server.api_url,
            "PREFECT_WORKER_QUERY_SECONDS": "2",
            "JAVA_TOOL_OPTIONS": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
        }
        flags = [arg for name in worker_env for arg in ("-e", name)]
        podman(
            "run", "-d", "--name", worker, "--network", "host",
            "-v", f"{ws.root}:{ws.root}", *flags, image,
            "prefect", "worker", "start", "--pool", "sales-etl-process", "--name", worker,
            env={**os.environ, **worker_env},
        )  # fmt: skip
        started = cli(env, "deployment", "run", "sales-etl/nightly-process")
        match = UUID_RE.search(started)
        assert match, started
        run_id = match.group(1)

        def worker_alive() -> None:
            state = podman("inspect", "--format", "{{ .State.Status }}", worker).stdout.strip()
            if state != "running":
                logs = podman("logs", worker, check=False)
                raise AssertionError(f"worker container {state}:\n{logs.stdout[-3000:]}")

        run = wait_for_state(
            server.api_url,
            run_id,
            {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"},
            RUN_TIMEOUT,
            on_tick=worker_alive,
        )
        logs = podman("logs", worker, check=False)
        assert run["state"]["type"] == "COMPLETED", (
            f"{run['state']}\n{logs.stdout[-3000:]}{logs.stderr[-3000:]}"
        )
        assert_outputs_equal_clean_run(ws)
        found = {a["key"]: a for a in artifacts(server.api_url, run_id)}
        assert "# Sales ETL run: Completed" in found["sales-etl-summary"]["data"]
        assert {"sales-etl-files", "sales-etl-rows", "sales-etl-months"} <= set(found)
        # The worker in the container picked the run up (no other worker exists).
        assert run_id in logs.stdout + logs.stderr
    finally:
        podman("rm", "-f", worker, check=False)
        server.stop()


# --- 4. nightly-docker through a docker worker on podman's Docker API ------------------------------


def test_docker_worker_on_the_podman_socket_runs_nightly_docker(
    tmp_path: Path, moto_server, mariadb
) -> None:
    """prefect-docker's worker (test venv only) talks to ``podman system service``; the run of
    ``nightly-docker`` gets one container of the image, on moto S3 + MariaDB (host network),
    its secrets from the pool's Secret blocks (scripts/setup-docker-pool.sh)."""
    image_for("bookworm")  # also tagged localhost/sales-etl:0.1.0
    socket = tmp_path / "podman.sock"
    service = subprocess.Popen(
        ["podman", "system", "service", "--time=0", f"unix://{socket}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    server = PrefectServer(tmp_path / "prefect-home", tmp_path / "server.log")
    worker: subprocess.Popen[bytes] | None = None
    worker_log = tmp_path / "worker.log"
    try:
        server.start()
        env = server.env()
        bucket = f"sales-etl-docker-{secrets.token_hex(4)}"
        s3 = moto_server.client()
        s3.create_bucket(Bucket=bucket)
        for name, data in sales_bytes().items():
            s3.put_object(Bucket=bucket, Key=f"landing/to_process/{name}", Body=data)
        db_url = mariadb.new_database("docker")
        dims = tmp_path / "dimensions"
        dims.mkdir()
        for name, text in dimension_csvs().items():
            (dims / name).write_text(text)
        for args in (["init-db"], ["load-dimensions", str(dims)]):
            done = subprocess.run(
                [SALES_ETL, *args],
                env={**env, "SALES_ETL_DATABASE_URL": db_url},
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert done.returncode == 0, done.stdout + done.stderr
        secrets_env = {
            "SALES_ETL_DATABASE_URL": db_url,
            "AWS_ACCESS_KEY_ID": moto_server.access_key,
            "AWS_SECRET_ACCESS_KEY": moto_server.secret_key,
        }
        setup = subprocess.run(
            ["bash", "scripts/setup-docker-pool.sh", "sales-etl-docker"],
            env={**env, **secrets_env, "PYTHON": sys.executable},
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert setup.returncode == 0, setup.stdout + setup.stderr
        cli(env, "--no-prompt", "deploy", "--name", "nightly-docker", timeout=600)
        for _ in range(600):
            if socket.exists():
                break
            time.sleep(0.1)
        with worker_log.open("wb") as out:
            worker = subprocess.Popen(
                [PREFECT, "worker", "start", "--pool", "sales-etl-docker", "--name", "podman"],
                env={
                    **env,
                    "DOCKER_HOST": f"unix://{socket}",
                    "PREFECT_WORKER_QUERY_SECONDS": "2",
                },
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        # This machine's stand-ins for the compose network: the host network (moto, MariaDB and
        # the Prefect server listen on 127.0.0.1) and the image under podman's local name.
        overrides = {
            "image": "localhost/sales-etl:0.1.0",
            "networks": [],
            "network_mode": "host",
            "env": {
                "AWS_ENDPOINT_URL_S3": moto_server.endpoint,
                "PREFECT_API_URL": server.api_url,
                "SALES_ETL_SPARK_DRIVER_MEMORY": "1g",
                "JAVA_TOOL_OPTIONS": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
            },
        }
        started = cli(
            env,
            "deployment",
            "run",
            "sales-etl/nightly-docker",
            "--param",
            f"landing=s3://{bucket}/landing",
            "--param",
            f"marts=s3://{bucket}/marts",
            *[f for k, v in overrides.items() for f in ("--job-variable", f"{k}={json.dumps(v)}")],
        )
        match = UUID_RE.search(started)
        assert match, started
        run_id = match.group(1)
        run = wait_for_state(
            server.api_url, run_id, {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}, RUN_TIMEOUT
        )
        assert run["state"]["type"] == "COMPLETED", (
            f"{run['state']}\nworker log:\n{worker_log.read_text(errors='replace')[-4000:]}"
        )
        # One container of the image ran it: the docker worker records its id.
        assert re.search(r"[0-9a-f]{64}", run.get("infrastructure_pid") or ""), run
        found = {a["key"]: a for a in artifacts(server.api_url, run_id)}
        summary = found["sales-etl-summary"]["data"]
        assert (
            "# Sales ETL run: Completed" in summary and "3 seen: 2 accepted, 1 rejected" in summary
        )
        keys = {
            item["Key"]
            for page in s3.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix="landing/"
            )
            for item in page.get("Contents", ())
        }
        assert {k.rsplit("/", 1)[1] for k in keys if k.startswith("landing/processed/")} == {
            "sales_a.csv",
            "sales_b.csv",
        }
        assert not [k for k in keys if k.startswith("landing/to_process/")]
    finally:
        stop_process(worker)
        server.stop()
        stop_process(service, grace=30)
