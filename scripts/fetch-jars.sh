#!/usr/bin/env bash
# Fetch the s3a connector for pyspark into .jars/ (or $SALES_ETL_JARS_DIR): hadoop-aws of the
# Hadoop version bundled in the installed pyspark wheel, plus the AWS SDK v2 modules s3a uses
# (not the 686 MB SDK bundle), from Maven Central through Maven (scripts/pom.xml). Idempotent: when the jars for that Hadoop version are
# already there, it only checks. sales_etl.spark.start_spark puts every jar of that folder on
# Spark's class path. Used by scripts/install-services.sh (tests) and by the Docker image.
#   scripts/fetch-jars.sh [PYTHON]     PYTHON defaults to .venv/bin/python
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"

PY="${1:-${SALES_ETL_PYTHON:-$ROOT/.venv/bin/python}}"
JARS_DIR="${SALES_ETL_JARS_DIR:-$ROOT/.jars}"

pyspark_jars="$("$PY" -c 'import os, pyspark; print(os.path.join(os.path.dirname(pyspark.__file__), "jars"))')"
api_jar="$(ls "$pyspark_jars"/hadoop-client-api-*.jar 2>/dev/null | head -1 || true)"
if [[ -z "$api_jar" ]]; then
  echo "fetch-jars: no hadoop-client-api-*.jar in $pyspark_jars; cannot tell pyspark's Hadoop version" >&2
  exit 1
fi
hadoop_version="$(basename "$api_jar" .jar)"
hadoop_version="${hadoop_version#hadoop-client-api-}"

stamp="$JARS_DIR/.fetched-hadoop-aws-$hadoop_version"
# The stamp names the pom's hash too: a changed jar set (scripts/pom.xml) is fetched anew.
stamp="$stamp-$(sha256sum "$ROOT/scripts/pom.xml" | cut -c1-12)"
if [[ -f "$stamp" && -f "$JARS_DIR/hadoop-aws-$hadoop_version.jar" ]] && ls "$JARS_DIR"/s3-2.*.jar >/dev/null 2>&1; then
  echo "fetch-jars: hadoop-aws $hadoop_version and the AWS SDK modules are in $JARS_DIR"
  exit 0
fi

if ! command -v mvn >/dev/null 2>&1; then
  echo "fetch-jars: Maven (mvn) not found; installing it from Debian" >&2
  # shellcheck source=scripts/apt.sh
  source "$ROOT/scripts/apt.sh"
  apt_install fetch-jars maven
fi

echo "fetch-jars: pyspark bundles Hadoop $hadoop_version; fetching hadoop-aws $hadoop_version and the AWS SDK modules into $JARS_DIR"
mkdir -p "$JARS_DIR"
tmp="$(mktemp -d "$JARS_DIR/.fetch.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
mvn -q -B -Dstyle.color=never -f "$ROOT/scripts/pom.xml" \
  -Dhadoop.version="$hadoop_version" \
  dependency:copy-dependencies \
  -DincludeScope=runtime \
  -DexcludeGroupIds=io.netty,org.slf4j,org.apache.httpcomponents,commons-codec,commons-logging \
  -DoutputDirectory="$tmp"
if [[ ! -f "$tmp/hadoop-aws-$hadoop_version.jar" ]] || ! ls "$tmp"/s3-2.*.jar >/dev/null 2>&1; then
  echo "fetch-jars: Maven did not deliver hadoop-aws-$hadoop_version.jar and s3-2.*.jar" >&2
  exit 1
fi
# Replace the folder's jars only once the whole set downloaded (a stale version would clash).
find "$JARS_DIR" -maxdepth 1 \( -name '*.jar' -o -name '.fetched-hadoop-aws-*' \) -delete
mv "$tmp"/*.jar "$JARS_DIR"/
touch "$stamp"
ls -1 "$JARS_DIR"/*.jar | sed 's/^/fetch-jars:   /'
