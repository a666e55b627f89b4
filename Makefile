# Every target creates .venv if missing and installs what it needs: on a fresh machine
# `make demo` and `make test` are the only two commands.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test test-fast bench bench-scale lint guard clean image

# Tools that cannot share the project's venv get their own under .tools/ (pinned; created on first use).
# checkov pins boto3==1.35.49, which the project's boto3 1.44.5 excludes.
TOOLS := .tools
CHECKOV_VERSION := 3.3.30
CHECKOV := $(TOOLS)/checkov/bin/checkov
LINT_STACK := build/lint/stack.json

# Installs go through uv (pinned below; itself from PyPI, into .tools/uv): same pins, and it resolves the
# rest to the same versions pip does (compared with `pip freeze`), but downloads and installs in parallel.
# .venv's packages are byte-compiled as pip did (this machine sets PYTHONDONTWRITEBYTECODE, so without it
# every process would compile them again); checkov's are not (lint runs it once: compiling all of it costs
# more than the one run saves). Setup + lint from nothing: 151 -> 71 s CPU. --seed keeps pip in .venv.
UV_VERSION := 0.13.8
UV := $(TOOLS)/uv/bin/uv
UV_FLAGS := --quiet --no-python-downloads

$(UV):
	$(PYTHON) -m venv $(TOOLS)/uv
	$(TOOLS)/uv/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(STAMP): pyproject.toml | $(UV)
	test -x $(PY) || $(UV) venv $(UV_FLAGS) --seed --python $(PYTHON) $(VENV)
	$(UV) pip install $(UV_FLAGS) --compile-bytecode --python $(PY) -e '.[dev,local-model]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/embedding-ingest demo

# Four workers on two cores: much of the suite's time is waiting (subprocesses, moto's HTTP, leases), which
# the other workers fill (2026-12-07, 2 cores Intel Xeon: 596 s with three, 512 s with four, pytest alone);
# worksteal lets an idle worker take queued tests from a busy one.
# The tests' files (pytest's tmp_path, the product's scratch dirs, every subprocess's) go to a directory of
# their own on a RAM filesystem where there is one (/dev/shm), removed afterwards: still real files, real
# SQLite and ChromaDB, but the many fsyncs of the local provider and SQLite cost no disk waits (the suite
# writes some hundreds of MB). Only with at least 4 GiB free there (a container's /dev/shm is often 64 MB,
# and Chromium uses it too); otherwise mktemp's usual place.
TEST_TMPDIR = tmp=$$( { [ "$$(df -Pk /dev/shm 2>/dev/null | awk 'NR==2 {print $$4}')" -ge 4194304 ] 2>/dev/null && \
	mktemp -d /dev/shm/embedding-ingest-tests.XXXXXX 2>/dev/null; } || mktemp -d) && \
	trap 'rm -rf "$$tmp"' EXIT && trap 'exit 130' INT TERM && export TMPDIR="$$tmp"
test: lint
	$(TEST_TMPDIR) && $(PY) -m pytest -n 4 --dist worksteal -q --durations=15 tests

test-fast: $(STAMP)
	$(TEST_TMPDIR) && $(PY) -m pytest -n 4 --dist worksteal -q tests -m "not slow"

bench: $(STAMP)
	$(PY) bench/run.py

# Not part of `make bench`: 1,000,000 x 384-d in ten publishes through the real line workflow
# (bench/scale.py); SCALE_ARGS passes options, e.g. SCALE_ARGS="--keep /var/tmp/scale".
bench-scale: $(STAMP)
	$(PY) bench/scale.py $(SCALE_ARGS)

$(CHECKOV): | $(UV)
	$(UV) venv $(UV_FLAGS) --python $(PYTHON) $(TOOLS)/checkov
	$(UV) pip install $(UV_FLAGS) --python $(TOOLS)/checkov/bin/python checkov==$(CHECKOV_VERSION)

# ruff, then the layer rules of the README's Architecture section (import-linter's contracts in
# pyproject.toml; about a second, so no cache is kept), then the rendered CloudFormation template through
# cfn-lint (which also validates both state machine definitions against the ASL schema) and checkov;
# checkov's skips, each with its reason, are in each resource's Metadata
# (src/embedding_ingest/aws/deploy/checkov_skips.py). --skip-download: no call home (checkov would
# otherwise fetch policy metadata from its vendor's API and fail offline). cfn-lint and checkov run side by
# side (each only reads the template); lint fails if either does.
lint: $(STAMP) $(CHECKOV)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/lint-imports --no-cache --no-logo
	@mkdir -p $(dir $(LINT_STACK))
	$(VENV)/bin/embedding-ingest aws template --output-file $(LINT_STACK)
	$(VENV)/bin/cfn-lint $(LINT_STACK) & cfn_lint=$$!; \
	$(CHECKOV) -f $(LINT_STACK) --framework cloudformation --skip-download --compact --quiet; checkov=$$?; \
	wait $$cfn_lint && exit $$checkov

