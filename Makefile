# meshmart — a gRPC shop on a real service mesh (Consul Connect + Envoy).
# `make up` runs it, `make test` tests it; both install what they need first.

SHELL := /bin/bash
VENV  := .venv
PY    := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: help setup proto proto-check lint test test-unit up down status logs run-local canary compose

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

setup: ## install the venv (pinned) and build the Go tools into ~/.cache/meshmart (idempotent)
	@tools/setup.sh

proto: setup ## regenerate gen/ (Python, Go, descriptor set, OpenAPI) from proto/
	@tools/gen-proto.sh

proto-check: setup ## fail when gen/ is not what `make proto` would write
	@tools/gen-proto.sh --check

lint: setup ## ruff, mypy on the kit, buf lint, go build of the Go stubs
	ruff check services tests tools
	mypy services/kit
	cd proto && buf lint
	cd gen/go && go build ./...

test: setup lint proto-check ## the whole suite, mesh tests included (what CI runs)
	$(PY) -m pytest

test-unit: setup ## only the in-process tests (no mesh)
	$(PY) -m pytest tests/unit

run-local: setup ## every built service on loopback without the mesh (Ctrl-C stops them)
	$(PY) tools/run_local.py

# --- the mesh (tools/mesh; everything derives from topology.toml) -------------------
up: setup ## start Consul, every service + its Envoy sidecar, config entries; wait; print status
	@$(PY) -m tools.mesh up

down: ## stop the whole mesh gracefully and check no process of it is left
	@$(PY) -m tools.mesh down

status: ## live table: instances, Consul health, sidecars, each caller's circuits
	@$(PY) -m tools.mesh status

logs: ## follow a service's logs and its sidecars': make logs S=catalog [TRACE=<trace id>]
	@$(PY) -m tools.mesh logs $(S) $(if $(TRACE),--trace $(TRACE))

canary: ## shift traffic live between a service's releases: make canary PCT=10 (% to v2)
	@$(PY) -m tools.mesh.canary set $(PCT)

# --- containers (tools/compose; docker-compose.yml derives from topology.toml) ---------
compose: setup ## regenerate docker-compose.yml and docker/requirements.txt (commit both)
	$(PY) -m tools.compose
