# syntax=docker/dockerfile:1
# Thin image: the same install script CI runs does the work (issue #4 completes this).
FROM python:3.11-slim-trixie

# trixie has no openjdk-17: the default JDK (21) runs Spark 4.
ENV JAVA_HOME=/usr/lib/jvm/default-java \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SALES_ETL_VENV=/opt/sales-etl/venv \
    PATH=/opt/sales-etl/venv/bin:$PATH

RUN apt-get update \
 && apt-get install -y --no-install-recommends default-jdk-headless procps \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 10001 etl

WORKDIR /opt/sales-etl
COPY pyproject.toml README.md ./
COPY sales_etl ./sales_etl
COPY flows ./flows
COPY tasks ./tasks
COPY validators ./validators
COPY plugins ./plugins
COPY scripts ./scripts
COPY prefect.yaml ./
RUN bash scripts/install.sh && chown -R etl:etl /opt/sales-etl

USER etl
ENV SALES_ETL_HOME=/opt/sales-etl
ENTRYPOINT ["sales-etl"]
CMD ["run"]
