# The README's two commands are `make chat` and `make test`; both set everything up from scratch.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Every first-party distribution, installed editable beside core.
PACKAGES := $(wildcard bridges/*/pyproject.toml plugins/*/pyproject.toml)
EDITABLES := $(foreach p,$(PACKAGES),-e $(dir $(p)))
# `make chat PROMPT="..." INPUTS="--image examples/red_circle.png"` asks one question instead of the tour.
PROMPT ?=
INPUTS ?=
PYTEST_ARGS ?=

.PHONY: setup chat test lint typecheck format clean dist dist-check

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Reinstall when any pyproject or the constraints change.
$(VENV)/.installed: $(BIN)/python pyproject.toml constraints.txt $(PACKAGES)
	@echo "Setting up $(VENV): pip is installing anymodal, its Hugging Face bridge, its 7 modality plugins"
	@echo "and their dependencies (torch, transformers, ...); about 2 minutes the first time, quiet until done."
	@$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]' $(EDITABLES)
	@touch $@
	@echo "Set up. Put anymodal on your PATH with: source $(VENV)/bin/activate"

setup: $(VENV)/.installed

# The built-in demo model answers questions about every sample input in examples/ (one chat process).
chat: setup
ifeq ($(strip $(PROMPT)),)
	$(BIN)/anymodal chat < examples/tour.txt
else
	$(BIN)/anymodal chat $(INPUTS) "$(PROMPT)"
endif

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Each distribution's root on MYPYPATH, so a plugin's imports of its own modules are checked, not Any.
DIST_ROOTS := $(patsubst %/pyproject.toml,%,$(PACKAGES))
empty :=
space := $(empty) $(empty)

typecheck: setup
	MYPYPATH=$(subst $(space),:,$(DIST_ROOTS)) $(BIN)/mypy anymodal benchmarks $(dir $(wildcard bridges/*/anymodal_*/__init__.py plugins/*/anymodal_*/__init__.py))

test: lint typecheck
	$(BIN)/pytest -q $(PYTEST_ARGS)

# Wheels and sdists of core, the hf bridge and every plugin, into dist/ (scripts/dist.py).
dist: setup
	$(BIN)/python scripts/dist.py --outdir dist

# The wheels without the source tree: built afresh, installed into a new venv in a temporary folder,
# then chat, plugins and the missing-plugin error from there (tests/test_wheels.py; 1-2 minutes).
dist-check: setup
	$(BIN)/pytest -q -p no:cacheprovider -m slow tests/test_wheels.py

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
