# syntax=docker/dockerfile:1
# The sales-etl image: the `sales-etl` command, the Prefect flow and a Prefect worker, a JDK for
# Spark and the s3a connector jars. The work is done by the same scripts CI runs:
# scripts/install.sh (venv + project) and scripts/fetch-jars.sh (hadoop-aws + AWS SDK bundle).
#
#   docker build -t sales-etl:0.1.0 .          # the tag prefect.yaml's nightly-docker runs
#   docker run --rm -v "$PWD/data:/data" sales-etl:0.1.0 demo
#   docker run --rm -e PREFECT_API_URL=... sales-etl:0.1.0 prefect worker start --pool sales-etl-process
#
# No secrets are baked in: database URLs with passwords and AWS keys are given at run time
# (docker run -e / compose environment / the work pool's Secret blocks).
ARG PYTHON_IMAGE=python:3.11-slim-trixie

# --- build: venv + project + s3a jars (Maven stays in this stage) ----------------------------------
FROM ${PYTHON_IMAGE} AS build
ENV JAVA_HOME=/usr/lib/jvm/default-java \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    SALES_ETL_VENV=/opt/sales-etl/.venv \
    SALES_ETL_JARS_DIR=/opt/sales-etl/.jars
# trixie has no openjdk-17: its default JDK (21) runs Spark 4. Debian's own versions are used.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends default-jdk-headless maven \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/sales-etl
COPY pyproject.toml README.md prefect.yaml ./
COPY sales_etl ./sales_etl
COPY flows ./flows
COPY tasks ./tasks
COPY validators ./validators
COPY plugins ./plugins
COPY scripts ./scripts
RUN bash scripts/install.sh \
 && bash scripts/fetch-jars.sh "$SALES_ETL_VENV/bin/python" \
 && rm -rf /root/.m2 /root/.cache

# --- run: JDK, the venv and jars from the build stage, a non-root user --------------------------
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
# procps: Spark's scripts call ps; tini: PID 1 that forwards signals to the JVM and Python.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends default-jdk-headless procps tini \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 10001 --user-group --shell /bin/bash etl \
 && mkdir -p /data \
 && chown etl:etl /data
COPY --from=build /opt/sales-etl /opt/sales-etl
WORKDIR /opt/sales-etl
USER 10001:10001
ENTRYPOINT ["/usr/bin/tini", "--", "/opt/sales-etl/scripts/docker-entrypoint.sh"]
CMD ["run"]
