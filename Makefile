# Two entry points for a fresh machine: `make run` and `make test`.
# Both bootstrap .venv (Python 3.11), the Debian packages the tests and demo need,
# and the front-end packages from npm. Nothing downloads models at run time.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
APT_PACKAGES := asterisk-core-sounds-en-wav asterisk-core-sounds-en espeak-ng sox chromium
STAMP := $(VENV)/.installed

.PHONY: run test install apt lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

apt:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

install: apt $(STAMP)

run: install
	$(BIN)/voxgate serve --host 127.0.0.1 --port 8000

test: install
	HF_HUB_OFFLINE=1 $(BIN)/pytest -q

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: install
	HF_HUB_OFFLINE=1 $(BIN)/python -m benchmarks.run_all

clean:
	rm -rf $(VENV) .voxgate .pytest_cache .mypy_cache .ruff_cache
