# deep-storage: developer entry points. `make help` lists them.
SHELL := /bin/bash
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export SPARK_LOCAL_IP ?= 127.0.0.1

SPARK_IMAGE_NAME ?= ghcr.io/ldamasio/rbs-spark
SPARK_IMAGE_TAG ?= $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)

.PHONY: help install jars lint format test test-unit test-integration demo clean

help:  ## this list
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s $$'\t'

$(BIN)/python:
	$(PY) -m venv $(VENV)

install: $(BIN)/python jars  ## venv with the project and its dev tools, plus the manifest's JARs
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"

jars:  ## fetch jars.lock's JARs and archives.lock's files (the metastore's schema scripts, Trino) into .cache, verified by sha256
	$(PY) spark_image/fetch_jars.py
	$(PY) spark_image/fetch_jars.py --manifest spark_image/archives.lock --dest .cache/archives
	$(PY) spark_image/unpack_archives.py

lint:  ## ruff lint and format check; the layer rules (import-linter's contracts in pyproject.toml)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache --no-logo

format:  ## ruff fix and format
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test:  ## every test: unit, then integration on real PostgreSQL, S3 (SeaweedFS) and Spark; the 15 slowest named
	$(BIN)/pytest -m "unit or not unit" -q --durations=15

test-unit:  ## the unit tests, in under a minute: no JVM, no service (tests/conftest.py checks it)
	$(BIN)/pytest -m unit -q

test-integration:  ## tests that start the services
	$(BIN)/pytest -m "not unit" -q

clean:  ## remove caches and local lakes (not the venv)
	rm -rf .pytest_cache .ruff_cache build dist *.egg-info local_lake demo_lake spark-warehouse

.PHONY: compile compile-check readme demo notebooks run-local

compile:  ## regenerate compiled/ from pipelines/ and components/
	$(BIN)/deep-storage compile

compile-check:  ## fail when compiled/ is stale
	$(BIN)/deep-storage compile --check

demo:  ## the whole pipeline locally: throwaway PostgreSQL, generated day, local lake, kfp.local
	$(BIN)/python -m demo.run

notebooks:  ## run examples/*.ipynb top to bottom against the demo lake (make demo first)
	$(BIN)/python examples/run.py

report-screenshot:  ## refresh docs/images/quality-report.png: the gate's page in headless Chromium
	DEEP_STORAGE_REPORT_SCREENSHOT=docs/images/quality-report.png $(BIN)/pytest -q \
		tests/test_report_browser.py -k verdict_first

readme:  ## regenerate components/*/README.md from the components
	$(BIN)/python -m deep_storage_kfp.pipelines.readmes

N ?= 100000
bench:  ## benchmarks: make bench N=1000000 (ratios against references measured in the same run)
	$(BIN)/python -m benchmarks.run --events $(N) $(BENCH_ARGS)

PER_DAY ?= 200000
bench-read:  ## the notebook reader vs DuckDB: make bench-read PER_DAY=1000000 (a week of silver)
	$(BIN)/python -m benchmarks.read_week --events-per-day $(PER_DAY) $(BENCH_ARGS)

COMMITS ?= 10000
bench-open:  ## opening the lake after a long history: make bench-open COMMITS=10000 (status from S3)
	$(BIN)/python -m benchmarks.open_table --commits $(COMMITS) $(BENCH_ARGS)

DAYS ?= 90
# PER_DAY ?= 200000 above is bench-read's default; this target's is 20000 (the command line wins).
bench-training: PER_DAY = 20000
bench-training:  ## a training set's release: make bench-training DAYS=90 PER_DAY=20000 (gold features in S3)
	$(BIN)/python -m benchmarks.training_set --days $(DAYS) --per-day $(PER_DAY) $(BENCH_ARGS)

# The Spark image (spark_image/): the tag is the package version, as in components/_image.py.
SPARK_IMAGE := $(SPARK_IMAGE_NAME):$(SPARK_IMAGE_TAG)
SPARK_IMAGE_SOURCE ?= $(shell sed -n 's/^Source = "\(.*\)"/\1/p' pyproject.toml)
SPARK_IMAGE_PLATFORM ?= linux/amd64
# Empty: the Dockerfile's default bases (official images). A name: that image as both bases, e.g.
# the Debian-built one of `make spark-image-base` (what CI does: it reaches no registry).
SPARK_IMAGE_BASE ?=
SPARK_IMAGE_DEBIAN_BASE ?= deep-storage-base:bookworm
PYSPARK_PIN := $(shell sed -n 's/.*"pyspark==\([^"]*\)".*/\1/p' pyproject.toml)
DOCKER ?= docker

