#!/usr/bin/env bash
# Install everything sales-etl needs on a fresh Debian/Ubuntu machine (also used by the Dockerfile
# and by .ci/run). Idempotent: a second run only checks (a few seconds).
#   scripts/install.sh                the product: a venv (.venv) + the project and its dependencies
#   scripts/install.sh --dev          plus test tools and the services tests start (MariaDB, s3a jars)
#   scripts/install.sh --no-editable  a plain `pip install .` (images, users who do not edit the code);
#                                     also SALES_ETL_EDITABLE=0. Default: editable (`pip install -e .`)
#   scripts/install.sh --dry-run      print the interpreter and venv decisions, change nothing
# Environment: PYTHON=python3.12 (the interpreter; default: the first supported one of python3.11,
# python3.12, python3.13, python3), SALES_ETL_VENV (default .venv).
# A venv made by another interpreter than the chosen one (or an unsupported one) is rebuilt.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/apt.sh
source scripts/apt.sh

# Keep in step with requires-python in pyproject.toml (tests/test_packaging.py checks it).
SUPPORTED_MINORS=(11 12 13)
SUPPORTED_TEXT="3.11, 3.12 or 3.13"
CANDIDATES=(python3.11 python3.12 python3.13 python3)

DEV=0
DRY_RUN=0
EDITABLE="${SALES_ETL_EDITABLE:-1}"
for arg in "$@"; do
  case "$arg" in
    --dev) DEV=1 ;;
    --no-editable) EDITABLE=0 ;;
    --dry-run) DRY_RUN=1 ;;
    -h | --help)
      sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "install: unknown option '$arg' (known: --dev, --no-editable, --dry-run, --help)" >&2
      exit 2
      ;;
  esac
done
[[ $EDITABLE == 0 || $EDITABLE == false || $EDITABLE == no ]] && EDITABLE=0 || EDITABLE=1
VENV="${SALES_ETL_VENV:-.venv}"

# "3.11.7 /real/path/of/the/interpreter" of a python, or nothing when it does not run.
describe_python() {
  "$1" -c 'import os, sys; print("%d.%d.%d" % sys.version_info[:3], os.path.realpath(sys.executable))' 2>/dev/null || true
}
# Same for the interpreter a venv was made from (its sys._base_executable).
describe_venv() {
  "$1/bin/python" -c 'import os, sys; print("%d.%d.%d" % sys.version_info[:3], os.path.realpath(getattr(sys, "_base_executable", sys.executable)))' 2>/dev/null || true
}
is_supported() {
  local minor
  [[ $1 =~ ^3\.([0-9]+)\. ]] || return 1
  minor="${BASH_REMATCH[1]}"
  for m in "${SUPPORTED_MINORS[@]}"; do [[ $minor == "$m" ]] && return 0; done
  return 1
}

# --- the interpreter -------------------------------------------------------------------------------
if [[ -n "${PYTHON:-}" ]]; then
  info="$(describe_python "$PYTHON")"
  if [[ -z $info ]]; then
    echo "install: PYTHON=$PYTHON does not run; set PYTHON to a Python $SUPPORTED_TEXT interpreter (or unset it to pick one)" >&2
    exit 1
  fi
  if ! is_supported "$info"; then
    echo "install: PYTHON=$PYTHON is Python ${info%% *}; sales-etl supports $SUPPORTED_TEXT: set PYTHON to one of those (or unset it to pick one)" >&2
    exit 1
  fi
  chosen="$PYTHON"
else
  chosen=""
  tried=()
  for cand in "${CANDIDATES[@]}"; do
    if ! command -v "$cand" >/dev/null 2>&1; then
      continue
    fi
    info="$(describe_python "$cand")"
    if [[ -z $info ]]; then
      tried+=("$cand (does not run)")
    elif is_supported "$info"; then
      chosen="$cand"
      break
    else
      tried+=("$cand (${info%% *})")
    fi
  done
  if [[ -z $chosen ]]; then
    found="${tried[*]:-none of ${CANDIDATES[*]}}"
    echo "install: no supported Python ($SUPPORTED_TEXT) found (tried: $found): install one (Debian/Ubuntu: sudo apt-get install python3.11 python3.11-venv) or set PYTHON=/path/to/python3.x" >&2
    exit 1
  fi
fi
py_version="${info%% *}"
py_path="${info#* }"
echo "install: Python $py_version ($py_path, from ${PYTHON:+PYTHON=}$chosen)"

# --- Java: Spark 4 needs 17 or 21 ------------------------------------------------------------------
if command -v java >/dev/null 2>&1; then
  echo "install: $(java -version 2>&1 | head -1)"
elif [[ $DRY_RUN == 1 ]]; then
  echo "install: no java found; would install default-jdk-headless from Debian"
else
  echo "install: no java found; installing a headless JDK (default-jdk-headless) from Debian" >&2
  apt_install install default-jdk-headless
  echo "install: $(java -version 2>&1 | head -1)"
fi

