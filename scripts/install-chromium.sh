#!/usr/bin/env bash
# Headless Chromium for tests/test_deployment.py (it renders the Prefect UI's flow-run page).
# Run by `scripts/install.sh --dev` (hence by scripts/test.sh and .ci/run). Idempotent.
# Debian's `chromium` package; no browser build is downloaded from anywhere else.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/apt.sh
source scripts/apt.sh

if command -v chromium >/dev/null 2>&1; then
  echo "install-chromium: $(chromium --version 2>/dev/null | head -1)"
  exit 0
fi
echo "install-chromium: installing chromium from Debian" >&2
apt_install install-chromium chromium fonts-dejavu-core
echo "install-chromium: $(chromium --version 2>/dev/null | head -1)"
