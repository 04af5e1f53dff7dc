#!/usr/bin/env bash
# Install everything sales-etl needs on a fresh Debian machine (also used by the Dockerfile
# and by .ci/run). Idempotent: a second run only checks.
#   scripts/install.sh          the product (venv + Python packages)
#   scripts/install.sh --dev    plus test tools and the services tests start (MariaDB, s3a jars)
set -euo pipefail
cd "$(dirname "$0")/.."

DEV=0
[[ "${1:-}" == "--dev" ]] && DEV=1
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
VENV="${SALES_ETL_VENV:-.venv}"

# Java: Spark 4 needs 17 or 21.
if ! command -v java >/dev/null 2>&1; then
  echo "install: no java found; installing a headless JDK from Debian" >&2
  apt-get update -qq && apt-get install -y -qq --no-install-recommends default-jdk-headless >/dev/null
fi
java -version 2>&1 | head -1

"$PYTHON" - <<'PY'
import sys
if sys.version_info[:2] < (3, 11):
    sys.exit(f"install: Python >= 3.11 needed, found {sys.version.split()[0]}")
PY

if [[ ! -x "$VENV/bin/python" ]]; then
  "$PYTHON" -m venv "$VENV"
fi
extras=""
[[ $DEV == 1 ]] && extras="[dev]"
stamp="$VENV/.installed${extras}"
if [[ ! -f "$stamp" || pyproject.toml -nt "$stamp" ]]; then
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -e ".${extras}"
  touch "$stamp"
fi

if [[ $DEV == 1 ]]; then
  for extra in scripts/install-*.sh; do
    [[ -e "$extra" ]] && bash "$extra"
  done
fi
echo "install: ready ($VENV)"
