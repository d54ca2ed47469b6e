# Quick start: `make run` (train into the embedded store if needed, serve on :8000), `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
MODEL ?= sk_model
ALIAS ?= champion
UV_EXPORT = $(VENV)/bin/uv export --frozen --no-emit-project --no-dev --format requirements-txt --quiet

.PHONY: run train serve test lint docs lock requirements lock-check format bench clean postgres-up chromium

# Every install comes from the lock: requirements/*.txt are exported from uv.lock with hashes
# (`make lock` writes all of them): the whole closure, so pip installs it without resolving
# (--no-deps), the project itself without dependencies, and `pip check` confirms the result.
$(VENV)/.installed-trainer: requirements/trainer.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --no-deps --require-hashes -r requirements/trainer.txt
	$(PY) -m pip install --quiet --no-deps -e .
	$(PY) -m pip check
	touch $@

$(VENV)/.installed-dev: requirements/dev.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --no-deps --require-hashes -r requirements/dev.txt
	$(PY) -m pip install --quiet --no-deps -e .
	$(PY) -m pip check
	touch $@ $(VENV)/.installed-trainer

## Train into the embedded store unless MODEL@ALIAS already exists, then serve it.
run: train serve

train: $(VENV)/.installed-trainer
	$(PY) -m trainer train --register $(MODEL) --alias $(ALIAS) --skip-if-exists

serve: $(VENV)/.installed-trainer
	MODEL_URI="$${MODEL_URI:-models:/$(MODEL)@$(ALIAS)}" $(PY) -m app --host $(HOST) --port $(PORT)

## Lint, type-check, build the manual and run every test (Postgres and integration included).
test: $(VENV)/.installed-dev lock-check docs postgres-up chromium
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/pytest

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache

## The manual (docs/) as a site in .site/ (git-ignored); fails when the configuration page is
## stale (python docs/gen_configuration.py rewrites it) or a link or anchor is broken.
docs: $(VENV)/.installed-dev
	$(PY) docs/gen_configuration.py --check
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet --site-dir .site

## Upgrade every dependency within pyproject.toml's bounds: uv.lock, then the exported
## requirements/*.txt that the venv, the images and CI install from.
lock: $(VENV)/.installed-dev
	$(VENV)/bin/uv lock --upgrade
	$(MAKE) requirements

## Re-export requirements/*.txt from uv.lock as it is (after editing pyproject.toml: `uv lock` first).
requirements: $(VENV)/.installed-dev
	$(UV_EXPORT) -o requirements/api.txt
	$(UV_EXPORT) --extra trainer -o requirements/trainer.txt
	$(UV_EXPORT) --all-extras -o requirements/dev.txt

## Fails when uv.lock no longer matches pyproject.toml, or requirements/*.txt no longer match uv.lock.
lock-check: $(VENV)/.installed-dev
	$(VENV)/bin/uv lock --check
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	  $(UV_EXPORT) -o $$tmp/api.txt && \
	  $(UV_EXPORT) --extra trainer -o $$tmp/trainer.txt && \
	  $(UV_EXPORT) --all-extras -o $$tmp/dev.txt && \
	  for f in api trainer dev; do \
	    diff -q <(grep -v '^#' $$tmp/$$f.txt) <(grep -v '^#' requirements/$$f.txt) >/dev/null || \
	      { echo "requirements/$$f.txt does not match uv.lock: run 'make requirements'" >&2; exit 1; }; \
	  done

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
