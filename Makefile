# Quick start: `make run` (main job on the built-in synthetic graph) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DATA_ROOT ?= $(abspath ../shared/datasets)

.PHONY: setup run test lint

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[test,dev]'
	touch $@

setup: $(VENV)/.installed

run: setup
	$(VENV)/bin/metasd-pyg train --out runs/quickstart --overwrite

test: setup
	METASD_DATA_ROOT=$(DATA_ROOT) $(PY) -m pytest -q tests

lint: setup
	$(VENV)/bin/ruff check metasd_pyg tests benchmarks
	$(VENV)/bin/mypy
