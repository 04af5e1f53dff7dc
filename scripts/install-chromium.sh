#!/usr/bin/env bash
# Headless Chromium for tests/test_deployment.py (it renders the Prefect UI's flow-run page).
# Run by `scripts/install.sh --dev` (hence by scripts/test.sh and .ci/run). Idempotent.
# Debian's `chromium` package; no browser build is downloaded from anywhere else.
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
  echo "install-chromium: $(chromium --version 2>/dev/null | head -1)"
  exit 0
fi
if [[ $(id -u) != 0 ]]; then
  echo "install-chromium: chromium is missing; run as root: apt-get install chromium" >&2
  exit 1
fi
echo "install-chromium: installing chromium from Debian" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  chromium fonts-dejavu-core >/dev/null
echo "install-chromium: $(chromium --version 2>/dev/null | head -1)"
