# Two entry points for a fresh machine: `make run` and `make test`.
# Both bootstrap .venv (Python 3.11), the Debian packages the tests and demo need,
# and the front-end packages from npm. Nothing downloads models at run time.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# nats-server: the live bus the cluster tests start; redis-server: measured against it (make bench);
# haproxy: the one port in front of the replicas in `voxgate cluster`; festival and its kal
# voice: the development caller's and stt_short_answers' speech (make bench)
APT_PACKAGES := asterisk-core-sounds-en-wav asterisk-core-sounds-en espeak-ng sox chromium postgresql nats-server redis-server haproxy festival festvox-kallpc16k
STAMP := $(VENV)/.installed
# the front-end's npm packages (three.js, livekit-client), copied into web/static/vendor/ by web/scripts/vendor.js
WEB_STAMP := web/static/vendor/.installed

# the LiveKit server the LiveKit worker tests start (tests/livekit_server.py): not in
# Debian, so built from the Go module proxy into a cache folder, once (15-25 min on two
# cores, then kept); v1.13.5's go.mod has no replace directives, so `go install` takes it.
# VOXGATE_SKIP_LIVEKIT=1 skips the build and those tests.
LIVEKIT_VERSION := v1.13.5
LIVEKIT_DIR := $(HOME)/.cache/voxgate/livekit-$(LIVEKIT_VERSION)
LIVEKIT_SERVER := $(LIVEKIT_DIR)/server

.PHONY: run test install apt lint bench clean livekit cluster

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

$(WEB_STAMP): web/package.json web/package-lock.json web/scripts/vendor.js
	@command -v npm >/dev/null || { echo "npm (Node.js >= 20) is needed for the web assets"; exit 1; }
	cd web && npm ci --no-audit --no-fund --loglevel=error
	touch $(WEB_STAMP)

install: apt $(STAMP) $(WEB_STAMP)

$(LIVEKIT_SERVER):
	@command -v go >/dev/null || { echo "Go is needed to build livekit-server for the LiveKit tests (or set VOXGATE_SKIP_LIVEKIT=1)"; exit 1; }
	mkdir -p $(LIVEKIT_DIR)
	GOBIN=$(LIVEKIT_DIR) go install github.com/livekit/livekit-server/cmd/server@$(LIVEKIT_VERSION)

livekit:
	@if [ "$(VOXGATE_SKIP_LIVEKIT)" = 1 ]; then echo "VOXGATE_SKIP_LIVEKIT=1: livekit-server not built"; \
	else $(MAKE) --no-print-directory $(LIVEKIT_SERVER); fi

run: install
	$(BIN)/voxgate serve --host 127.0.0.1 --port 8000

# two workers, each test file on one of them (module-scoped servers stay in one process):
# most tests stream audio in real time and wait, so the suite takes half the time
test: install livekit
	HF_HUB_OFFLINE=1 $(BIN)/pytest -q -n 2 --dist loadfile

# PostgreSQL, NATS, two replicas and HAProxy on http://127.0.0.1:8000, to try a
# multi-node deployment on one machine (docs/deployment.md, "Trying it: voxgate cluster")
cluster: install
	HF_HUB_OFFLINE=1 $(BIN)/voxgate cluster --port 8000

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

bench: install livekit
	HF_HUB_OFFLINE=1 $(BIN)/python -m benchmarks.run_all

clean:
	rm -rf $(VENV) .voxgate .pytest_cache .mypy_cache .ruff_cache web/node_modules web/static/vendor
