#!/usr/bin/env bash
# The test command (README and .ci/run both call this): installs what the tests need, then pytest.
#
# With no arguments it runs the whole suite as two pytest sessions side by side, each with its
# own --basetemp: SIDE_MODULES in one, everything else in the other. SIDE_MODULES only drive
# `sales-etl`, `prefect` and pip in subprocesses (no fixture shared with the other session: no
# SparkSession, Prefect API, moto or MariaDB started twice): the SIGKILL modules (each with its
# own Prefect server, workspaces and, for S3 + MariaDB, services), the bench's end-to-end test
# and the installed wheel's test. The last two balance the sessions: in CI on 2026-11-30 the main
# session took 53 min and the side one (the SIGKILL modules alone) 30, so the main one ran alone
# for 23 min. Serially the suite took 61 min (497 tests then); much of a subprocess test waits
# for JVMs and servers to start, so the two sessions overlap well. Exit status: non-zero when
# either session failed. With arguments, one session:
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

SIDE_MODULES=(
    tests/test_crash_recovery.py tests/test_replay_crash.py tests/test_bench.py tests/test_packaging.py
)
work=$(mktemp -d "${TMPDIR:-/tmp}/sales-etl-tests.XXXXXX")
ignore=()
for module in "${SIDE_MODULES[@]}"; do ignore+=("--ignore=$module"); done

.venv/bin/python -m pytest -q -p no:cacheprovider --fail-on-skip --durations=15 --basetemp "$work/side" \
    "${SIDE_MODULES[@]}" > "$work/side.log" 2>&1 &
side_pid=$!
set +e
.venv/bin/python -m pytest -q --fail-on-skip --durations=40 --basetemp "$work/main" "${ignore[@]}" tests
main_status=$?
wait "$side_pid"
side_status=$?
set -e
echo
echo "=== the side session (${SIDE_MODULES[*]}), run beside the session above ==="
cat "$work/side.log"
echo "test sessions: main exit $main_status, side session exit $side_status"
rm -rf "$work"
[ "$main_status" -eq 0 ] && [ "$side_status" -eq 0 ]
