# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# setuptools' notes on editable installs are for packagers, not for someone running the service.
PIP := PYTHONWARNINGS=ignore $(BIN)/pip
PYTEST_ARGS ?=

.PHONY: run test test-sqlite install clean bench chaos

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(VENV)/.installed-run: setup.cfg pyproject.toml | $(BIN)/python
	$(PIP) install -q -e .
	touch $@

$(VENV)/.installed-test: setup.cfg pyproject.toml | $(BIN)/python
	$(PIP) install -q -e ".[test]"
	touch $@ $(VENV)/.installed-run

$(VENV)/.installed-bench: setup.cfg pyproject.toml | $(BIN)/python
	$(PIP) install -q -e ".[test,bench]"
	touch $@ $(VENV)/.installed-test $(VENV)/.installed-run

install: $(VENV)/.installed-run

## Serve web + embedded worker on http://127.0.0.1:8000 with SQLite (no Redis needed).
run: $(VENV)/.installed-run
	$(BIN)/entitle db migrate
	$(BIN)/entitle run

## The import contracts (setup.cfg), then the whole suite (a throwaway Redis is started when REDIS_URL is not set).
test: $(VENV)/.installed-test
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## The database-facing tests on SQLite, whatever DATABASE_URL says.
test-sqlite: $(VENV)/.installed-test
	env -u DATABASE_URL $(BIN)/python -m pytest $(PYTEST_ARGS) tests/app tests/workers tests/cli

## Benchmarks on PostgreSQL + Redis at 127.0.0.1 (tables printed; BENCH_WRITE_DOCS=1 updates docs/BENCHMARKS.md,
## BENCH_FULL=1 runs the full sizes). See docs/BENCHMARKS.md.
bench: $(VENV)/.installed-bench
	$(BIN)/python -m bench

## Fault scenarios and bad input (restarts the machine's PostgreSQL once). See docs/RELIABILITY.md.
chaos: $(VENV)/.installed-bench
	$(BIN)/python -m bench.chaos

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .hypothesis