.PHONY: wheels spark-image-base spark-image-build spark-image-push spark-image-build-push spark-image-smoke spark-image-ci hadolint lock

wheels:  ## requirements.lock's files into .cache/wheels, hash-checked, for the image build (an sdist where PyPI has no wheel)
	@[ "$$(uname -sm)" = "Linux $(if $(filter linux/arm64,$(SPARK_IMAGE_PLATFORM)),aarch64,x86_64)" ] || \
		{ echo "make wheels: this host is $$(uname -sm), the image is $(SPARK_IMAGE_PLATFORM): build where they match" >&2; exit 1; }
	rm -rf .cache/wheels
	$(BIN)/pip download --quiet --no-deps --require-hashes --requirement spark_image/requirements.lock --dest .cache/wheels

spark-image-base:  ## a base image from Debian's packages (mmdebstrap + docker import), no registry needed
	DOCKER=$(DOCKER) bash spark_image/debian_base.sh $(SPARK_IMAGE_DEBIAN_BASE)

spark-image-build: jars wheels  ## build the image offline: JARs from .cache/jars, wheels from .cache/wheels and dist/
	rm -f dist/deep_storage-$(SPARK_IMAGE_TAG)-py3-none-any.whl
	$(BIN)/pip wheel --quiet --no-deps --wheel-dir dist .
	$(DOCKER) build --file spark_image/Dockerfile --platform $(SPARK_IMAGE_PLATFORM) --network none \
		$(if $(SPARK_IMAGE_BASE),--build-arg PYTHON_BASE=$(SPARK_IMAGE_BASE) --build-arg JAVA_BASE=$(SPARK_IMAGE_BASE)) \
		--build-arg VERSION=$(SPARK_IMAGE_TAG) --build-arg SOURCE=$(SPARK_IMAGE_SOURCE) \
		--tag $(SPARK_IMAGE) .

spark-image-push:  ## push the image built by spark-image-build (docker login ghcr.io first)
	$(DOCKER) push $(SPARK_IMAGE)

spark-image-build-push: spark-image-build  ## build, then push
	$(DOCKER) push $(SPARK_IMAGE)

# --hostname localhost: without a network Docker leaves the container's name unresolvable, which
# Java reports as an error (a pod's name resolves).
spark-image-smoke:  ## check the built image offline: versions, Java 17, the manifest's JARs, a local Spark session
	$(DOCKER) run --rm --network none --hostname localhost --platform $(SPARK_IMAGE_PLATFORM) $(SPARK_IMAGE) \
		bash /opt/deep-storage/smoke.sh $(SPARK_IMAGE_TAG) $(PYSPARK_PIN)

spark-image-ci:  ## CI's image part from nothing: Docker engine, Debian base, build, smoke (spark_image/ci.sh)
	bash spark_image/ci.sh

hadolint:  ## lint spark_image/Dockerfile (hadolint from PyPI, spark_image/.hadolint.yaml)
	$(BIN)/hadolint --config spark_image/.hadolint.yaml spark_image/Dockerfile

# The venv's versions are the constraints: the lock pins what the tests ran on, nothing newer.
LOCK_PLATFORM := $(if $(filter linux/arm64,$(SPARK_IMAGE_PLATFORM)),aarch64,x86_64)-unknown-linux-gnu
lock:  ## regenerate spark_image/requirements.lock with hashes (uv pip compile): pyproject's runtime dependencies at the venv's versions
	@mkdir -p .cache
	$(BIN)/pip freeze --exclude-editable >.cache/venv-constraints.txt
	$(BIN)/uv pip compile --quiet pyproject.toml spark_image/build-tools.in \
		--constraint .cache/venv-constraints.txt --generate-hashes \
		--python-version 3.11 --python-platform $(LOCK_PLATFORM) \
		--custom-compile-command "make lock" --output-file spark_image/requirements.lock
