# The two commands of the quick start: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
WITH_SERVICES := $(BIN)/python -m backend.embedded exec --

.PHONY: install native frontend run test test-fast reliability lint format protos clean-data stop-services

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

## the dashboard's scripts: npm ci from the committed lock file, bundled by esbuild into
## web/static/web/dist (git-ignored); rebuilt when the lock file or a source changes
FRONTEND := web/frontend
FRONTEND_DEPS := $(FRONTEND)/node_modules/.installed
FRONTEND_BUILT := web/static/web/dist/.built
$(FRONTEND_DEPS): $(FRONTEND)/package-lock.json
	cd $(FRONTEND) && npm ci --no-audit --no-fund --loglevel=error
	@touch $@
$(FRONTEND_BUILT): $(FRONTEND_DEPS) $(FRONTEND)/build.mjs $(wildcard $(FRONTEND)/src/*.js $(FRONTEND)/src/lib/*.js)
	cd $(FRONTEND) && npm run --silent build
	@touch $@
frontend: $(FRONTEND_BUILT)

## the trace receiver's native OTLP scan (ingest/decoders/otlp_native.py loads it with ctypes;
## without it, e.g. on a machine with no C compiler, every request takes the protobuf
## runtime's path: the same results, ~2x the receiver's CPU)
CC ?= cc
NATIVE := ingest/decoders/native/_otlp_scan.so
$(NATIVE): ingest/decoders/native/otlp_scan.c
	@if command -v $(CC) >/dev/null; then \
	  echo "$(CC) -O2 -shared -fPIC -o $@ $<"; \
	  $(CC) -O2 -Wall -Wextra -Werror -shared -fPIC -o $@ $<; \
	else echo "no C compiler ($(CC)): the trace receiver decodes with the protobuf runtime only"; fi
native: $(NATIVE)

install: $(STAMP) $(FRONTEND_BUILT) $(NATIVE)

## make run: migrate, create the demo org, then serve web + ingest workers + beat on :8000
run: $(STAMP) $(FRONTEND_BUILT) $(NATIVE)
	$(WITH_SERVICES) $(BIN)/python -m backend.runner

## make test: the whole suite against real PostgreSQL and Redis (embedded unless *_URL are set;
## the embedded ones live in their own data folder, apart from `make run`'s)
TEST_DATA_DIR ?= $(CURDIR)/.canopy/test
test: $(STAMP) $(FRONTEND_BUILT) $(NATIVE)
	CANOPY_DATA_DIR=$(TEST_DATA_DIR) $(WITH_SERVICES) $(BIN)/pytest $(PYTEST_ARGS)

## make test-fast: skip the browser and real-peer tests
test-fast: $(STAMP) $(FRONTEND_BUILT) $(NATIVE)
	CANOPY_DATA_DIR=$(TEST_DATA_DIR) $(WITH_SERVICES) $(BIN)/pytest -m "not e2e and not compat" $(PYTEST_ARGS)

## make reliability: the reliability suite's long parts (docs/reliability.md): the URL-map
## fuzzer with many fresh examples, then faults under steady load and load + a noisy tenant on
## the real stack (make run's processes on their own throw-away embedded servers)
FUZZ_EXAMPLES ?= 60
RELIABILITY_MINUTES ?= 3
reliability: $(STAMP) $(FRONTEND_BUILT)
	CANOPY_DATA_DIR=$(TEST_DATA_DIR) CANOPY_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) CANOPY_FUZZ_RANDOM=1 \
		$(WITH_SERVICES) $(BIN)/pytest -p no:cacheprovider -q tests/reliability $(PYTEST_ARGS)
	$(BIN)/python -m tests.reliability.faults
	$(BIN)/python -m tests.reliability.load --minutes $(RELIABILITY_MINUTES)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

stop-services: $(STAMP)
	$(BIN)/python -m backend.embedded stop

clean-data: stop-services
	rm -rf .canopy
