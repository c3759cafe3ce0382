# `make run` serves the app on http://127.0.0.1:8000; `make test` runs every test.
# Both create .venv when it is missing and (re)install when pyproject.toml changes.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint bench clean

run: $(VENV)/.installed-app
	$(BIN)/memegen serve

test: $(VENV)/.installed-dev
	@if [ ! -x /usr/bin/chromium ]; then $(BIN)/playwright install chromium; fi
	$(BIN)/ruff check src tests benchmarks tools
	$(BIN)/pytest

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests benchmarks tools

bench: $(VENV)/.installed-app
	$(BIN)/python benchmarks/pipeline.py

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed-app: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test,train]'
	touch $@ $(VENV)/.installed-app

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache .ruff_cache
