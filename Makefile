# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-windows lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

# The whole suite: the import rules, every test on 3.11 (.venv), then the unit, contract and
# integration tests on 3.12 and 3.13 (nox sessions tests-3.12 and tests-3.13, see noxfile.py).
# Every step runs even if an earlier one fails; the exit status is non-zero if any failed.
test: $(STAMP)
	@failed=""; \
	$(BIN)/lint-imports || failed="$$failed lint-imports"; \
	$(BIN)/pytest || failed="$$failed pytest-3.11"; \
	$(BIN)/nox --reuse-existing-virtualenvs || failed="$$failed nox"; \
	if [ -n "$$failed" ]; then echo "make test: FAILED:$$failed" >&2; exit 1; fi; \
	echo "make test: lint-imports, pytest (3.11) and nox (3.12, 3.13) passed"

# The Windows lane: unit, contract and integration tests under a Windows CPython run by Wine, and
# the end-to-end CLI tests with the client under Wine (ci/windows/lane.py says how). Installs Wine
# and mingw-w64 with apt-get when missing; caches the rest in .windows-lane/.
test-windows: $(STAMP)
	$(BIN)/python ci/windows/lane.py test

lint: $(STAMP)
	$(BIN)/lint-imports

demo: $(STAMP)
	$(BIN)/python tests/refserver/demo.py

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) .nox build src/*.egg-info .pytest_cache .hypothesis
