#!/usr/bin/env bash
# What the S3 / MySQL integration tests need on a fresh Debian machine (run by
# `scripts/install.sh --dev`, hence by scripts/test.sh and .ci/run). Idempotent.
#   - MariaDB server binaries (mariadbd, mariadb-install-db): the tests start their own server
#     on a private datadir and a free 127.0.0.1 port; no system service is enabled or started.
#   - moto's S3 server (moto_server) in the venv: the tests start it on a free 127.0.0.1 port.
#   - the s3a jars for Spark (scripts/fetch-jars.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${SALES_ETL_VENV:-.venv}"

# shellcheck source=scripts/apt.sh
source scripts/apt.sh

if ! command -v mariadbd >/dev/null 2>&1 && [[ ! -x /usr/sbin/mariadbd ]]; then
  echo "install-services: installing mariadb-server from Debian (binaries only, no service started)" >&2
  need_root install-services "sudo bash scripts/install-services.sh"
  # The tests start their own server; keep the package's post-install from starting a system
  # one (Debian's policy-rc.d protocol: exit 101 = "do not start services now").
  added_policy=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null
    as_root chmod 755 /usr/sbin/policy-rc.d
    added_policy=1
  fi
  apt_install install-services mariadb-server || {
    [[ $added_policy == 1 ]] && as_root rm -f /usr/sbin/policy-rc.d
    exit 1
  }
  [[ $added_policy == 1 ]] && as_root rm -f /usr/sbin/policy-rc.d
fi
if ! command -v mvn >/dev/null 2>&1; then
  echo "install-services: installing Maven from Debian (for scripts/fetch-jars.sh)" >&2
  apt_install install-services maven
fi

if [[ ! -x "$VENV/bin/moto_server" ]]; then
  echo "install-services: installing moto[server] into $VENV" >&2
  "$VENV/bin/python" -m pip install -q "moto[server]>=5.0,<6"
fi

bash scripts/fetch-jars.sh "$VENV/bin/python"
echo "install-services: mariadbd $(/usr/sbin/mariadbd --version 2>/dev/null | awk '{print $3}'), moto_server, s3a jars ready"
