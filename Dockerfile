# syntax=docker/dockerfile:1
# The sales-etl image: the `sales-etl` command, the Prefect flow and a Prefect worker, a Java
# runtime for Spark and the s3a connector jars (hadoop-aws + the AWS SDK modules it uses,
# scripts/fetch-jars.sh, the script CI runs). The project is installed non-editable into the venv
# /opt/sales-etl/.venv; /opt/sales-etl also holds prefect.yaml (its deployments' entrypoints are
# the installed modules sales_etl.flows.*) and the entrypoint script.
#
#   docker build -t sales-etl:0.1.0 .          # the tag prefect.yaml's nightly-docker runs
#   docker run --rm -v sales-etl-data:/data sales-etl:0.1.0 demo
#   docker run --rm -e PREFECT_API_URL=... sales-etl:0.1.0 prefect worker start --pool sales-etl-process
#
# Any Debian-based Python 3.11-3.13 image with python3 -m venv works as PYTHON_IMAGE; CI builds
# it on Debian 12 and 13 stand-ins made from Debian packages (scripts/build-images.sh).
# No secrets are baked in: database URLs with passwords and AWS keys are given at run time
# (docker run -e / compose environment / the work pool's Secret blocks).
ARG PYTHON_IMAGE=python:3.11-slim-trixie

# --- build: venv + project + s3a jars (Maven and its JDK stay in this stage) -----------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    SALES_ETL_VENV=/opt/sales-etl/.venv \
    SALES_ETL_JARS_DIR=/opt/sales-etl/.jars
# Maven brings a Java runtime; Debian's own versions are used.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends maven \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/sales-etl
# Layers ordered by how often their inputs change: the dependencies (pyproject.toml) and the jars
# (pom.xml) are rebuilt only when those files change, not on every source edit.
COPY pyproject.toml ./
RUN python3 -m venv "$SALES_ETL_VENV" \
 && "$SALES_ETL_VENV/bin/python" -m pip install -q --upgrade pip \
 && "$SALES_ETL_VENV/bin/python" -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'], sep='\n')" > /tmp/requirements.txt \
 && "$SALES_ETL_VENV/bin/python" -m pip install -q -r /tmp/requirements.txt
COPY scripts/fetch-jars.sh scripts/pom.xml ./scripts/
RUN bash scripts/fetch-jars.sh "$SALES_ETL_VENV/bin/python" \
 && rm -rf /root/.m2
COPY setup.py README.md prefect.yaml ./
COPY sales_etl ./sales_etl
COPY flows ./flows
COPY tasks ./tasks
COPY validators ./validators
COPY plugins ./plugins
# Only the script the image runs: an edit to the other scripts (tests, install) rebuilds nothing.
COPY scripts/docker-entrypoint.sh ./scripts/
# Non-editable: the wheel's files go into the venv's site-packages (pip builds it in isolation).
# The package sources are then removed, so nothing can import them instead of the installed ones.
RUN "$SALES_ETL_VENV/bin/python" -m pip install -q . \
 && rm -rf build ./*.egg-info /root/.cache sales_etl flows tasks validators

# --- run: a Java runtime (no JDK, no Maven), the venv and jars, a non-root user -----------------
FROM ${PYTHON_IMAGE}
ARG SALES_ETL_VERSION=0.1.0
LABEL org.opencontainers.image.title="sales-etl" \
      org.opencontainers.image.version="${SALES_ETL_VERSION}" \
      org.opencontainers.image.description="Nightly sales ETL: CSV files -> Spark data marts and reporting tables, orchestrated by Prefect"
ENV JAVA_HOME=/usr/lib/jvm/default-java \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SALES_ETL_HOME=/opt/sales-etl \
    SALES_ETL_VENV=/opt/sales-etl/.venv \
    SALES_ETL_JARS_DIR=/opt/sales-etl/.jars \
    SALES_ETL_LANDING=/data/landing \
    SALES_ETL_MARTS=/data/marts \
    SALES_ETL_DATABASE_URL=sqlite:////data/sales_etl.db \
    SALES_ETL_SPARK_SCRATCH=/tmp \
    PREFECT_HOME=/home/etl/.prefect \
    PREFECT_SERVER_ANALYTICS_ENABLED=false \
    PATH=/opt/sales-etl/.venv/bin:$PATH
# default-jre-headless: Debian's default Java (17 on bookworm, 21 on trixie) runs Spark 4; trixie
# has no openjdk-17. procps: Spark's scripts call ps. tini: PID 1 that forwards signals.
# apt-get clean: a base without the official images' docker-clean apt hook (Debian-made
# stand-ins) would otherwise keep ~140 MB of .deb files in this layer.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends default-jre-headless procps tini \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 10001 --user-group --shell /bin/bash etl \
 && mkdir -p /data \
 && chown etl:etl /data
COPY --from=build /opt/sales-etl /opt/sales-etl
WORKDIR /opt/sales-etl
USER 10001:10001
ENTRYPOINT ["/usr/bin/tini", "--", "/opt/sales-etl/scripts/docker-entrypoint.sh"]
CMD ["run"]
