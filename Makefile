# The two commands: `make run` (the whole service on the embedded default) and `make test` (the full suite CI
# runs). `make test-fast` is the inner loop: SQLite only, no slow tests (no worker, serve, browser or Redis).
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test test-fast lint

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

run: $(VENV)/.installed
	$(VENV)/bin/intake serve --host $(HOST) --port $(PORT)

test: $(VENV)/.installed
	scripts/ensure-services
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: $(VENV)/.installed
	INTAKE_TEST_DATABASES=sqlite $(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check intake workers tests bench migrations
	$(VENV)/bin/ruff format --check intake workers tests bench migrations
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
