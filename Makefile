# civicpin: `make run` serves the demo city, `make test` runs every test.
# Both do all set-up first (system packages, .venv, map assets); a second run skips what is
# already done. HOST and PORT choose where `make run` listens (default 127.0.0.1:5000).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY_STAMP := $(VENV)/.civicpin-installed
NODE_STAMP := node_modules/.civicpin-installed
VENDOR_STAMP := webmap/static/vendor/.civicpin-copied
LINT_PATHS := webmap intake routing spatial notify records places migrations tests bench

.PHONY: help setup system-deps venv assets run test lint format bench clean

help:
	@echo "make run     set up, start the database, load the demo city, serve (HOST, PORT)"
	@echo "make test    set up, then ruff check and the whole pytest suite"
	@echo "make lint    ruff check + ruff format --check"
	@echo "make bench   run the benchmarks (bench/run.sh)"
	@echo "make setup   only the set-up: apt packages, .venv, map assets"

setup: system-deps venv assets

system-deps:
	@bash scripts/system-deps.sh

venv: $(PY_STAMP)

# Reinstall only when pyproject.toml is newer than the last install.
$(PY_STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[test]'
	@touch $@

assets: $(VENDOR_STAMP)

# npm ci installs exactly the locked versions; without a lock file, npm install writes one.
$(NODE_STAMP): package.json $(wildcard package-lock.json) $(wildcard .npmrc)
	@if [ -f package-lock.json ]; then \
		echo "npm ci"; npm ci --ignore-scripts --no-audit --no-fund --loglevel=error; \
	else \
		echo "npm install"; npm install --ignore-scripts --no-audit --no-fund --loglevel=error; \
	fi
	@touch $@

$(VENDOR_STAMP): $(NODE_STAMP) scripts/copy-assets.sh
	@sh scripts/copy-assets.sh
	@touch $@

run: setup
	$(BIN)/civicpin db up
	$(BIN)/civicpin demo load
	exec env DEMO_MAIL_PAGE=$${DEMO_MAIL_PAGE:-1} $(BIN)/civicpin serve

test: setup
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/python -m pytest tests

lint: venv
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)

format: venv
	$(BIN)/ruff check --fix $(LINT_PATHS)
	$(BIN)/ruff format $(LINT_PATHS)

bench: setup
	@if [ -f bench/run.sh ]; then bash bench/run.sh; else echo "no benchmarks yet (bench/run.sh)"; fi

clean:
	rm -rf node_modules webmap/static/vendor
