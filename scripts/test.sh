#!/usr/bin/env bash
# The test command (README and .ci/run both call this): installs what the tests need, then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh --dev
export PREFECT_SERVER_ANALYTICS_ENABLED=false
.venv/bin/ruff check .
.venv/bin/ruff format --check .
exec .venv/bin/python -m pytest -q "$@"
