# Everything starts from `python3` and `make`: targets build the pinned .venv themselves.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
VENV2 ?= .venv-airflow2
STAMP2 := $(VENV2)/.installed
PIP_VERSION := 25.3
PORT ?= 8765
CUSTOMERS ?= 500

.PHONY: help install install-airflow2 test test-airflow2 test-python-newest lint demo bench e2e emulator clean

help:  ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | sed -e 's/:.*## /\t/' -e 's/\$$(PORT)/$(PORT)/g'

install: $(STAMP)  ## create .venv with the pinned development environment

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "pip==$(PIP_VERSION)"
	$(BIN)/python -m pip install --quiet --constraint constraints.txt --editable '.[dev]'
	touch $(STAMP)

test: install  ## run the whole test suite (Airflow 3)
	$(BIN)/python -m pytest

lint: install  ## ruff (rules and formatting) on the whole tree, mypy on the package
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

install-airflow2: $(STAMP2)  ## create .venv-airflow2: the same pinned tools with Airflow 2.11

$(STAMP2): pyproject.toml constraints-airflow2.txt
	$(PYTHON) -m venv $(VENV2)
	$(VENV2)/bin/python -m pip install --quiet "pip==$(PIP_VERSION)"
	$(VENV2)/bin/python -m pip install --quiet --constraint constraints-airflow2.txt --editable '.[dev]'
	touch $(STAMP2)

test-airflow2: install-airflow2  ## run the same suite on Airflow 2.11
	$(VENV2)/bin/python -m pytest

# The oldest Python the package claims (3.11) is the one `make test` runs on; this is the newest (3.13),
# found on PATH or in pyenv, with the same pins as .venv.
PY_NEWEST ?= 3.13
VENV_NEWEST := .venv-py$(PY_NEWEST)

test-python-newest: $(VENV_NEWEST)/.installed  ## run the whole suite on the newest Python claimed (3.13)
	$(VENV_NEWEST)/bin/python -m pytest

$(VENV_NEWEST)/.installed: pyproject.toml constraints.txt
	@py=python$(PY_NEWEST); "$$py" -c '' 2>/dev/null || py="$$(pyenv prefix $(PY_NEWEST) 2>/dev/null)/bin/python$(PY_NEWEST)"; \
	"$$py" -c '' 2>/dev/null || { echo "no Python $(PY_NEWEST) on PATH or in pyenv" >&2; exit 1; }; \
	"$$py" -m venv $(VENV_NEWEST)
	$(VENV_NEWEST)/bin/python -m pip install --quiet "pip==$(PIP_VERSION)"
	$(VENV_NEWEST)/bin/python -m pip install --quiet --constraint constraints.txt --editable '.[dev]'
	touch $@

demo: install  ## run the customer lookup example DAG against the emulator and print the XCom
	$(BIN)/python scripts/demo.py

bench: install  ## measure the provider against the generic routes (prints one table, ~7 minutes)
	$(BIN)/python benchmarks/run.py

e2e: install  ## a real deployment on loopback, on the LocalExecutor then on Celery (Redis, two workers); the UI in Chromium
	bash scripts/e2e.sh

emulator: install  ## serve the Piriod emulator on 127.0.0.1:$(PORT) until Ctrl-C
	$(BIN)/piriod-emulator --port $(PORT) --customers $(CUSTOMERS)

clean:  ## remove the virtual environment and caches
	rm -rf $(VENV) $(VENV2) $(VENV_NEWEST) .pytest_cache .hypothesis build dist
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
