#!/usr/bin/env bash
# The test command (README and .ci/run both call this): installs what the tests need, then pytest.
#
# With no arguments it runs the whole suite as two pytest sessions side by side: the SIGKILL
# modules (SIGKILL_MODULES: each drives the real CLI in subprocesses against its own Prefect
# server, workspaces and, for S3 + MariaDB, its own services) in one, everything else in the
# other, each with its own --basetemp. Serially the suite took 61 min on this 2-core machine
# (57 of pytest, 497 tests then; ~20 of them the SIGKILL modules), and much of a SIGKILL test waits
# for JVMs and servers to start, so the two overlap well. Exit status: non-zero when either session failed. With arguments, one session:
# `bash scripts/test.sh tests/test_transform.py -k month` (what you iterate with);
# `make test-fast` is `bash scripts/test.sh -m "not slow"` (no flows, servers or containers).
# The full suite passes --fail-on-skip (tests/conftest.py): a test skipped there fails; and
# --durations, so that every CI log shows where the time goes (the budget is 50 minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh --dev
export PREFECT_SERVER_ANALYTICS_ENABLED=false
.venv/bin/ruff check .
.venv/bin/ruff format --check .
if [ "$#" -gt 0 ]; then
    exec .venv/bin/python -m pytest -q "$@"
fi

SIGKILL_MODULES=(tests/test_crash_recovery.py tests/test_replay_crash.py)
work=$(mktemp -d "${TMPDIR:-/tmp}/sales-etl-tests.XXXXXX")
ignore=()
for module in "${SIGKILL_MODULES[@]}"; do ignore+=("--ignore=$module"); done

.venv/bin/python -m pytest -q -p no:cacheprovider --fail-on-skip --durations=15 --basetemp "$work/sigkill" \
    "${SIGKILL_MODULES[@]}" > "$work/sigkill.log" 2>&1 &
sigkill_pid=$!
set +e
.venv/bin/python -m pytest -q --fail-on-skip --durations=40 --basetemp "$work/main" "${ignore[@]}" tests
main_status=$?
wait "$sigkill_pid"
sigkill_status=$?
set -e
echo
echo "=== the SIGKILL modules (${SIGKILL_MODULES[*]}), run beside the session above ==="
cat "$work/sigkill.log"
echo "test sessions: main exit $main_status, SIGKILL modules exit $sigkill_status"
rm -rf "$work"
[ "$main_status" -eq 0 ] && [ "$sigkill_status" -eq 0 ]
