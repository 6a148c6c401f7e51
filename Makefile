# Every target works from a fresh clone: `install` creates the virtualenv it needs.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test lint demo bench schemas clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

test: install
	$(PY) -m pytest

lint: install
	$(PY) -m ruff check worker schemas tests
	$(PY) -m ruff format --check worker schemas tests
	$(PY) -m mypy

demo: install
	$(PY) -m worker demo

bench: install
	$(PY) -m tests.bench.run

schemas: install
	$(PY) -m schemas.export

clean:
	rm -rf $(VENV) .stack .pytest_cache .mypy_cache .ruff_cache
