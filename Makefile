# The two commands a new machine needs (README): `make demo` and `make test`.
.PHONY: install demo test lint

install:
	bash scripts/install.sh

demo: install
	.venv/bin/sales-etl demo

test:
	bash scripts/test.sh

lint:
	.venv/bin/ruff check . && .venv/bin/ruff format --check .
