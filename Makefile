# The README's two commands are `make chat` and `make test`; both set everything up from scratch.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Every first-party distribution, installed editable beside core.
PACKAGES := $(wildcard bridges/*/pyproject.toml plugins/*/pyproject.toml)
EDITABLES := $(foreach p,$(PACKAGES),-e $(dir $(p)))
PROMPT ?= Hello! What can you do?
PYTEST_ARGS ?=

.PHONY: setup chat test lint typecheck format clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Reinstall when any pyproject or the constraints change.
$(VENV)/.installed: $(BIN)/python pyproject.toml constraints.txt $(PACKAGES)
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]' $(EDITABLES)
	touch $@

setup: $(VENV)/.installed

chat: setup
	$(BIN)/anymodal chat "$(PROMPT)"

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy anymodal benchmarks $(dir $(wildcard bridges/*/anymodal_*/__init__.py plugins/*/anymodal_*/__init__.py))

test: lint typecheck
	$(BIN)/pytest -q $(PYTEST_ARGS)

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
