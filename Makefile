# meshmart — a gRPC shop on a real service mesh (Consul Connect + Envoy).
# `make up` runs it, `make test` tests it; both install what they need first.

SHELL := /bin/bash
VENV  := .venv
PY    := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: help setup proto proto-check lint test test-servers test-unit breaking release-contracts test-go up down status logs run-local canary compose

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

setup: ## install what `make test` needs: the venv (pinned), the Go tools into ~/.cache/meshmart, chromium (idempotent)
	@tools/setup.sh test

# Only what the target runs (tools/setup.sh says what each profile holds).
.PHONY: setup-up setup-bench
setup-up:
	@tools/setup.sh up
setup-bench:
	@tools/setup.sh bench

proto: setup ## regenerate gen/ (Python, Go, descriptor set, OpenAPI) from proto/
	@tools/gen-proto.sh

proto-check: setup ## fail when gen/ is not what `make proto` would write
	@tools/gen-proto.sh --check

lint: setup ## ruff, mypy on the kit, the harness and bench, buf lint, go build of the Go stubs, go vet of Go services
	ruff check services tests tools bench harness
	mypy services/kit harness bench
	cd proto && buf lint
	cd gen/go && go build ./...
	for mod in services/*/go.mod; do (cd "$$(dirname "$$mod")" && go vet ./...) || exit 1; done

# ACL=0 runs the test meshes without Consul ACLs (topology.toml [mesh] acl: on), ACL=1 with.
test: setup lint proto-check breaking test-go test-servers ## the whole suite, mesh tests included (what CI runs)
	$(if $(ACL),MESHMART_MESH_ACL=$(ACL) )$(PY) -m pytest --durations=25

breaking: setup ## buf breaking: proto/ must stay wire/source compatible with the released contracts
	cd proto && buf breaking --against released.binpb

release-contracts: setup ## record the committed proto/ (HEAD) as the released contracts (commit it)
	buf build '.git#ref=HEAD,subdir=proto' --exclude-source-info -o proto/released.binpb

test-servers: setup ## build the servers only tests use (etcd, kube-apiserver for tests/k8s; cached)
	@nice -n 19 tools/bootstrap-go.sh $$(cd tools/go && ls */test-only | xargs -n1 dirname)

test-go: setup ## the Go services' own tests (go test)
	for mod in services/*/go.mod; do (cd "$$(dirname "$$mod")" && go test ./...) || exit 1; done

test-unit: setup ## only the in-process tests (no mesh)
	$(PY) -m pytest tests/unit

run-local: setup-up ## every built service on loopback without the mesh (Ctrl-C stops them)
	$(PY) tools/run_local.py

# --- the mesh (tools/mesh; everything derives from topology.toml) -------------------
# ADDRESS=127.0.0.x runs it on another loopback address (default 127.0.0.1).
# ACL=0 switches Consul ACLs off (on by default: default deny, tools/mesh/acl.py), ACL=1 on.
# HOSTS=3 runs the mesh on three simulated hosts (network namespaces, each its own Consul
# agent, three Consul servers; tools/mesh/hosts.py; needs pods: root).
# DB=postgresql keeps the services' state in PostgreSQL, reached through the sidecars
# (tools/mesh/postgres.py; default: SQLite files).
# Run as root, every instance gets its own network namespace (pods: tools/mesh/pods.py);
# without root, or with PODS=0, every instance shares the loopback (`up` says which).
up: setup-up ## start Consul, every service + its Envoy sidecar, config entries; wait; print status
	@$(if $(ACL),MESHMART_MESH_ACL=$(ACL) )$(if $(DB),MESHMART_MESH_DATABASE=$(DB) )$(if $(HOSTS),MESHMART_MESH_HOSTS=$(HOSTS) )$(PY) -m tools.mesh up$(if $(ADDRESS), --address $(ADDRESS))$(if $(filter 0,$(PODS)), --no-pods,$(if $(PODS), --pods))

down: ## stop the whole mesh gracefully and check no process of it is left
	@$(PY) -m tools.mesh down$(if $(ADDRESS), --address $(ADDRESS))

status: ## live table: instances, Consul health, sidecars, each caller's circuits
	@$(PY) -m tools.mesh status$(if $(ADDRESS), --address $(ADDRESS))

logs: ## follow a service's logs and its sidecars': make logs S=catalog [TRACE=<trace id>]
	@$(PY) -m tools.mesh logs $(S) $(if $(TRACE),--trace $(TRACE))

canary: ## shift traffic live between a service's releases: make canary PCT=10 (% to v2)
	@$(PY) -m tools.mesh.canary set $(PCT)

# --- events (NATS JetStream; services/kit/events.py, tools/mesh/nats.py) ---------------
.PHONY: replay-analytics test-events

replay-analytics: ## rebuild analytics' read model from the streams (`make up`'s NATS), compare it with the live one
	@MESHMART_NATS_URL=$${MESHMART_NATS_URL:-nats://127.0.0.1:4222} MESHMART_DATA_DIR=$${MESHMART_DATA_DIR:-.run/data} \
		$(PY) -m services.analytics.rebuild $(ARGS)

test-events: setup ## the event tests (a real nats-server of their own; no mesh)
	$(PY) -m pytest tests/events

# --- resilience under fire (tools/chaos, bench/) ---------------------------------------
.PHONY: demo bench test-chaos

demo: setup-up ## narrated chaos against `make up`'s mesh: kill, rolling restart, flaky/hung payment, NATS, intentions
	@$(PY) -m tools.chaos.demo

bench: setup-bench ## mesh overhead, one Python process, edge REST/gRPC, PlaceOrder, RSS, events, tuning -> bench/REPORT.md + report.png
	@$(PY) -m bench.report

test-chaos: setup ## only the chaos tests (they start a test mesh of their own, a few minutes)
	$(if $(ACL),MESHMART_MESH_ACL=$(ACL) )$(PY) -m pytest tests/chaos

# --- containers (tools/compose; docker-compose.yml derives from topology.toml) ---------
compose: setup ## regenerate docker-compose.yml, docker/compose.local.yml, prometheus/compose.yml, docker/requirements.txt (commit them)
	$(PY) -m tools.compose

.PHONY: compose-up compose-down compose-ps
.PHONY: compose-up compose-down compose-ps test-compose
test-compose: setup ## only tests/compose: the file's checks, and the shop in real containers (podman; builds the images)
	$(PY) -m pytest tests/compose

compose-up: setup ## build every image (locally with podman where no registry answers), docker-compose up --wait, print the URLs
	@$(PY) -m tools.compose.run up

compose-down: ## docker-compose down -v: no container, network or volume of the project left
	@$(PY) -m tools.compose.run down

compose-ps: ## docker-compose ps of make compose-up's containers
	@$(PY) -m tools.compose.run ps

# --- Python dependencies (pyproject.toml, locked in requirements.txt) -------------------
.PHONY: lock
lock: setup ## re-lock requirements.txt from pyproject.toml (keeps existing pins; UPGRADE=1 to move them), then make compose
	$(VENV)/bin/pip-compile --quiet --all-extras --strip-extras --no-emit-index-url --no-emit-trusted-host \
		--no-emit-find-links $(if $(UPGRADE),--upgrade) --output-file requirements.txt pyproject.toml
	$(PY) -m tools.compose

# --- Kubernetes (tools/k8s; deploy/k8s/ derives from topology.toml and the config entries) ---
.PHONY: k8s
k8s: setup ## regenerate deploy/k8s/ (manifests for consul-k8s, kustomize; commit it)
	$(PY) -m tools.k8s
