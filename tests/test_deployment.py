"""End to end as an operator runs it: Prefect server, work pools, `prefect deploy` from
prefect.yaml, a process worker started in this checkout, a deployment run, the REST API, the UI.

One Prefect server (private PREFECT_HOME, free 127.0.0.1 port) and one worker serve the whole
module; the flow run reads and writes a temporary landing folder, marts folder and SQLite file
given to the worker through its SALES_ETL_* environment. Expected outputs are computed by
tests/ops_helpers.py from the hand-written input rows. Everything started here is killed at
teardown. The headless Chromium screenshot of the run's page is saved in test-artifacts/.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import re
import secrets
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from harness import PREFECT, PrefectServer, Workspace, stop_process, tail
from helpers import wait_until
from ops_helpers import (
    REPO,
    api_get,
    api_post,
    artifacts,
    assert_outputs_equal_clean_run,
    expected_months,
    expected_tables,
    prepare_workspace,
    task_runs,
    utc,
    wait_for_run_logs,
    wait_for_state,
)

pytestmark = pytest.mark.slow

PROCESS_POOL, DOCKER_POOL = "sales-etl-process", "sales-etl-docker"
PROCESS_DEPLOYMENT, DOCKER_DEPLOYMENT = "nightly-process", "nightly-docker"
REPLAY_DEPLOYMENT, REPLAY_FLOW_NAME = "replay-process", "sales-etl-replay"
FLOW_NAME = "sales-etl"
FLOW_PARAMETERS = {
    "landing",
    "marts",
    "database_url",
    "spark_master",
    "incentive_scope",
    "max_bad_row_fraction",
}
RUN_TIMEOUT = 900  # seconds; a loaded 2-core machine starts Spark slowly
ARTIFACTS_DIR = REPO / "test-artifacts"
UUID_RE = re.compile(r"UUID:\s*([0-9a-f-]{36})")
#: Lines that Spark, the JVM or py4j print; none may reach the Prefect run log.
SPARK_NOISE = re.compile(
    r"log4j|WARN NativeCodeLoader|Using incubator modules|setLogLevel|SparkContext|py4j|"
    r"Ivy Default Cache|spark-submit|java\.",
    re.IGNORECASE,
)


def prefect_yaml() -> dict:
    return yaml.safe_load((REPO / "prefect.yaml").read_text())


def project_version() -> str:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]


#: The run summary's log line of the deployment run (ops_helpers' dataset).
SUMMARY_LINE = "9 rows read, 7 loaded, 2 quarantined"


@dataclass
class FirstRun:
    """The deployment run as its first run left it, read once: the retry test runs it again,
    and no other test may depend on running before that one."""

    run: dict
    artifacts: dict[str, dict]  # by key
    logs: list[dict]


@dataclass
class Stack:
    server: PrefectServer
    env: dict[str, str]
    workspace: Workspace
    worker_log: Path
    flow_run_id: str
    db_secret: str
    worker: subprocess.Popen[bytes]
    first: FirstRun | None = None


def cli(env: dict[str, str], *args: str, timeout: float = 300) -> str:
    """Run ``prefect ARGS`` from the repository root; fail with its output if it fails."""
    done = subprocess.run(
        [PREFECT, *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"prefect {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("deployment")
    server = PrefectServer(root / "prefect-home", root / "server.log")
    worker: subprocess.Popen[bytes] | None = None
    worker_log = root / "worker.log"
    try:
        server.start()
        env = server.env()
        ws = prepare_workspace(root / "ws", env)
        cli(env, "work-pool", "create", PROCESS_POOL, "--type", "process")
        # The docker pool as docs/operating.md makes it: secrets only referenced (Secret blocks).
        db_secret = f"mysql+pymysql://sales_etl:pw-{secrets.token_hex(8)}@mariadb:3306/sales_etl"
        setup = subprocess.run(
            ["bash", "scripts/setup-docker-pool.sh", DOCKER_POOL],
            env={
                **env,
                "PYTHON": sys.executable,
                "SALES_ETL_DATABASE_URL": db_secret,
                "AWS_ACCESS_KEY_ID": "test-access-key",
                "AWS_SECRET_ACCESS_KEY": "test-secret-" + secrets.token_hex(8),
            },
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert setup.returncode == 0, f"setup-docker-pool.sh:\n{setup.stdout}\n{setup.stderr}"
        # SALES_ETL_HOME is not set here: the pull step keeps its placeholder until run time.
        cli(env, "--no-prompt", "deploy", "--all", timeout=600)
        with worker_log.open("wb") as out:
            worker = subprocess.Popen(
                [PREFECT, "worker", "start", "--pool", PROCESS_POOL, "--name", "test-worker"],
                env={
                    **env,
                    **ws.env(),
                    "SALES_ETL_HOME": str(REPO),
                    "PREFECT_WORKER_QUERY_SECONDS": "2",
                },
                cwd=REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        started = cli(
            env,
            "deployment",
            "run",
            f"{FLOW_NAME}/{PROCESS_DEPLOYMENT}",
            "--param",
            "spark_master=local[1]",
        )
        match = UUID_RE.search(started)
        assert match, started
        yield Stack(server, env, ws, worker_log, match.group(1), db_secret, worker)
    finally:
        stop_process(worker)
        server.stop()


def _deployment(stack: Stack, name: str) -> dict:
    return api_get(stack.server.api_url, f"/deployments/name/{FLOW_NAME}/{name}")


def _check_worker_alive(stack: Stack) -> None:
    if stack.worker.poll() is not None:
        raise AssertionError(
            f"worker exited ({stack.worker.returncode}):\n{tail(stack.worker_log)}"
        )


def _completed(stack: Stack) -> dict:
    try:
        return wait_for_state(
            stack.server.api_url,
            stack.flow_run_id,
            {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"},
            RUN_TIMEOUT,
            on_tick=lambda: _check_worker_alive(stack),
        )
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nworker log:\n{tail(stack.worker_log)}") from None


def _first_run(stack: Stack) -> FirstRun:
    """The completed first run, its artifacts and its whole log (read on the first call)."""
    if stack.first is None:
        run = _completed(stack)
        assert run["state"]["type"] == "COMPLETED", (
            f"{run['state']}\nworker log:\n{tail(stack.worker_log)}"
        )
        found = artifacts(stack.server.api_url, stack.flow_run_id)
        # The last log batches can reach the API after the run completed: wait for the whole log.
        logs = wait_for_run_logs(stack.server.api_url, stack.flow_run_id, expected=[SUMMARY_LINE])
        stack.first = FirstRun(run, {a["key"]: a for a in found}, logs)
    return stack.first


# --- what `prefect deploy --all` registered -------------------------------------------------------


def test_deploy_all_registers_both_work_pools_deployments(stack: Stack) -> None:
    spec = {d["name"]: d for d in prefect_yaml()["deployments"]}
    assert set(spec) == {PROCESS_DEPLOYMENT, DOCKER_DEPLOYMENT, REPLAY_DEPLOYMENT}
    process, docker = _deployment(stack, PROCESS_DEPLOYMENT), _deployment(stack, DOCKER_DEPLOYMENT)
    assert process["work_pool_name"] == PROCESS_POOL
    assert docker["work_pool_name"] == DOCKER_POOL
    pools = {p["name"]: p["type"] for p in api_post(stack.server.api_url, "/work_pools/filter", {})}
    assert pools[PROCESS_POOL] == "process" and pools[DOCKER_POOL] == "docker"
    for deployment in (process, docker):
        # The module the CLI imports, never the file by path (which would be a second module).
        assert deployment["entrypoint"] == "sales_etl.flows.sales_flow:sales_etl_flow"
        # Every flow parameter is exposed, with the flow's own schema.
        assert set(deployment["parameters"]) == FLOW_PARAMETERS
        assert set(deployment["parameter_openapi_schema"]["properties"]) == FLOW_PARAMETERS
        assert deployment["parameters"]["database_url"] is None  # secrets never as parameters
        assert deployment["global_concurrency_limit"]["limit"] == 1
    # The process deployment resolves its directory on the worker, at run time.
    assert process["pull_steps"] == [
        {"prefect.deployments.steps.set_working_directory": {"directory": "{{ $SALES_ETL_HOME }}"}}
    ]
    assert docker["pull_steps"] == [
        {"prefect.deployments.steps.set_working_directory": {"directory": "/opt/sales-etl"}}
    ]
    image = docker["job_variables"]["image"]
    assert image == f"sales-etl:{project_version()}", "image tag must follow pyproject's version"
    assert not image.endswith(":latest")
    assert docker["job_variables"]["image_pull_policy"] == "IfNotPresent"
    assert "SALES_ETL_DATABASE_URL" not in docker["job_variables"]["env"]


def test_deploy_all_registers_the_manual_replay_deployment(stack: Stack) -> None:
    """Issue 15: `sales-etl-replay` on the process pool, every parameter, no schedule."""
    replay = api_get(
        stack.server.api_url, f"/deployments/name/{REPLAY_FLOW_NAME}/{REPLAY_DEPLOYMENT}"
    )
    assert replay["entrypoint"] == "sales_etl.flows.replay_flow:sales_etl_replay_flow"
    assert replay["work_pool_name"] == PROCESS_POOL
    assert replay["schedules"] == []  # run by hand only
    assert replay["parameters"] == {
        "reason": None,
        "source_file": None,
        "batch": None,
        "dry_run": False,
    }
    assert set(replay["parameter_openapi_schema"]["properties"]) == set(replay["parameters"])
    assert replay["global_concurrency_limit"]["limit"] == 1


def test_schedules_are_registered_with_cron_and_timezone(stack: Stack) -> None:
    expected = prefect_yaml()["definitions"]["schedules"]["nightly"]
    assert expected["timezone"] != "UTC", "the schedule names its timezone explicitly"
    zone = ZoneInfo(expected["timezone"])
    minute, hour = (int(p) for p in expected["cron"].split()[:2])
    for name in (PROCESS_DEPLOYMENT, DOCKER_DEPLOYMENT):
        deployment = _deployment(stack, name)
        [schedule] = deployment["schedules"]
        assert schedule["active"] is True
        assert schedule["schedule"]["cron"] == expected["cron"]
        assert schedule["schedule"]["timezone"] == expected["timezone"]
        # The scheduler made the next nightly runs, at that local time (its loop runs every
        # few seconds after the deployment was created).
        runs = wait_until(
            lambda deployment=deployment: api_post(
                stack.server.api_url,
                "/flow_runs/filter",
                {
                    "flow_runs": {
                        "deployment_id": {"any_": [deployment["id"]]},
                        "state": {"type": {"any_": ["SCHEDULED"]}},
                    },
                    "sort": "EXPECTED_START_TIME_ASC",
                },
            ),
            lambda runs: any(r["auto_scheduled"] for r in runs),
            timeout=120,
            describe=f"auto-scheduled runs of {name}",
            interval=2,
        )
        auto = [r for r in runs if r["auto_scheduled"]]
        assert auto, f"no scheduled runs for {name}"
        for run in auto:
            local = utc(run["expected_start_time"]).astimezone(zone)
            assert (local.hour, local.minute) == (hour, minute), run["expected_start_time"]
            assert utc(run["expected_start_time"]) > dt.datetime.now(dt.UTC)


def test_docker_pool_gets_secrets_from_secret_blocks_at_run_time(stack: Stack) -> None:
    """The docker work pool and deployment hold only references; the worker resolves them."""
    pool = api_get(stack.server.api_url, f"/work_pools/{DOCKER_POOL}")
    deployment = _deployment(stack, DOCKER_DEPLOYMENT)
    stored = json.dumps(pool) + json.dumps(deployment)
    assert stack.db_secret not in stored
    assert "pw-" not in stored
    env_default = pool["base_job_template"]["variables"]["properties"]["env"]["default"]
    assert env_default["SALES_ETL_DATABASE_URL"] == (
        "{{ prefect.blocks.secret.sales-etl-database-url }}"
    )
    # What a docker worker computes for a flow run of nightly-docker (same code path).
    script = (
        "import asyncio, json\n"
        "from prefect.client.orchestration import get_client\n"
        "from prefect.workers.base import BaseJobConfiguration\n"
        "async def main():\n"
        "    async with get_client() as c:\n"
        f"        pool = await c.read_work_pool({DOCKER_POOL!r})\n"
        f"        dep = await c.read_deployment_by_name('{FLOW_NAME}/{DOCKER_DEPLOYMENT}')\n"
        "        cfg = await BaseJobConfiguration.from_template_and_values(\n"
        "            pool.base_job_template, dep.job_variables, client=c)\n"
        "        print(json.dumps(cfg.env))\n"
        "asyncio.run(main())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    env = json.loads(done.stdout.strip().splitlines()[-1])
    assert env["SALES_ETL_DATABASE_URL"] == stack.db_secret
    assert env["AWS_SECRET_ACCESS_KEY"].startswith("test-secret-")
    assert env["AWS_ENDPOINT_URL_S3"] == "http://s3:5000"  # the deployment's own env is kept


# --- one deployment run through the worker --------------------------------------------------------


def test_deployment_run_completes_with_expected_outputs(stack: Stack) -> None:
    run = _completed(stack)
    assert run["state"]["type"] == "COMPLETED", (
        f"{run['state']}\nworker log:\n{tail(stack.worker_log)}"
    )
    assert run["deployment_id"] == _deployment(stack, PROCESS_DEPLOYMENT)["id"]
    assert run["parameters"]["spark_master"] == "local[1]"
    assert_outputs_equal_clean_run(stack.workspace)
    expected_tasks = {"validate-files", "build-marts", "load-reporting-tables", "finish-run"}

    def task_names(runs: list[dict]) -> set[str]:
        return {t["name"].rsplit("-", 1)[0] for t in runs}

    # Task runs reach the API as events, possibly after the flow run's final state.
    runs = wait_until(
        lambda: task_runs(stack.server.api_url, stack.flow_run_id),
        lambda runs: expected_tasks <= task_names(runs),
        timeout=120,
        describe=f"task runs {sorted(expected_tasks)} of flow run {stack.flow_run_id}",
        show=lambda runs: repr(sorted(task_names(runs))),
    )
    names = task_names(runs)
    assert expected_tasks <= names


def test_run_publishes_its_report_as_artifacts(stack: Stack) -> None:
    found = _first_run(stack).artifacts
    assert set(found) == {
        "sales-etl-summary",
        "sales-etl-files",
        "sales-etl-rows",
        "sales-etl-months",
        "sales-etl-top-performers",
    }
    summary = found["sales-etl-summary"]
    assert summary["type"] == "markdown"
    text = summary["data"]
    assert "# Sales ETL run: Completed" in text
    assert "3 seen: 2 accepted, 1 rejected" in text
    assert "9 read: 7 loaded, 2 quarantined" in text
    assert "notes.txt" in text
    tables = {k: json.loads(a["data"]) for k, a in found.items() if a["type"] == "table"}
    files = {row["file"]: row for row in tables["sales-etl-files"]}
    assert files["to_process/notes.txt"]["outcome"] == "wrong_file_types"
    assert files["to_process/sales_b.csv"]["rows_quarantined"] == 2
    assert files["to_process/sales_a.csv"]["rows_loaded"] == 5
    rows = {(r["outcome"], r["reason"]): r["rows"] for r in tables["sales-etl-rows"]}
    assert rows == {
        ("loaded", ""): 7,
        ("quarantined", "total_cost_mismatch"): 1,
        ("quarantined", "unknown_customer_id"): 1,
    }
    assert [m["month"] for m in tables["sales-etl-months"]] == expected_months()
    expected_tops = sorted(
        (f"{r[3]}-{int(r[4]):02d}", int(r[0]), f"{r[1]} {r[2]}", r[5], r[6])
        for r in expected_tables()["sales_team_incentive"]
        if r[6] != "0.00"
    )
    assert (
        sorted(
            (t["month"], t["sales_person_id"], t["name"], t["total_sales"], t["incentive"])
            for t in tables["sales-etl-top-performers"]
        )
        == expected_tops
    )
    everything = json.dumps(list(found.values()))
    assert stack.db_secret not in everything


def test_run_log_has_the_flow_logs_and_no_spark_noise(stack: Stack) -> None:
    messages = [log["message"] for log in _first_run(stack).logs]
    assert any(SUMMARY_LINE in m for m in messages), messages
    noisy = [m for m in messages if SPARK_NOISE.search(m)]
    assert not noisy, noisy


# --- the UI ---------------------------------------------------------------------------------------


def _chromium(user_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    assert exe, "chromium is not installed: run `bash scripts/install-chromium.sh`"
    return subprocess.run(
        [
            exe,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={user_dir}",
            "--window-size=1440,1000",
            "--virtual-time-budget=20000",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_ui_shows_the_run_completed(stack: Stack, tmp_path: Path) -> None:
    run = _completed(stack)
    url = f"{stack.server.url}/runs/flow-run/{stack.flow_run_id}"

    def page_text() -> str:
        dom = _chromium(tmp_path / "profile-dom", "--dump-dom", url)
        return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", dom.stdout)))

    # The single-page app may need another render on a busy machine.
    text = wait_until(
        page_text,
        lambda text: (
            "Can't connect to Server API" not in text
            and all(part in text for part in (run["name"], "Completed", "Retry"))
        ),
        timeout=240,
        describe=f"the UI page of flow run {run['name']} showing Completed and Retry",
        interval=3,
        show=lambda text: text[:2000],
    )
    assert "Can't connect to Server API" not in text
    assert run["name"] in text, text[:2000]
    assert "Completed" in text, text[:2000]
    assert "Retry" in text  # a deployment run can be retried from its page
    ARTIFACTS_DIR.mkdir(exist_ok=True)
    shot = ARTIFACTS_DIR / "flow-run-completed.png"
    shot.unlink(missing_ok=True)
    done = _chromium(tmp_path / "profile-shot", f"--screenshot={shot}", url)
    assert shot.is_file() and shot.stat().st_size > 10_000, done.stderr[-2000:]


# --- retry of the same flow run -------------------------------------------------------------------


def test_retry_of_the_deployment_run_runs_again_without_duplicates(stack: Stack) -> None:
    first = _first_run(stack).run  # what the other tests read of the first run, read before
    assert first["state"]["type"] == "COMPLETED"
    out = cli(stack.env, "flow-run", "retry", stack.flow_run_id)
    assert "scheduled for retry" in out
    run = wait_for_state(
        stack.server.api_url,
        stack.flow_run_id,
        {"COMPLETED", "FAILED", "CRASHED"},
        RUN_TIMEOUT,
        on_tick=lambda: _check_worker_alive(stack),
        min_run_count=2,
    )
    assert run["state"]["type"] == "COMPLETED", f"{run['state']}\n{tail(stack.worker_log)}"
    assert run["id"] == first["id"]
    # Nothing was waiting any more: the retry found nothing to do and changed nothing.
    assert_outputs_equal_clean_run(stack.workspace)
    summaries = [
        a["data"]
        for a in artifacts(stack.server.api_url, stack.flow_run_id)
        if a["key"] == "sales-etl-summary"
    ]
    assert any("nothing to do" in s for s in summaries)
