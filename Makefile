# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-windows lint bench clean

# .venv holds exactly the lock, every file hash-checked: a changed lock rebuilds it from scratch
# (--clear when the lock is among $?, the prerequisites newer than the stamp); a changed
# pyproject.toml only reinstalls the package. pip reads no configuration (PIP_CONFIG_FILE=/dev/null
# and --isolated drop pip.conf and the PIP_* find-links, extra indexes and constraints), so PyPI is
# its only source. The lock holds setuptools and wheel too, so the editable install builds without
# fetching (--no-build-isolation), and --no-index makes it fail if the lock no longer meets
# pyproject.toml ("No matching distribution found"): then refresh the lock (README, "Dependencies
# and the lock file").
LOCK := requirements-test.lock
PIP_INSTALL := PIP_CONFIG_FILE=/dev/null $(BIN)/python -m pip install --isolated --disable-pip-version-check --quiet

$(STAMP): $(LOCK) pyproject.toml
	$(PYTHON) -m venv $(if $(filter $(LOCK),$?),--clear) $(VENV)
	$(PIP_INSTALL) --index-url https://pypi.org/simple --require-hashes -r $(LOCK)
	$(PIP_INSTALL) --no-index --no-build-isolation -e '.[test]'
	touch $(STAMP)

# The whole suite: the import rules, every test on 3.11 (.venv), then through nox (noxfile.py) the
# unit, contract and integration tests on 3.12 and 3.13 with the lock's versions (tests-3.12,
# tests-3.13), with the newest versions PyPI serves (tests-newest) and with the lowest versions
# pyproject.toml allows (tests-lowest). Every step runs even if an earlier one fails; the exit
# status is non-zero if any failed (pytest's exit 5, no test collected, is a failure too).
test: $(STAMP)
	@failed=""; \
	$(BIN)/lint-imports || failed="$$failed lint-imports"; \
	$(BIN)/pytest || failed="$$failed pytest-3.11"; \
	$(BIN)/nox --reuse-existing-virtualenvs || failed="$$failed nox"; \
	if [ -n "$$failed" ]; then echo "make test: FAILED:$$failed" >&2; exit 1; fi; \
	echo "make test: lint-imports, pytest (3.11) and nox (3.12, 3.13, newest, lowest) passed"

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

# The chaos run (bench/chaos.py; about 4 minutes, not part of `make test`): 12 processes sharing one session for
# 60 s per server kind, under signals, server faults and a restart. E.g. `make chaos CHAOS_ARGS="--seed 7"`.
.PHONY: chaos
chaos: $(STAMP)
	$(BIN)/python bench/chaos.py $(CHAOS_ARGS)

clean:
	rm -rf $(VENV) .nox build src/*.egg-info .pytest_cache .hypothesis
