# Every target creates .venv if missing and installs what it needs: on a fresh machine
# `make demo` and `make test` are the only two commands.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test test-fast bench lint clean image

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/embedding-ingest demo

# Three workers on two cores: a third of the suite's time is waiting (subprocesses, moto's HTTP, leases),
# which the third worker fills; worksteal lets an idle worker take queued tests from a busy one.
test: lint
	$(PY) -m pytest -n 3 --dist worksteal -q tests

test-fast: $(STAMP)
	$(PY) -m pytest -n 3 --dist worksteal -q tests -m "not slow"

bench: $(STAMP)
	$(PY) bench/run.py

# ruff, then the layer rules of the README's Architecture section (import-linter's contracts in
# pyproject.toml; about a second, so no cache is kept).
lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/lint-imports --no-cache --no-logo

# The Lambda container image (src/embedding_ingest/aws/deploy/Dockerfile) with docker or podman; with neither
# usable (not installed, or docker's daemon not running) it says so and succeeds. Not part of `test`.
IMAGE ?= embedding-ingest:latest
image:
	@builder=; for tool in docker podman; do \
	  if command -v $$tool >/dev/null 2>&1 && $$tool info >/dev/null 2>&1; then builder=$$tool; break; fi; \
	  if command -v $$tool >/dev/null 2>&1; then echo "make image: $$tool is installed but not usable ($$tool info fails: is its daemon running?)"; fi; \
	done; \
	if [ -z "$$builder" ]; then echo "make image: no usable docker or podman; no image built (install or start one, then rerun)"; exit 0; fi; \
	echo "$$builder build -f src/embedding_ingest/aws/deploy/Dockerfile -t $(IMAGE) ."; \
	$$builder build -f src/embedding_ingest/aws/deploy/Dockerfile -t $(IMAGE) .

clean:
	rm -rf $(VENV) .embedding-ingest .pytest_cache
