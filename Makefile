# Every target installs what it needs into .venv first, so each works on a fresh clone.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
REQUIREMENTS := requirements-dev.txt constraints.txt $(wildcard functions/*/requirements.txt)

.PHONY: local demo test lint format unit integration clean

$(INSTALLED): $(REQUIREMENTS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt -c constraints.txt
	touch $@

## local: emulators + all functions on 127.0.0.1:$$PORT (default 8080); Ctrl-C stops them
local: $(INSTALLED)
	$(BIN)/python -m tools.local

## demo: plays a signed conversation through the local stack and prints what landed
demo: $(INSTALLED)
	$(BIN)/python -m tools.demo

## test: lint, type-check, unit and integration tests (real emulators)
test: lint
	$(BIN)/python -m pytest

unit: $(INSTALLED)
	$(BIN)/python -m pytest tests/unit

integration: $(INSTALLED)
	$(BIN)/python -m pytest tests/integration

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(INSTALLED)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) .local .pytest_cache .mypy_cache .ruff_cache
