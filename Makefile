# Every target installs what it needs into .venv first, so each works on a fresh clone.
SHELL := /bin/bash
# .python-version says which Python: the functions' runtime, and what every target runs.
PYTHON_VERSION := $(shell cat .python-version)
PYTHON ?= $(shell command -v python$(PYTHON_VERSION) || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
REQUIREMENTS := requirements-dev.txt constraints.txt $(wildcard functions/*/requirements.txt)
CHECKOV_VENV := .venv-checkov
CHECKOV := $(CHECKOV_VENV)/bin/checkov
TERRAFORM := terraform -chdir=terraform
# The report's browser test (tests/headless_chromium.py) drives Debian's Chromium headless.
CHROMIUM := /usr/bin/chromium
APT_GET := $(if $(filter 0,$(shell id -u)),,sudo) env DEBIAN_FRONTEND=noninteractive apt-get

.PHONY: local demo changes report test lint format unit integration bench replay build deploy secrets tf-init tf-bootstrap tf-plan tf-apply tf-check clean

$(INSTALLED): $(REQUIREMENTS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt -c constraints.txt
	touch $@

$(CHECKOV): requirements-checkov.txt constraints-checkov.txt
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-checkov.txt -c constraints-checkov.txt
	touch $@

# Installed only when missing (about 30 s), quietly: apt's output is shown only if it fails.
$(CHROMIUM):
	@echo "installing Chromium from Debian's packages for the report's browser test..."
	@log=$$(mktemp); \
	if { $(APT_GET) update -qq && $(APT_GET) install -y -qq --no-install-recommends chromium; } \
		>$$log 2>&1; then rm -f $$log; else cat $$log; rm -f $$log; exit 1; fi

## local: emulators + all functions on 127.0.0.1:$$PORT (default 8080); Ctrl-C stops them
local: $(INSTALLED)
	$(BIN)/python -m tools.local

## demo: plays a signed conversation through the local stack and prints what landed
demo: $(INSTALLED)
	$(BIN)/python -m tools.local.demo

## changes: follows the running `make local`'s change stream, one line per event; Ctrl-C stops
changes: $(INSTALLED)
	$(BIN)/python -m tools.local.changes

## report: receipt metrics as tables and charts (.local/report/); ARGS="--since 2026-11-01 --agent A"
report: $(INSTALLED)
	$(BIN)/python -m tools.local.report $(ARGS)

## test: lint, type-check, unit and integration tests (real emulators)
# Two workers: most integration tests wait on emulators and pushes, so they overlap well on
# two cores; each worker starts its own stack, and a group that shares one costly fixture
# (the Terraform plans, the demo's play) stays on one worker (pytest.mark.xdist_group).
test: lint $(CHROMIUM)
	$(BIN)/python -m pytest -n 2 --dist loadgroup

unit: $(INSTALLED)
	$(BIN)/python -m pytest tests/unit

integration: $(INSTALLED) $(CHROMIUM)
	$(BIN)/python -m pytest tests/integration

lint: $(INSTALLED) $(CHECKOV)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	PYTHONPATH=. $(BIN)/lint-imports --no-cache
	$(CHECKOV) --directory terraform --framework terraform --quiet --compact --skip-download
	$(BIN)/python -m tools.terraform fmt
	$(BIN)/python -m tools.docs_links

## bench: throughput, cold starts, counted cost and drain against baselines (.local/bench.md, docs/benchmarks.md)
bench: $(INSTALLED)
	$(BIN)/python -m tools.bench

## replay: dead letters, parked payloads, spool; ARGS="list" or "redrive dead-letters|parked|spool [ids]"
replay: $(INSTALLED)
	@if [ -z "$$GOOGLE_CLOUD_PROJECT" ] && [ -f .local/env ]; then set -a; . ./.local/env; set +a; fi; \
	$(BIN)/python -m shared.ops.replay $(or $(ARGS),list)

## build: each function's deployable source (function + what it imports of shared/ + pinned requirements) in build/
build: $(INSTALLED)
	$(BIN)/python -m tools.deploy.bundle

## deploy: gcloud functions deploy --gen2 for each bundle, as Terraform sets them (DRY_RUN=1 prints)
deploy: build
	$(BIN)/python -m tools.deploy.gcloud

## secrets: add a secret's value from FILE or stdin, e.g. make secrets SECRET=bm-signing-key FILE=key.txt
secrets:
	@test -n "$(SECRET)" || { echo "usage: make secrets PROJECT=p SECRET=bm-signing-key [FILE=path]  (stdin without FILE)"; exit 2; }
	@test -n "$(PROJECT)" || { echo "set PROJECT to the Google Cloud project"; exit 2; }
	gcloud secrets versions add $(or $(NAME_PREFIX),receipt-pipeline)-$(SECRET) --project=$(PROJECT) --data-file=$(or $(FILE),-)

## tf-check: terraform fmt, validate and plan offline, against the real google/archive schemas; VARS=file ARGS="--var k=v"
tf-check: $(INSTALLED)
	$(BIN)/python -m tools.terraform fmt
	$(BIN)/python -m tools.terraform validate
	$(BIN)/python -m tools.terraform plan $(if $(VARS),--vars $(VARS)) $(ARGS)

tf-init: terraform-installed
	$(TERRAFORM) init

## tf-bootstrap: APIs and empty secrets first, so `make secrets` can fill them before functions need them
tf-bootstrap: terraform-installed
	$(TERRAFORM) apply -target=google_project_service.required -target=google_secret_manager_secret.pipeline

tf-plan: terraform-installed build
	$(TERRAFORM) plan -out=tfplan

tf-apply: terraform-installed build
	$(TERRAFORM) apply tfplan

.PHONY: terraform-installed
terraform-installed:
	@command -v terraform >/dev/null || { echo "terraform is not installed: see README, Deploy to Google Cloud"; exit 1; }

format: $(INSTALLED)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) build .local .pytest_cache .mypy_cache .ruff_cache
