#!/usr/bin/env bash
# What the container tests (tests/test_container*.py) need on a fresh Debian machine without a
# Docker engine; run by `scripts/install.sh --dev` (hence by `make test` and .ci/run). Idempotent:
# a second run only checks (about a second).
#   - podman (builds the Dockerfile, runs the image, serves the Docker API), runc, debootstrap
#     (base images from Debian packages: scripts/build-images.sh), from Debian.
#   - /etc/containers/containers.conf: runc instead of crun (crun refuses this kind of machine's
#     hybrid cgroups) and rlimits no higher than the machine's (see ../shared/NOTES.md,
#     "Containers without a Docker engine").
#   - prefect-docker (the docker worker of tests/test_container_worker.py) and podman-compose
#     (`podman-compose config` validates docker-compose.yml; Debian 12's 1.0.3 has no `config`),
#     in the test venv only: the image and the product do not need them.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${SALES_ETL_VENV:-.venv}"

SUDO=""
[[ $(id -u) -ne 0 ]] && SUDO="sudo -n"

missing=()
for tool in podman runc debootstrap; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if ((${#missing[@]})); then
  echo "install-containers: installing ${missing[*]} from Debian" >&2
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    podman runc debootstrap uidmap fuse-overlayfs slirp4netns >/dev/null
fi

conf=/etc/containers/containers.conf
want="$(
  cat <<'CONF'
# Written by sales-etl's scripts/install-containers.sh (../shared/NOTES.md, "Containers").
[containers]
# A container may not raise rlimits above the machine's: podman's defaults are higher.
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]

[engine]
# crun refuses this machine's hybrid cgroups; runc works.
runtime = "runc"
CONF
)"
if [[ ! -f "$conf" ]] || [[ "$(cat "$conf")" != "$want" ]]; then
  if [[ -f "$conf" ]] && ! grep -q "sales-etl's scripts/install-containers.sh" "$conf"; then
    $SUDO cp "$conf" "$conf.before-sales-etl"
    echo "install-containers: kept the previous $conf as $conf.before-sales-etl" >&2
  fi
  echo "$want" | $SUDO tee "$conf" >/dev/null
  echo "install-containers: wrote $conf (runtime runc, default ulimits)" >&2
fi

# (a dist-info folder, not an import: importing prefect takes ~20 s on a loaded machine)
if [[ -x "$VENV/bin/python" ]] && { [[ ! -x "$VENV/bin/podman-compose" ]] ||
  ! compgen -G "$VENV/lib/python3*/site-packages/prefect_docker-*.dist-info" >/dev/null; }; then
  echo "install-containers: installing prefect-docker and podman-compose into $VENV (test venv only)" >&2
  "$VENV/bin/python" -m pip install -q "prefect-docker>=0.6,<0.8" "podman-compose>=1.2,<2"
fi
echo "install-containers: $(podman --version), $(runc --version | head -1), debootstrap, podman-compose ready"
