# Concierge: `make run` starts the assistant, `make test` runs every test tier.
# Both set up whatever is missing first (virtual environments, model check, database,
# knowledge index, Rasa training, and for tests Debian's chromium).

PYTHON311 ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install setup large-encoder run test test-unit test-integration test-postgres test-e2e test-stories lint types validate index train doctor bench clean

help: ## Show this help
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@command -v $(PYTHON311) >/dev/null || { echo "Python 3.11 is required (set PYTHON311=/path/to/python3.11)"; exit 1; }
	$(PYTHON311) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	@# torch first, pinned: 2.13.0 is the CPU build on this machine; others pull CUDA (GBs).
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

install: $(STAMP) ## Create .venv (Python 3.11) with the app and dev tools

setup: $(STAMP) ## Prepare everything: Rasa venv, database, demo data, index, model
	$(PY) -m bot setup

large-encoder: $(STAMP) ## Also install all-mpnet-base-v2 (404 MB) for `kb tune --start-from`
	$(PY) -m bot setup --large-encoder

run: setup ## Start the whole assistant with demo content (chat at http://127.0.0.1:8000/)
	$(PY) -m bot run

test: $(STAMP) ## Run every test tier: unit, integration, e2e (real Rasa + browser), stories
	$(PY) -m bot setup --for-tests
	$(PY) -m pytest

test-unit: $(STAMP) ## Unit tier only (seconds, no processes)
	$(PY) -m pytest -m unit

test-integration: $(STAMP) ## Integration tier (test clients, real action server)
	$(PY) -m pytest -m integration

test-postgres: $(STAMP) ## PostgreSQL tier (a throwaway server: migrations, races, reports parity)
	$(PY) -m pytest -m postgres

test-e2e: $(STAMP) ## End-to-end tier (slow: real Rasa, action server, bot service, Chromium)
	$(PY) -m bot setup --for-tests
	$(PY) -m pytest -m e2e

lint: $(STAMP) ## Ruff lint and format check
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

types: $(STAMP) ## Mypy type check
	$(PY) -m mypy bot actions knowledge bench

validate: $(STAMP) ## Validate the knowledge-base articles and the Rasa training data
	$(PY) -m bot kb validate
	.venv-rasa/bin/rasa data validate --fail-on-warnings

index: $(STAMP) ## Rebuild the knowledge index (live in seconds, no restart)
	$(PY) -m bot kb build

train: $(STAMP) ## Train Rasa if data/, domain.yml or config.yml changed
	$(PY) -m bot train

doctor: $(STAMP) ## Check every component
	$(PY) -m bot doctor

clean: ## Remove runtime state (var/); keeps the virtual environments
	rm -rf var
