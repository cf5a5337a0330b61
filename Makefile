# Xployt scan gateway. Only Python 3.11+ and make are assumed; everything else is installed here.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help install run run-mock mock-scanner test lint format clean

help:
	@echo "make run-mock   start the mock scanner and the gateway (demo, Ctrl-C stops both)"
	@echo "make run        start the gateway alone"
	@echo "make test       run the whole test suite"
	@echo "make lint       ruff and mypy"

$(STAMP): setup.cfg pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "Python 3.11 or newer is required (found $(PYTHON))"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,dev]'
	@touch $@

install: $(STAMP)

run: $(STAMP)
	$(BIN)/python -m gateway

mock-scanner: $(STAMP)
	$(BIN)/python -m mock_scanner

run-mock: $(STAMP)
	@PYTHON=$(BIN)/python scripts/run-mock.sh

# pytest exits non-zero (5) when it collects no test, so an empty run fails here too.
test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check gateway mock_scanner tests
	$(BIN)/ruff format --check gateway mock_scanner tests
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format gateway mock_scanner tests
	$(BIN)/ruff check --fix gateway mock_scanner tests

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache *.egg-info
