# The two commands a new machine needs (README): `make demo` and `make test`.
# `make install` puts the commands in .venv/bin; `. .venv/bin/activate` puts them on PATH.
# PYTHON=python3.12 make install picks the interpreter (default: python3.11, 3.12, 3.13, python3).
.PHONY: install demo test test-fast lint dist

install:
	bash scripts/install.sh

demo: install
	.venv/bin/sales-etl demo

# Everything, as CI runs it (.ci/run).
test:
	bash scripts/test.sh

# For development: unit tests and small integration (one SparkSession, MariaDB, moto S3), not the
# tests marked `slow` (flows, `sales-etl` subprocesses, Prefect servers, containers).
test-fast:
	bash scripts/test.sh -m "not slow"

lint:
	.venv/bin/ruff check . && .venv/bin/ruff format --check .

# The sdist and wheel into dist/ (what `pip install sales_etl-*.whl` installs elsewhere).
dist: install
	.venv/bin/python -m pip install -q build
	.venv/bin/python -m build --outdir dist .
