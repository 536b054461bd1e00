# Flotilla — single entry points for people and CI.
SHELL := /bin/bash
.DEFAULT_GOAL := help
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON ?= 3.11
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
PYTEST_ARGS ?=

.PHONY: help setup run test lint format bench crds browser

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

setup:  ## install uv if missing, then the locked workspace into .venv (idempotent)
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	@$(UV) sync --all-packages --frozen --quiet

run: setup  ## start the whole platform locally (edge on :8080, console on :8090)
	@$(UV) run --frozen flotilla up

test: setup lint browser  ## lint, then the whole test suite (real Redis, RabbitMQ, PostgreSQL, Chromium)
	@$(UV) run --frozen pytest $(PYTEST_ARGS)

lint: setup  ## ruff, mypy (strict on src/), import-linter contracts
	@$(UV) run --frozen ruff check .
	@$(UV) run --frozen ruff format --check .
	@$(UV) run --frozen mypy services/*/src operator/src
	@$(UV) run --frozen lint-imports

format: setup  ## apply ruff's formatting and safe fixes
	@$(UV) run --frozen ruff check --fix .
	@$(UV) run --frozen ruff format .

bench: setup  ## run the benchmarks (see docs/benchmarks.md)
	@$(UV) run --frozen python bench/edge.py
	@$(UV) run --frozen python bench/worker.py
	@$(UV) run --frozen python bench/memory.py

crds:  ## copy the CRDs from k8s/crds/ (the source) into the chart (Helm cannot template crds/)
	@mkdir -p charts/flotilla/crds
	@cp k8s/crds/*.yaml charts/flotilla/crds/

browser:  ## Debian's chromium for the browser tests, installed with apt when missing (as root)
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
		&& echo "installing Debian's chromium for the browser tests" \
		&& DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; } \
		|| echo "chromium is missing and could not be installed: run 'apt-get install chromium' (the browser tests skip locally, fail under CI)"
