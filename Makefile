# botfleet — the README's two commands are `make run` and `make test`.
# Everything the project needs is installed by these targets: a fresh machine needs
# only python3 (with venv and pip) and redis-server.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
# Exact versions of everything installed (image, CI, make test); `make lock` renews it.
LOCK := requirements.lock

.PHONY: help install dashboard run test lint format bench clean lock

help:
	@echo "make run    - the whole fleet locally (botfleet dev)"
	@echo "make test   - install everything and run the whole test suite"
	@echo "make lint   - ruff check, ruff format --check, mypy"
	@echo "make bench  - run the benchmarks in bench/ and print their figures"

$(STAMP): pyproject.toml examples/botfleet-donchian/pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r $(LOCK)
	# botfleet itself and the example strategy plugin (docs/strategies.md: tests check it
	# is registered), editable; their dependencies are all in the lock.
	$(PY) -m pip install --quiet --no-deps -e . -e examples/botfleet-donchian
	touch $(STAMP)

# The lock from pyproject.toml: a fresh venv with '.[dev]', frozen (botfleet excluded).
lock:
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet --upgrade pip
	.lock-venv/bin/python -m pip install --quiet '.[dev]'
	{ sed -n '/^#/p' $(LOCK); .lock-venv/bin/python -m pip freeze --exclude botfleet; } > $(LOCK).new
	mv $(LOCK).new $(LOCK)
	rm -rf .lock-venv build

install: $(STAMP) dashboard

# The dashboard's chart library comes from the npm registry, vendored for the API to serve.
dashboard:
	@bash deploy/build-dashboard.sh

run: $(STAMP) dashboard
	$(VENV)/bin/botfleet dev

test: $(STAMP) dashboard
	@bash deploy/test-prereqs.sh
	$(PY) -m pytest -p no:cacheprovider $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy shared services

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: $(STAMP)
	@for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) .botfleet .pytest_cache .mypy_cache .ruff_cache
