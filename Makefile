# Easel: the two quick-start commands are `make run` and `make test`.
#   make run    install Easel into .venv and serve it (SQLite, in-process queue)
#   make test   install everything (protect extra with CPU torch, dev tools) and run
#               lint, types and the whole test suite
# Backends for tests come from EASEL_TEST_DATABASE_URL / EASEL_TEST_BROKER_URL
# (.ci/services.sh starts PostgreSQL and Redis and prints them).

PYTHON ?= python3
VENV ?= .venv
# The torch build to install for the protect extra. torch==2.13.0 is a CPU build on the
# development machines; on a GPU worker pick the CUDA build that fits its driver.
TORCH ?= torch==2.13.0
HOST ?= 127.0.0.1
PORT ?= 8080
PYTEST_ARGS ?=

BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip install --quiet --disable-pip-version-check

.PHONY: run test test-core lint install install-dev clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(PIP) -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(PIP) "$(TORCH)"
	$(PIP) -e ".[protect,postgres,redis,s3,dev]"
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

run: install
	$(BIN)/easel serve --host $(HOST) --port $(PORT)

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest $(PYTEST_ARGS)

# The suite without the protect extra: proves nothing but the perturbation needs torch.
test-core: VENV := .venv-core
test-core:
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check -e ".[postgres,redis,s3,dev]"
	! $(VENV)/bin/python -c "import torch" 2>/dev/null
	$(VENV)/bin/pytest -m "not torch" $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .venv-core .pytest_cache .mypy_cache .ruff_cache *.egg-info
