# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# setuptools' notes on editable installs are for packagers, not for someone running the service.
PIP := PYTHONWARNINGS=ignore $(BIN)/pip
PYTEST_ARGS ?=

.PHONY: run test test-sqlite install clean bench chaos

# Each step says what it does first (one line), so a first run's quiet minute of installing never looks hung.
STEP = @echo "==>"

$(BIN)/python:
	$(STEP) "creating $(VENV) (a Python virtual environment) with $(PYTHON)"
	@$(PYTHON) -m venv $(VENV)
	$(STEP) "upgrading pip in $(VENV)"
	@$(PIP) install -q --upgrade pip

$(VENV)/.installed-run: setup.cfg pyproject.toml | $(BIN)/python
	$(STEP) "installing entitle and its dependencies into $(VENV) (about a minute the first time)"
	@$(PIP) install -q -e .
	@touch $@

$(VENV)/.installed-test: setup.cfg pyproject.toml | $(BIN)/python
	$(STEP) "installing entitle with its test dependencies into $(VENV) (about a minute the first time)"
	@$(PIP) install -q -e ".[test]"
	@touch $@ $(VENV)/.installed-run

$(VENV)/.installed-bench: setup.cfg pyproject.toml | $(BIN)/python
	$(STEP) "installing entitle with its test and benchmark dependencies into $(VENV)"
	@$(PIP) install -q -e ".[test,bench]"
	@touch $@ $(VENV)/.installed-test $(VENV)/.installed-run

install: $(VENV)/.installed-run

## Serve web + embedded worker on http://127.0.0.1:8000 with SQLite (no Redis needed).
run: $(VENV)/.installed-run
	$(STEP) "migrating the database (DATABASE_URL, else SQLite in entitle.db)"
	@$(BIN)/entitle db migrate
	$(STEP) "starting the service: web and worker in one process (Ctrl-C stops it)"
	@$(BIN)/entitle run

## The import contracts (setup.cfg), then the whole suite (a throwaway Redis is started when REDIS_URL is not set).
test: $(VENV)/.installed-test
	$(STEP) "checking the import contracts (import-linter)"
	@$(BIN)/lint-imports --no-cache
	$(STEP) "running the test suite"
	@$(BIN)/python -m pytest $(PYTEST_ARGS)

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
