# Everything starts from `python3` and `make`: targets build the pinned .venv themselves.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PIP_VERSION := 25.3
PORT ?= 8765
CUSTOMERS ?= 500

.PHONY: help install test demo bench emulator clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

install: $(STAMP)  ## create .venv with the pinned development environment

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "pip==$(PIP_VERSION)"
	$(BIN)/python -m pip install --quiet --constraint constraints.txt --editable '.[dev]'
	touch $(STAMP)

test: install  ## run the whole test suite
	$(BIN)/python -m pytest

demo: install  ## run the customer lookup example DAG against the emulator and print the XCom
	$(BIN)/python scripts/demo.py

bench: install  ## measure the provider against the generic routes (prints one table, ~3 minutes)
	$(BIN)/python benchmarks/run.py

emulator: install  ## serve the Piriod emulator on 127.0.0.1:$(PORT) until Ctrl-C
	$(BIN)/piriod-emulator --port $(PORT) --customers $(CUSTOMERS)

clean:  ## remove the virtual environment and caches
	rm -rf $(VENV) .pytest_cache .hypothesis build dist
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
