# Every target works from a fresh clone: `install` creates the virtualenv it needs.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test lint demo eval bench smoke-local schemas docs up down clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

test: install
	$(PY) -m pytest

lint: install
	$(PY) -m ruff check worker devtools schemas tests
	$(PY) -m ruff format --check worker devtools schemas tests
	$(PY) -m mypy
	$(VENV)/bin/lint-imports

demo: install
	$(PY) -m worker demo

# Extraction quality on the labelled dataset, held-out part then development part (README,
# Quality): prints a table per part, writes eval/held_out/ and eval/development/.
eval: install
	$(PY) -m worker eval

bench: install
	$(PY) -m tests.bench.run $(BENCH_ARGS)

# One labelled conversation through the worker against a model server you run (not in CI), e.g.
# make smoke-local LLM_API_BASE=http://127.0.0.1:8080/v1 LLM_MODEL=openai/qwen (README, Self-hosted models).
smoke-local: install
	LLM_API_BASE="$(LLM_API_BASE)" LLM_MODEL="$(LLM_MODEL)" $(PY) -m tests.bench.smoke_local

schemas: install
	$(PY) -m schemas.export

# The AsyncAPI document of the service (a test fails when it is stale).
docs: install
	$(PY) -m worker.tools.asyncapi_document docs/asyncapi.yaml

# Kafka (KRaft), PostgreSQL, topics, migrations and the worker in Docker (see README, Docker).
up:
	docker compose up --build --detach --wait worker  # naming it: one-shot services may exit

down:
	docker compose down --volumes

clean:
	rm -rf $(VENV) .stack .pytest_cache .mypy_cache .ruff_cache