# --- the venv --------------------------------------------------------------------------------------
rebuild=0
if [[ -e "$VENV/pyvenv.cfg" || -e "$VENV/bin/python" ]]; then
  venv_info="$(describe_venv "$VENV")"
  if [[ -z $venv_info ]]; then
    echo "install: $VENV is broken (its python does not run, e.g. its interpreter was removed): rebuilding it with Python $py_version"
    rebuild=1
  elif [[ $venv_info != "$info" ]]; then
    echo "install: $VENV was made by Python ${venv_info%% *} (${venv_info#* }), not the chosen Python $py_version ($py_path): rebuilding it"
    rebuild=1
  else
    echo "install: $VENV exists (Python $py_version): keeping it"
  fi
  if [[ $rebuild == 1 && ! -e "$VENV/pyvenv.cfg" ]]; then
    echo "install: $VENV is not a venv (no pyvenv.cfg); move it away or set SALES_ETL_VENV to another folder" >&2
    exit 1
  fi
elif [[ -e "$VENV" && -n "$(ls -A "$VENV" 2>/dev/null)" ]]; then
  echo "install: $VENV exists but is not a venv (no pyvenv.cfg); move it away or set SALES_ETL_VENV to another folder" >&2
  exit 1
else
  echo "install: creating $VENV with Python $py_version"
  rebuild=1
fi

mode=$([[ $EDITABLE == 1 ]] && echo editable || echo plain)
extras=$([[ $DEV == 1 ]] && echo "[dev]" || true)
stamp="$VENV/.sales-etl-installed"
# The stamp holds "<mode> <extras>"; an install is current when the mode matches, the extras
# asked for are there, and neither the project metadata nor (plain installs copy the code) the
# code changed since.
install_current() {
  [[ $rebuild == 0 && -f $stamp ]] || return 1
  local have
  have="$(cat "$stamp")"
  [[ ${have%% *} == "$mode" ]] || return 1
  [[ -z $extras || $have == *"$extras"* ]] || return 1
  [[ -z "$(find pyproject.toml setup.py -newer "$stamp")" ]] || return 1
  if [[ $mode == plain ]]; then
    [[ -z "$(find sales_etl flows tasks validators -type f -newer "$stamp" -not -path '*/__pycache__/*' | head -1)" ]] || return 1
  fi
  return 0
}

if [[ $DRY_RUN == 1 ]]; then
  if install_current; then
    echo "install: dry run: sales-etl ($mode${extras:+, $extras}) is installed in $VENV; nothing to do"
  else
    echo "install: dry run: would $([[ $rebuild == 1 ]] && echo "(re)create $VENV and ")install sales-etl ($mode${extras:+, $extras}) into it"
  fi
  exit 0
fi

if [[ $rebuild == 1 ]]; then
  # Debian splits ensurepip (hence `python -m venv`) into python3.X-venv.
  if ! "$chosen" -c 'import ensurepip' >/dev/null 2>&1; then
    echo "install: Python $py_version has no venv support (ensurepip); installing python3.${py_version#3.}-venv" >&2
    minor="${py_version#3.}"
    apt_install install "python3.${minor%%.*}-venv"
  fi
  "$chosen" -m venv --clear "$VENV"
fi

if install_current; then
  echo "install: sales-etl ($mode${extras:+, $extras}) already installed in $VENV"
else
  spec="."
  [[ $EDITABLE == 1 ]] && spec="-e ."
  if [[ $rebuild == 1 ]]; then
    echo "install: installing sales-etl ($mode${extras:+, $extras}) and ~1.5 GB of dependencies (Spark, Prefect, pandas...) into $VENV (pip install $spec$extras): a few minutes on a fresh machine, ~1-3 min from pip's cache"
  else
    echo "install: updating sales-etl ($mode${extras:+, $extras}) in $VENV (pip install $spec$extras; the project, its settings or the mode changed since the last install)"
  fi
  start=$SECONDS
  rm -f "$stamp"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
  if [[ $EDITABLE == 1 ]]; then
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e ".${extras}"
  else
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check ".${extras}"
  fi
  echo "$mode ${extras}" >"$stamp"
  echo "install: installed in $((SECONDS - start)) s ($(du -sh "$VENV" 2>/dev/null | cut -f1) in $VENV)"
fi
# Cheap proof the installed package is whole (a lost sub-package fails here, not at the first run).
# find_spec locates each module without running it (importing the flow would start Prefect: ~10 s).
# -I: not the current folder first (from the checkout, ./sales_etl would hide the installed one).
if ! "$VENV/bin/python" -I - <<'PY'; then
import importlib.metadata
import importlib.util

names = ["sales_etl.cli", "sales_etl.db.engine", "sales_etl.storage.factory",
         "sales_etl.flows.sales_flow", "sales_etl.rules.transform", "sales_etl.validators.builtin"]
missing = [name for name in names if importlib.util.find_spec(name) is None]
if missing:
    raise SystemExit(f"install: the installed sales-etl lacks {', '.join(missing)}")
print("install: sales-etl", importlib.metadata.version("sales-etl"), "found")
PY
  echo "install: the sales-etl in $VENV is incomplete; reinstall: rm $stamp && bash scripts/install.sh" >&2
  exit 1
fi

if [[ $DEV == 1 ]]; then
  for extra in scripts/install-*.sh; do
    [[ -e "$extra" ]] && bash "$extra"
  done
fi
echo "install: ready ($VENV, Python $py_version, $mode)"
echo "install: the commands are in $VENV/bin: run  . $VENV/bin/activate  to put sales-etl and prefect on PATH (or call $VENV/bin/sales-etl)"
