# Set-up and day-to-day commands. `make run` and `make test` work on a fresh Debian machine.
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
HOME_DIR ?= $(CURDIR)/.supernode-home
RUFF = $(PYTHON) -m ruff
RUFF_CONFIG = --config .ci/ruff.toml
STAMP = .make-installed
SOURCES = $(wildcard supernode dfget_client tests bench)

.PHONY: install bytecode run test check lint format bench clean

$(STAMP): setup.cfg setup.py
	$(PIP) install --quiet --disable-pip-version-check --root-user-action=ignore -e '.[test]'
	touch $(STAMP)

# An editable install compiles no bytecode (pip does for a regular one), and with
# PYTHONDONTWRITEBYTECODE set no process ever writes it: every dfget and uploader would then
# compile the package again at start (~30-50 ms of CPU each).
bytecode:
	$(PYTHON) -m compileall -q supernode dfget_client

install: $(STAMP) bytecode

run: install
	$(PYTHON) -m supernode.cli --home-dir $(HOME_DIR) --console

test: install
	$(PYTHON) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

lint: install
	$(RUFF) format --check $(RUFF_CONFIG) $(SOURCES)
	$(RUFF) check $(RUFF_CONFIG) $(SOURCES)
	$(PYTHON) -m mypy supernode/protocol supernode/core dfget_client/plan.py dfget_client/http_server.py

format: install
	$(RUFF) format $(RUFF_CONFIG) $(SOURCES)
	$(RUFF) check --fix $(RUFF_CONFIG) $(SOURCES)

check: lint test

bench: install
	$(PIP) install --quiet --disable-pip-version-check --root-user-action=ignore -e '.[bench]'
	$(PYTHON) -m bench

clean:
	rm -rf $(STAMP) $(HOME_DIR) build *.egg-info
