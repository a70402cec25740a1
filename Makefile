# Quick start: `make run` (main job on the built-in synthetic graph) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Where the benchmark archives live (tests and CI read them from here).
# Default: ../shared/datasets next to the clone, else this workplace's shared copy.
export METASD_DATA_ROOT ?= $(firstword $(wildcard $(abspath ../shared/datasets) /work/shared/datasets))

.PHONY: setup run test lint

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

setup: $(VENV)/.installed

run: setup
	$(VENV)/bin/metasd-pyg train --out runs/quickstart --overwrite

test: setup
	$(PY) -m pytest -q tests

lint: setup
	$(PY) -m pip install --quiet -e '.[dev]'
	$(VENV)/bin/ruff check metasd_pyg tests benchmarks
	$(VENV)/bin/mypy
