#!/usr/bin/env bash
# Build the sales-etl image with podman on a machine without a Docker engine or a reachable image
# registry (tests/test_container*.py call it; ../shared/NOTES.md, "Containers"):
#   1. a base image per Debian suite, made from Debian packages (debootstrap), standing in for the
#      official python image: bookworm -> Python 3.11 (python:3.11-slim), trixie -> Python 3.13;
#   2. the unchanged Dockerfile on it: podman build --build-arg PYTHON_IMAGE=<that base>.
#
#   scripts/build-images.sh [--base-only] [SUITE...]   SUITE: bookworm, trixie; default both
#
# Images: localhost/sales-etl-base:SUITE and localhost/sales-etl:VERSION-SUITE; the bookworm one is
# also tagged localhost/sales-etl:VERSION (the tag prefect.yaml's nightly-docker runs).
# Cache: each image carries the label sales-etl.inputs, a SHA-256 of everything it is built from
# (base: this script's base recipe, the suite, the machine's extra CA certificates; app: the
# Dockerfile, .dockerignore, every file its COPY lines take and the base image's id). A build
# whose inputs did not change is skipped; podman's layer cache speeds up the others.
# Prints one line per image: "build-images: <tag> <built|cached> <seconds> s <size>".
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
VERSION="$(sed -n 's/^version *= *"\(.*\)"/\1/p' pyproject.toml | head -1)"
BASE_ONLY=0
if [[ "${1:-}" == --base-only ]]; then
  BASE_ONLY=1
  shift
fi
SUITES=("$@")
((${#SUITES[@]})) || SUITES=(bookworm trixie)

# The base recipe: what python:3.11-slim gives (python3, venv, pip, CA certificates), plus the
# machine's extra CA certificates (registries are reached through a TLS-inspecting proxy) and
# PIP_CERT/REQUESTS_CA_BUNDLE so that pip trusts them too.
BASE_CONTAINERFILE='ARG ROOTFS_IMAGE
FROM ${ROOTFS_IMAGE}
ENV LANG=C.UTF-8 \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
COPY certs/ /usr/local/share/ca-certificates/
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      python3 python3-venv python3-pip ca-certificates \
 && update-ca-certificates \
 && rm -rf /var/lib/apt/lists/*
CMD ["python3"]'

label_of() { podman image inspect --format '{{ index .Labels "sales-etl.inputs" }}' "$1" 2>/dev/null || true; }
size_of() { podman image inspect --format '{{ .Size }}' "$1" | awk '{printf "%.0f MB", $1 / 1e6}'; }

base_inputs() {  # suite -> hash
  {
    echo "suite $1 mirror $MIRROR"
    echo "$BASE_CONTAINERFILE"
    cat /usr/local/share/ca-certificates/*.crt 2>/dev/null || true
  } | sha256sum | cut -d' ' -f1
}

app_inputs() {  # base image id -> hash of the Dockerfile, .dockerignore and what COPY takes
  python3 - "$1" <<'PY'
import hashlib, os, re, sys

base_id = sys.argv[1]
digest = hashlib.sha256(f"base {base_id}\n".encode())
text = re.sub(r"\\\n", " ", open("Dockerfile").read())
sources = []
for line in text.splitlines():
    words = line.split()
    if words and words[0].upper() == "COPY" and not any(w.startswith("--from") for w in words):
        sources += [w for w in words[1:-1] if not w.startswith("--")]
for path in ["Dockerfile", ".dockerignore", *sources]:
    files = [path] if os.path.isfile(path) else sorted(
        os.path.join(d, f) for d, _, fs in os.walk(path) for f in fs
        if "__pycache__" not in d and not f.endswith(".pyc")
    )
    for name in files:
        digest.update(name.encode() + b"\0" + open(name, "rb").read() + b"\0")
print(digest.hexdigest())
PY
}

build_base() {  # suite
  local suite="$1" tag="localhost/sales-etl-base:$1" inputs started work
  inputs="$(base_inputs "$suite")"
  started=$SECONDS
  if [[ "$(label_of "$tag")" == "$inputs" ]]; then
    echo "build-images: $tag cached $((SECONDS - started)) s $(size_of "$tag")"
    return
  fi
  work="$(mktemp -d /var/tmp/sales-etl-base.XXXXXX)"
  trap 'rm -rf "$work"' RETURN
  echo "build-images: debootstrap $suite (minbase) from $MIRROR" >&2
  debootstrap --variant=minbase "$suite" "$work/rootfs" "$MIRROR" >"$work/debootstrap.log" 2>&1 ||
    { tail -20 "$work/debootstrap.log" >&2; exit 1; }
  rm -rf "$work/rootfs/var/cache/apt/archives/"*.deb "$work/rootfs/var/lib/apt/lists/"*
  tar -C "$work/rootfs" -c . | podman import - "localhost/debian-$suite:minbase" >/dev/null
  rm -rf "$work/rootfs"
  mkdir -p "$work/context/certs"
  cp /usr/local/share/ca-certificates/*.crt "$work/context/certs/" 2>/dev/null || true
  echo "$BASE_CONTAINERFILE" >"$work/context/Containerfile"
  podman build --network host --quiet \
    --build-arg "ROOTFS_IMAGE=localhost/debian-$suite:minbase" \
    --label "sales-etl.inputs=$inputs" -t "$tag" "$work/context" >/dev/null
  echo "build-images: $tag built $((SECONDS - started)) s $(size_of "$tag")"
}

build_app() {  # suite
  local suite="$1" base="localhost/sales-etl-base:$1" tag="localhost/sales-etl:$VERSION-$1"
  local inputs started
  inputs="$(app_inputs "$(podman image inspect --format '{{ .Id }}' "$base")")"
  started=$SECONDS
  if [[ "$(label_of "$tag")" != "$inputs" ]]; then
    echo "build-images: building $tag on $base" >&2
    podman build --network host --layers \
      --build-arg "PYTHON_IMAGE=$base" \
      --label "sales-etl.inputs=$inputs" -t "$tag" "$ROOT" >&2
    state=built
  else
    state=cached
  fi
  if [[ "$suite" == bookworm ]]; then
    podman tag "$tag" "localhost/sales-etl:$VERSION"
  fi
  echo "build-images: $tag $state $((SECONDS - started)) s $(size_of "$tag")"
}

for suite in "${SUITES[@]}"; do
  case "$suite" in
    bookworm | trixie) ;;
    *) echo "build-images: unknown suite '$suite' (bookworm or trixie)" >&2; exit 2 ;;
  esac
  build_base "$suite"
  [[ $BASE_ONLY == 1 ]] || build_app "$suite"
done
