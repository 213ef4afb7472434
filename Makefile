# The two commands of the README: `make run` serves Stackpilot, `make test` runs the whole suite.
PYTHON ?= python3

.PHONY: run test bench
run:
	$(PYTHON) -m pip install -q --disable-pip-version-check -r requirements.txt
	$(PYTHON) -m app

test:
	bash tests/prepare.sh
	$(PYTHON) -m pytest

bench:
	bash tests/prepare.sh
	for b in bench/bench_*.py; do $(PYTHON) $$b || exit 1; done
