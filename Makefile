# Xployt scan gateway. Only Python 3.11+ and make are assumed; everything else is installed here.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help install run run-mock run-cluster mock-scanner test lint format clean bench bench-flood bench-storm image

help:
	@echo "make run-mock     start the mock scanner and the gateway (demo, Ctrl-C stops both)"
	@echo "make run-cluster  start Redis, the mock scanner and two gateway replicas (Ctrl-C stops all)"
	@echo "make run          start the gateway alone"
	@echo "make test         run the whole test suite"
	@echo "make lint         ruff, mypy and the import contracts (setup.cfg [importlinter])"
	@echo "make bench-flood  the gateway's memory under hostile scanner floods (FLOOD_ARGS=...)"
	@echo "make bench-storm  5000 streams reconnecting at once: drain and restart (STORM_ARGS=...)"
	@echo "make image        the container image $(IMAGE) (podman or docker; BASE_IMAGE=...)"

$(STAMP): setup.cfg pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "Python 3.11 or newer is required (found $(PYTHON))"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,dev,fast]'
	@touch $@

install: $(STAMP)

run: $(STAMP)
	$(BIN)/python -m gateway

mock-scanner: $(STAMP)
	$(BIN)/python -m mock_scanner

run-mock: $(STAMP)
	@PYTHON=$(BIN)/python scripts/run-mock.sh

# Needs redis-server (Debian: apt-get install redis-server); REDIS_PORT (default 6390).
run-cluster: $(STAMP)
	@PYTHON=$(BIN)/python scripts/run-cluster.sh

# pytest exits non-zero (5) when it collects no test, so an empty run fails here too. Coverage
# of gateway and mock_scanner (subprocess gateways included) below COVERAGE_FLOOR fails the run;
# the floor is a little under the figure measured when it was set (see the README).
COVERAGE_FLOOR ?= 95
test: $(STAMP)
	$(BIN)/python -m pytest --cov=gateway --cov=mock_scanner --cov-report=term:skip-covered \
		--cov-fail-under=$(COVERAGE_FLOOR)

lint: $(STAMP)
	$(BIN)/ruff check gateway mock_scanner tests bench scripts
	$(BIN)/ruff format --check gateway mock_scanner tests bench scripts
	$(BIN)/mypy
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff format gateway mock_scanner tests bench scripts
	$(BIN)/ruff check --fix gateway mock_scanner tests bench scripts

# SSE fan-out, pipeline and collection benchmarks beside the shared harness's anchors, in one
# session (about 15 minutes on 2 cores; see docs/BENCHMARKS.md). BENCH_ANCHORS=0 skips the anchors;
# BENCH_ARGS passes more options to bench/run.py (e.g. --profile fanout:5000).
SHARED_BENCH ?= ../shared/bench
SSEBENCH_WORK ?= /tmp/ssebench-work
BENCH_ANCHORS ?= 1
BENCH_ANCHOR_SERVERS ?= nchan-w1,aiohttp-sse,fastapi-sse-starlette
BENCH_SCENARIOS ?= 100x20x10,1000x20x10,5000x20x10,10000x20x10,1000x500x5
BENCH_ARGS ?=

bench: $(STAMP)
	@if [ ! -f $(SHARED_BENCH)/ssebench.py ] || [ ! -f $(SHARED_BENCH)/run_anchors.sh ]; then \
		echo "make bench: the shared SSE harness is missing: no $(SHARED_BENCH)/ssebench.py or run_anchors.sh."; \
		echo "It is shared/bench beside the project; SHARED_BENCH=/path/to/bench points elsewhere."; \
		exit 1; fi
	@since=$$(date +%s); anchors=""; \
	if [ "$(BENCH_ANCHORS)" != 0 ]; then \
		SSEBENCH_WORK=$(SSEBENCH_WORK) bash $(SHARED_BENCH)/run_anchors.sh --only $(BENCH_ANCHOR_SERVERS) \
			--scenarios $(BENCH_SCENARIOS) --prefix anchors-xployt || exit 1; \
		anchors="--anchors-prefix anchors-xployt --anchors-since $$since"; \
	fi; \
	SSEBENCH_WORK=$(SSEBENCH_WORK) $(BIN)/python bench/run.py --shared $(SHARED_BENCH) \
		--fanout $(BENCH_SCENARIOS) $$anchors $(BENCH_ARGS)

# Reconnect storms (issue 14): 5000 streams of one scan told to reconnect at once, on two
# replicas on Redis (one drains) and on one gateway restarted; with and without the retry spread
# (about 6 minutes on 2 cores; see docs/BENCHMARKS.md). Not in `make bench`: a storm that goes
# badly runs for minutes. STORM_ARGS passes options to bench/run.py, e.g. --storm-runs 2.
STORM_ARGS ?=

bench-storm: $(STAMP)
	$(BIN)/python bench/run.py --shared $(SHARED_BENCH) --parts storm \
		--out bench/results/$$(date +%Y-%m-%d-%H%M)-storm $(STORM_ARGS)

# The gateway's memory while a hostile scanner floods it, one shape at a time (about 8 minutes;
# see docs/BENCHMARKS.md). FLOOD_ARGS passes options to bench/flood.py, e.g.
# FLOOD_ARGS='--shapes sse-long-event,sse-findings --gigabytes 0.1'.
FLOOD_ARGS ?=

bench-flood: $(STAMP)
	$(BIN)/python bench/flood.py --out bench/results/$$(date +%Y-%m-%d-%H%M)-flood.md $(FLOOD_ARGS)

# The gateway's image, with podman (else docker; ENGINE=docker chooses): wheels built here for
# the base image's Python, installed in it without network (README, Deployment). BASE_IMAGE is
# any Debian-based image whose Python is this one's; the default needs a registry.
PY_VERSION = $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])')
BASE_IMAGE ?= docker.io/library/python:$(PY_VERSION)-slim-bookworm
IMAGE ?= localhost/xployt-gateway:dev
ENGINE ?=

image: $(STAMP)
	$(BIN)/python scripts/build_image.py --base-image $(BASE_IMAGE) --tag $(IMAGE) \
		$(if $(ENGINE),--engine $(ENGINE))

clean:
	rm -rf $(VENV) var build .pytest_cache .mypy_cache .ruff_cache .import_linter_cache .grimp_cache .coverage .coverage.* *.egg-info
