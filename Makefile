# Fairway: `make up` runs the platform on embedded defaults, `make test` runs the whole suite.
# Both install what they need first (a pinned uv, then the locked environment in .venv).
SHELL := /bin/bash
UV_VERSION := 0.13.8
PYTHON := $(shell scripts/find-python)
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
export UV_PYTHON := $(PYTHON)
export UV_PYTHON_DOWNLOADS := never

.PHONY: install up test lint bench bench-kubesim bench-lifecycle asyncapi clean help
help:
	@echo "make up      run Fairway on this machine (embedded NATS, PostgreSQL, kubesim, 5 services)"
	@echo "make test    lint, import contracts and the full test suite"
	@echo "make bench   end-to-end throughput and latency on the embedded stack"
	@echo "make fuzz    the API against its OpenAPI document, many more examples than make test"
	@echo "make chaos   300 workloads on every service replicated while servers are killed (~15 min)"

.tools/bin/uv:
	@test -n "$(PYTHON)" || { echo "no Python >= 3.12 found" >&2; exit 1; }
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

install: $(if $(filter .tools/bin/uv,$(UV)),.tools/bin/uv)
	$(UV) sync --frozen --all-packages

up: install
	.venv/bin/fairway up

lint: install
	.venv/bin/ruff check .
	.venv/bin/lint-imports
	.venv/bin/vulture
	.venv/bin/pytest -q -p no:cacheprovider tests/test_import_cycles.py

asyncapi: install
	.venv/bin/python -m fairway_contracts.asyncapi > docs/asyncapi.json

# The configuration reference in docs/operations.md, from the settings classes' descriptions.
.PHONY: settings-doc
settings-doc: install
	.venv/bin/python -m fairway_devstack.settings_reference docs/operations.md

test: lint promtool kubectl chromium
	.venv/bin/pytest -q $(PYTEST_ARGS)

# promtool checks and unit-tests the alert rules (tests/deploy); Debian's prometheus package
# ships it. Installed when missing and we are root; otherwise the tests say how (and fail
# under CI=true rather than skip).
.PHONY: promtool
promtool:
	@command -v promtool >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; \
	  else echo "promtool missing: apt-get install prometheus (as root)" >&2; fi; }

# kubectl against kubesim (tests/kubesim/test_kubectl.py); Debian's kubernetes-client package
# ships it. The same way: installed when missing and we are root, the tests fail under CI=true
# rather than skip when it is still missing.
.PHONY: kubectl
kubectl:
	@command -v kubectl >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends kubernetes-client >/dev/null; \
	  else echo "kubectl missing: apt-get install kubernetes-client (as root)" >&2; fi; }

# Chromium drives the console's browser tests (tests/console, Playwright with this browser:
# `playwright install` is never run, it downloads browsers). Debian's chromium package, the
# same way: installed when missing and we are root; the tests fail under CI=true rather than
# skip when it is still missing.
.PHONY: chromium
chromium:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; \
	  else echo "chromium missing: apt-get install chromium (as root)" >&2; fi; }

# The console's pages as docs/console/*.png (shown in the README), from a platform started for
# the purpose with a few workloads seeded.
.PHONY: screenshots
screenshots: install chromium
	.venv/bin/python -m tests.console.screenshots

# The API against its OpenAPI document with FUZZ_EXAMPLES examples per operation instead of
# the suite's 25: the suite's Schemathesis test, then the Schemathesis command line with its
# coverage phase (tests/submission/fuzz_contract.py; report in .fairway/fuzz/).
FUZZ_EXAMPLES ?= 300
.PHONY: fuzz
fuzz: install
	FAIRWAY_CONTRACT_EXAMPLES=$(FUZZ_EXAMPLES) .venv/bin/pytest -q -p no:cacheprovider \
	  -o timeout=0 tests/submission/test_contract.py tests/submission/fuzz_contract.py

bench: install
	.venv/bin/python -m tests.bench.e2e_bench $(BENCH_ARGS)

# The long replicas test (tests/e2e/chaos_scenario.py, not collected by `make test`): bounded
# by its own deadlines and by this timeout.
.PHONY: chaos
chaos: install
	timeout 1800 .venv/bin/pytest -q -s -p no:cacheprovider -o python_files=chaos_scenario.py \
		--basetemp=$${TMPDIR:-/tmp}/fairway-chaos tests/e2e/chaos_scenario.py $(PYTEST_ARGS)

bench-lifecycle: install
	.venv/bin/python -m tests.bench.lifecycle_bench $(BENCH_ARGS)

bench-kubesim: install
	.venv/bin/python -m tests.bench.kubesim_bench $(BENCH_ARGS)

.PHONY: bench-scheduler
bench-scheduler: install
	.venv/bin/python -m tests.bench.scheduler_bench $(BENCH_ARGS)

clean:
	rm -rf .venv .tools .pytest_cache .ruff_cache
