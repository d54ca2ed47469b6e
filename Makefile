# Quick start: `make run` (train into the embedded store if needed, serve on :8000), `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
MODEL ?= sk_model
ALIAS ?= champion

.PHONY: run train serve test lint format bench clean postgres-up chromium

$(VENV)/.installed-trainer: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[trainer]'
	touch $@

$(VENV)/.installed-dev: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed-trainer

## Train into the embedded store unless MODEL@ALIAS already exists, then serve it.
run: train serve

train: $(VENV)/.installed-trainer
	$(PY) -m trainer train --register $(MODEL) --alias $(ALIAS) --skip-if-exists

serve: $(VENV)/.installed-trainer
	MODEL_URI="$${MODEL_URI:-models:/$(MODEL)@$(ALIAS)}" $(PY) -m app --host $(HOST) --port $(PORT)

## Lint, type-check and run every test (the Postgres and integration tests included).
test: $(VENV)/.installed-dev postgres-up chromium
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/pytest

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: $(VENV)/.installed-dev
	$(PY) bench/run.py

## The machine's PostgreSQL is normally running; start it if it is not.
postgres-up:
	@pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null || \
	  { command -v pg_ctlcluster >/dev/null && \
	    pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start; } || true

## The report's test renders it in Debian's headless Chromium: installed when missing (as root).
chromium:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	      apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null; \
	  else echo "chromium is missing (the report test needs it): sudo apt-get install chromium" >&2; \
	  fi; }

clean:
	rm -rf $(VENV) .mlflow data.csv report.html .pytest_cache .mypy_cache .ruff_cache
