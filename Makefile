# Signoff: `make local` runs the whole product on this machine; `make test` checks it.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Python 3.13 (the Lambda runtime): pyenv's 3.13 if there is one, else python3.13 on PATH.
PY313 ?= $(shell p=$$(pyenv prefix 3.13 2>/dev/null | head -1); \
	if [ -x "$$p/bin/python3.13" ]; then echo "$$p/bin/python3.13"; \
	elif python3.13 -c pass 2>/dev/null; then command -v python3.13; fi)
VENV := .venv
PY := $(VENV)/bin/python
SAM_VENV := .tools/sam
SAM := $(SAM_VENV)/bin/sam
SAM_CLI_VERSION := 1.170.0
export SAM_CLI_TELEMETRY := 0
export PYTHONPATH := layers/signoff:.

.PHONY: help venv local sam-local demo bench mutation reliability test lint openapi verify-receipts replay browser-deps build deploy deploy-guided clean

help:
	@echo "make local   run the whole product locally (API :3000, inbox :3001, OpenAI :3002, AWS :3003)"
	@echo "make sam-local  the functions under sam local (Docker or Finch), moto and the emulators beside them"
	@echo "make demo    the refund scenario end to end, approved then denied"
	@echo "make bench   requests and cost per approved action, 100 conversations at once, cold imports"
	@echo "make reliability  drills (duplicates, crashes, faults, forgeries); writes reliability.json"
	@echo "make test    lint, template checks and the test suite"
	@echo "make test-unit  one tier alone, no lint (unit, contract, conformance, e2e, handlers, integration,"
	@echo "             fuzz, reliability, browser, sandboxes, samlocal): make test-unit takes seconds"
	@echo "make mutation  mutmut over domain/ and logic/ with the unit tests; kill rate per module"
	@echo "make openapi regenerate openapi.yaml from the client API's routes and models"
	@echo "make replay POLICY=path  what a candidate policy would have done to the recorded calls"
	@echo "make verify-receipts  check a tenant's signed receipts with only the JWKS (API=... KEY=...)"
	@echo "make build   sam build (needs Python 3.13)"
	@echo "make deploy  sam deploy with samconfig.toml's [default] (ENV=prod for [prod]); deploy-guided to choose"

$(VENV)/.installed: requirements-dev.txt layers/signoff/requirements.txt
	@test -x "$(PY313)" || { echo "Python 3.13 not found (install it, or set PY313=/path/to/python3.13)"; exit 1; }
	test -d $(VENV) || $(PY313) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

$(SAM_VENV)/.installed:
	@test -x "$(PY313)" || { echo "Python 3.13 not found"; exit 1; }
	test -d $(SAM_VENV) || $(PY313) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(SAM_VENV)/bin/python -m pip install --quiet aws-sam-cli==$(SAM_CLI_VERSION)
	touch $@

venv: $(VENV)/.installed

local: $(VENV)/.installed
	$(PY) -m local.stack

# The functions in containers (sam local start-api / start-lambda), pointed at moto and the emulators.
# Needs Docker or Finch and `make build`; says so and stops where they are missing.
sam-local: $(VENV)/.installed
	SAM=$(SAM) $(PY) -m local.samlocal

demo: $(VENV)/.installed
	$(PY) -m local.demo

# Requests and cost per approved action, 100 gated conversations at once on the local stack, and each
# handler's import time in fresh interpreters (the cold-start cost of its code); writes bench/results.json.
bench: $(VENV)/.installed
	$(PY) -m local.bench

# Mutation testing of the domain and the use cases with tests/unit (mutmut; about 8 min on 2 cores).
mutation: $(VENV)/.installed
	$(PY) -m local.mutation

# Faults, floods and forgeries against the local stack; prints a table, writes reliability.json.
reliability: $(VENV)/.installed
	$(PY) -m local.reliability

# Check every receipt of a tenant against the public keys (make local running, or API=... KEY=...).
# The stack's own port and key when they were moved (SIGNOFF_API_PORT, SIGNOFF_API_KEY), as `make local` reads them.
API ?= http://127.0.0.1:$(or $(SIGNOFF_API_PORT),3000)
KEY ?= $(or $(SIGNOFF_API_KEY),local-dev-key)
verify-receipts: $(VENV)/.installed
	$(PY) -m signoff.verify --jwks $(API)/.well-known/jwks.json --api $(API) --key $(KEY)

# What a candidate policy would have done to the recorded calls (make local running): POLICY=path.
replay: $(VENV)/.installed
	$(PY) -m local.replay $(POLICY) --api $(API) --key $(KEY)

# openapi.yaml is generated from the client API's code; a test fails when the committed one is stale.
openapi: $(VENV)/.installed
	$(PY) -m local.openapi

lint: $(VENV)/.installed $(SAM_VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/cfn-lint --include-checks I -- template.yaml
	$(VENV)/bin/openapi-spec-validator openapi.yaml
	$(SAM) validate --lint

# The browser tests drive Debian's Chromium; Playwright never downloads a browser.
browser-deps:
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "Installing Debian's chromium for the browser tests..."; \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >/dev/null 2>&1 \
			|| echo "chromium could not be installed: the browser tests will be skipped"; \
	else echo "chromium is missing and cannot be installed here: the browser tests will be skipped"; fi

# The unit tests first (the gate's logic in memory, seconds); then each function in a process of its
# own with exactly its template environment (a pytest process of its own: tests/sandboxes); then
# everything else on the local stack.
test: lint browser-deps
	$(VENV)/bin/pytest tests/unit
	$(VENV)/bin/pytest tests/sandboxes
	$(VENV)/bin/pytest --ignore=tests/unit --ignore=tests/sandboxes

# One tier of tests alone, without lint: `make test-unit` (seconds) while working on the logic.
TIERS := unit contract conformance e2e handlers integration fuzz reliability browser sandboxes samlocal
.PHONY: $(addprefix test-,$(TIERS))
$(addprefix test-,$(TIERS)): test-%: $(VENV)/.installed
	$(VENV)/bin/pytest tests/$*

build: $(VENV)/.installed $(SAM_VENV)/.installed
	PATH="$(abspath $(VENV))/bin:$$PATH" $(SAM) build

# ENV names a samconfig.toml environment (default, prod, ...): no prompts, no keys typed.
ENV ?= default
deploy: build
	$(SAM) deploy --config-env $(ENV)

# The first time, to choose the stack name, region and parameters interactively.
deploy-guided: build
	$(SAM) deploy --guided --config-env $(ENV)

clean:
	rm -rf .aws-sam .pytest_cache .ruff_cache test-output
