# The commands the README and .ci/run use: one way to do each thing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum < pyproject.toml | cut -d' ' -f1)
CHROMIUM := /usr/bin/chromium

.PHONY: install run test bench lint browser clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)

# Debian's Chromium for the browser tests (never Playwright's own download).
browser:
	@test -x $(CHROMIUM) || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) ; } || \
	  echo "Chromium not installed: browser tests will be skipped (apt-get install chromium)"

run: install
	$(PY) -m streams up

test: install browser
	$(PY) -m pytest $(PYTEST_ARGS)

bench: install browser
	@set -e; for bench in tests/benchmarks/bench_*.py; do \
	  echo "== $$bench"; $(PY) $$bench; done

lint: install
	$(PY) -m ruff check streams dashboard layouts tests
	$(PY) -m mypy

clean:
	rm -rf $(VENV) var tests/artifacts .pytest_cache .mypy_cache .ruff_cache