# Optional, not part of lint or test: AWS Control Tower's proactive controls (cfn-guard rules) over the
# rendered template. cfn-guard 3.1.1 and the rules come from the npm package below (a registry tarball
# with static binaries; npm pack, not install: it peers on aws-cdk-lib). The controls this stack does
# not meet on purpose are left out (GUARD_SKIPPED: they have no in-template suppression):
#   CT.CLOUDWATCH.PR.2  met by the default: retention is the LogRetentionDays parameter (365), and
#                       cfn-guard compares literals only (a test checks the default)
#   CT.CLOUDWATCH.PR.3  log groups under a customer managed KMS key (logs hold ids and counts only)
#   CT.LAMBDA.PR.3      functions in a VPC (the provider functions must reach api.openai.com; EFS mode
#                       puts the two that mount it in the VPC)
#   CT.S3.PR.2          bucket access logging (needs a second bucket; CloudTrail data events instead)
#   CT.S3.PR.4          bucket event notifications (nothing consumes them)
#   CT.S3.PR.9          Object Lock (tidy deletes old snapshot versions; Object Lock would forbid it)
#   CT.S3.PR.10         SSE-KMS (SSE-S3 encrypts; a KMS key adds a key policy and per-request cost)
GUARD_PACKAGE := @cdklabs/cdk-validator-cfnguard@0.0.62
GUARD_DIR := $(TOOLS)/cfn-guard
GUARD_SKIPPED := ct-cloudwatch-pr-2 ct-cloudwatch-pr-3 ct-lambda-pr-3 ct-s3-pr-2 ct-s3-pr-4 ct-s3-pr-9 ct-s3-pr-10
$(GUARD_DIR)/package:
	mkdir -p $(GUARD_DIR)
	cd $(GUARD_DIR) && npm pack --silent $(GUARD_PACKAGE) && tar xzf cdklabs-cdk-validator-cfnguard-*.tgz

guard: $(STAMP) $(GUARD_DIR)/package
	@mkdir -p $(dir $(LINT_STACK))
	$(VENV)/bin/embedding-ingest aws template --output-file $(LINT_STACK)
	rm -rf $(GUARD_DIR)/rules && mkdir -p $(GUARD_DIR)/rules
	find $(GUARD_DIR)/package/rules/control-tower/cfn-guard -name 'ct-*.guard' \
	  $(foreach skip,$(GUARD_SKIPPED),! -name '$(skip).guard') -exec cp {} $(GUARD_DIR)/rules/ \;
	$(GUARD_DIR)/package/bin/ubuntu/x86_64/cfn-guard validate --data $(LINT_STACK) --rules $(GUARD_DIR)/rules \
	  --show-summary fail --output-format single-line-summary

# The Lambda container image (src/embedding_ingest/aws/deploy/Dockerfile) with docker or podman; with neither
# usable (not installed, or docker's daemon not running) it says so and succeeds. Not part of `test`.
# linux/amd64: the functions are x86_64 (an arm64 machine would build arm64). --provenance=false (docker
# only; podman adds no attestations): BuildKit would otherwise push an image index, which Lambda refuses.
IMAGE ?= embedding-ingest:latest
image:
	@builder=; for tool in docker podman; do \
	  if command -v $$tool >/dev/null 2>&1 && $$tool info >/dev/null 2>&1; then builder=$$tool; break; fi; \
	  if command -v $$tool >/dev/null 2>&1; then echo "make image: $$tool is installed but not usable ($$tool info fails: is its daemon running?)"; fi; \
	done; \
	if [ -z "$$builder" ]; then echo "make image: no usable docker or podman; no image built (install or start one, then rerun)"; exit 0; fi; \
	flags="--platform linux/amd64"; if [ "$$builder" = docker ]; then flags="$$flags --provenance=false"; fi; \
	echo "$$builder build $$flags -f src/embedding_ingest/aws/deploy/Dockerfile -t $(IMAGE) ."; \
	$$builder build $$flags -f src/embedding_ingest/aws/deploy/Dockerfile -t $(IMAGE) .

clean:
	rm -rf $(VENV) $(TOOLS) .embedding-ingest .pytest_cache
