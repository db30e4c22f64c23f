# Two commands on a fresh clone: `make run` and `make test`. Both create .venv when needed.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: run test lint proto proto-check install clean bench

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

install: $(STAMP)

run: $(STAMP)
	$(BIN)/podgate serve

proto: $(STAMP)
	$(BIN)/python scripts/genproto.py

lint: $(STAMP)
	$(BIN)/python -m pip check
	$(BIN)/ruff check gateway tests scripts bench
	$(BIN)/lint-imports
	$(BIN)/mypy
	cd protos && $(abspath $(BIN))/buf lint
	$(BIN)/python scripts/genproto.py --check

test: lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) .podgate .pytest_cache .mypy_cache .ruff_cache
