# The two commands of the README: `make run` serves Stackpilot, `make test` runs the whole suite.
# Both use a virtual environment in .venv (Debian's own Python refuses system-wide pip installs).
VENV ?= .venv
PY := $(VENV)/bin/python
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: run test bench
run:
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	$(PY) -m app

test:
	VENV=$(VENV) bash tests/prepare.sh
	$(PY) -m pytest

bench:
	VENV=$(VENV) bash tests/prepare.sh
	for b in bench/bench_*.py; do $(PY) $$b || exit 1; done
