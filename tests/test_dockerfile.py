"""The image's recipe, checked without a Docker engine: hadolint, non-root user, no secrets,
the jar script CI runs and a non-editable install, a build context that has what COPY needs,
an entrypoint that runs `sales-etl` or any other command (a Prefect docker worker's), and a
docker-compose stack that agrees with prefect.yaml and pyproject.toml. The built image itself is
tested in tests/test_container*.py."""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
DOCKERFILE = REPO / "Dockerfile"
VENV_BIN = Path(sys.executable).parent
SECRET_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|ACCESS_KEY|PRIVATE|CREDENTIAL", re.I)
URL_WITH_PASSWORD = re.compile(r"://[^/\s:@]+:[^@\s/]+@")


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            result.append((word.upper(), rest.strip()))
    return result


def stages() -> list[list[tuple[str, str]]]:
    found: list[list[tuple[str, str]]] = []
    for instruction in instructions():
        if instruction[0] == "FROM":
            found.append([])
        if found:
            found[-1].append(instruction)
    return found


def project_version() -> str:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]


def env_pairs(args: str) -> list[tuple[str, str]]:
    return re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=(\"[^\"]*\"|\S*)", args)


def test_hadolint_is_clean() -> None:
    hadolint = shutil.which("hadolint", path=str(VENV_BIN)) or shutil.which("hadolint")
    assert hadolint, "hadolint is not installed: run `bash scripts/install-hadolint.sh`"
    done = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and not done.stdout.strip(), done.stdout + done.stderr


def test_base_image_java_and_install_scripts() -> None:
    args = [rest for word, rest in instructions() if word == "ARG"]
    assert "PYTHON_IMAGE=python:3.11-slim-trixie" in args
    build, final = stages()
    assert build[0][1].startswith("${PYTHON_IMAGE}") and final[0][1] == "${PYTHON_IMAGE}"
    build_runs = " ".join(rest for word, rest in build if word == "RUN")
    # The s3a jars come from the script CI runs; the project is installed non-editable.
    assert "scripts/fetch-jars.sh" in build_runs
    assert re.search(r"pip install -q \.( |$)", build_runs) and " -e " not in build_runs
    for script in ("fetch-jars.sh", "docker-entrypoint.sh"):
        assert (REPO / "scripts" / script).is_file(), script
    final_runs = " ".join(rest for word, rest in final if word == "RUN")
    # trixie has no openjdk-17; Debian's default Java runtime exists on both. No JDK, no Maven.
    assert "default-jre-headless" in final_runs and "openjdk-17" not in final_runs
    assert "jdk" not in final_runs and "maven" not in final_runs
    assert any(w == "COPY" and r.startswith("--from=build") for w, r in final)
    env = dict(pair for word, rest in final if word == "ENV" for pair in env_pairs(rest))
    assert env["JAVA_HOME"] == "/usr/lib/jvm/default-java"
    assert env["SALES_ETL_HOME"] == "/opt/sales-etl"  # prefect.yaml's pull step directory
    labels = " ".join(rest for word, rest in final if word == "ARG")
    assert f"SALES_ETL_VERSION={project_version()}" in labels


def test_runs_as_a_non_root_user_with_the_sales_etl_entrypoint() -> None:
    final = stages()[-1]
    users = [rest for word, rest in final if word == "USER"]
    assert users, "the final stage sets USER"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}
    assert final[-2][0] == "ENTRYPOINT" or any(w == "ENTRYPOINT" for w, _ in final)
    entrypoint = [rest for word, rest in final if word == "ENTRYPOINT"][-1]
    assert "/opt/sales-etl/scripts/docker-entrypoint.sh" in entrypoint
    assert [rest for word, rest in final if word == "CMD"][-1] == '["run"]'
    # Nothing after USER switches back to root.
    after = final[[w for w, _ in final].index("USER") :]
    assert not any(w == "USER" and r.split(":")[0] in {"root", "0"} for w, r in after)


def test_no_secrets_in_env_or_arg() -> None:
    for word, rest in instructions():
        if word not in {"ENV", "ARG", "LABEL"}:
            continue
        pairs = env_pairs(rest) or [(rest.split("=", 1)[0], rest.partition("=")[2])]
        for name, value in pairs:
            assert not SECRET_NAME.search(name), f"{word} {name} looks like a secret"
            assert not URL_WITH_PASSWORD.search(value), f"{word} {name} holds a URL password"


def _ignored(path: str, patterns: list[str]) -> bool:
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/").removeprefix("**/")
        parts = path.split("/")
        hit = any(
            fnmatch.fnmatch("/".join(parts[i : j + 1]), pattern)
            for i in range(len(parts))
            for j in range(i, len(parts))
        )
        if hit:
            ignored = not negate
    return ignored


def test_build_context_has_what_copy_needs_and_nothing_secret() -> None:
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for needed in ("pyproject.toml", "README.md", "prefect.yaml", "scripts/install.sh"):
        assert not _ignored(needed, patterns), needed
    for word, rest in instructions():
        if word == "COPY" and not rest.startswith("--from"):
            for source in rest.split()[:-1]:
                assert (REPO / source).exists(), f"COPY source {source} missing"
                assert not _ignored(source, patterns), f"COPY source {source} is ignored"
    for private in (".venv", ".git", ".env", "data", ".jars", "test-artifacts", "x/__pycache__"):
        assert _ignored(private, patterns), f"{private} would be sent to the build"


@pytest.mark.parametrize(
    ("argv", "expect"),
    [
        (["--help"], "usage: sales-etl"),
        (["init-db", "--help"], "usage: sales-etl init-db"),
        (["prefect", "version"], "Version:"),
        (["python", "-c", "print('as given')"], "as given"),
    ],
)
def test_entrypoint_runs_sales_etl_or_the_given_command(argv: list[str], expect: str) -> None:
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run(
        ["sh", str(REPO / "scripts" / "docker-entrypoint.sh"), *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert expect in done.stdout


def test_compose_stack_agrees_with_prefect_yaml_and_the_image() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    deploy = yaml.safe_load((REPO / "prefect.yaml").read_text())
    services = compose["services"]
    assert {"prefect-server", "mariadb", "s3", "setup", "worker"} <= set(services)
    image = f"sales-etl:{project_version()}"
    docker_deployment = next(d for d in deploy["deployments"] if d["name"] == "nightly-docker")
    assert docker_deployment["work_pool"]["job_variables"]["image"] == image
    assert services["worker"]["image"] == image and services["worker"]["build"]
    assert docker_deployment["work_pool"]["job_variables"]["networks"] == [
        compose["networks"]["default"]["name"]
    ]
    pools = {d["work_pool"]["name"] for d in deploy["deployments"]}
    assert "--pool sales-etl-process" in services["worker"]["command"]
    assert "--pool sales-etl-docker" in services["docker-worker"]["command"]
    assert {"sales-etl-process", "sales-etl-docker"} == pools
    # The server image runs the Prefect version the project pins in prefect.yaml.
    assert services["prefect-server"]["image"].startswith(
        f"prefecthq/prefect:{deploy['prefect-version']}-"
    )
    # Credentials are variables with local-only defaults, never literal values.
    for name, service in services.items():
        for key, value in (service.get("environment") or {}).items():
            if str(value).lower() in {"yes", "no", "true", "false"}:
                continue  # a switch such as MARIADB_RANDOM_ROOT_PASSWORD, not a secret
            if SECRET_NAME.search(key) or URL_WITH_PASSWORD.search(str(value)):
                assert "${" in str(value), f"{name}: {key} is a literal secret"
