# Flotilla — single entry points for people and CI.
SHELL := /bin/bash
.DEFAULT_GOAL := help
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON ?= 3.11
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
PYTEST_ARGS ?=
HELM := $(shell command -v helm 2>/dev/null || echo .tools/bin/helm)
RELEASE ?= flotilla
NAMESPACE ?= flotilla
KIND_CLUSTER ?= flotilla
IMAGE_TAG ?= 0.1.0

.PHONY: help setup run test test-fast lint catalogue format bench crds browser helm engine base-images images chart-check e2e kind-up kind-load deploy undeploy port-forward

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

setup:  ## install uv if missing, then the locked workspace into .venv (idempotent)
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	@UV_COMPILE_BYTECODE=1 $(UV) sync --all-packages --frozen --quiet
	@# NOTE: bytecode ahead of time, so no process compiles its imports at each start (with
	@# PYTHONDONTWRITEBYTECODE set, as on this machine, every start did: 3.7 s -> 1.5 s for a worker)
	@$(UV) run --frozen python -m compileall -q -j 0 services operator >/dev/null

run: setup  ## start the whole platform locally (edge on :8080, console on :8090)
	@$(UV) run --frozen flotilla up

#: the fast tier: every test but the whole-platform, browser, container and chaos ones, on
#: FAST_WORKERS pytest-xdist workers (its tests wait more than they compute: 6 on two cores)
FAST := unit or integration
FAST_WORKERS ?= 6

test-fast: setup lint helm  ## lint, then the unit and integration tiers (no containers, browser, chaos or whole platform): under 3 minutes
	@$(UV) run --frozen pytest -m "$(FAST)" -n $(FAST_WORKERS) --dist worksteal $(PYTEST_ARGS)

test: setup lint browser helm engine  ## lint, the fast tier first (a simple failure shows in minutes), then the e2e, browser, container and chaos tiers
	@# NOTE: exit 5 is "no test selected" (PYTEST_ARGS naming tests of one tier only)
	@$(UV) run --frozen pytest -m "$(FAST)" -n $(FAST_WORKERS) --dist worksteal $(PYTEST_ARGS) || [ $$? = 5 ]
	@$(UV) run --frozen pytest -m "not ($(FAST))" $(PYTEST_ARGS) || [ $$? = 5 ]

lint: setup  ## ruff, mypy (strict on src/), import-linter contracts
	@$(UV) run --frozen ruff check .
	@$(UV) run --frozen ruff format --check .
	@$(UV) run --frozen mypy services/*/src operator/src
	@$(UV) run --frozen lint-imports
	@$(UV) run --frozen python scripts/catalogue.py --check

catalogue: setup  ## write what the component catalogue generates: charts/flotilla/catalogue.yaml, docs/contracts.md's tables
	@$(UV) run --frozen python scripts/catalogue.py

format: setup  ## apply ruff's formatting and safe fixes
	@$(UV) run --frozen ruff check --fix .
	@$(UV) run --frozen ruff format .

bench: setup  ## run the benchmarks (see docs/benchmarks.md)
	@$(UV) run --frozen python bench/platform_load.py
	@$(UV) run --frozen python bench/floor.py
	@$(UV) run --frozen python bench/edge.py
	@$(UV) run --frozen python bench/span_export.py
	@$(UV) run --frozen python bench/worker.py
	@$(UV) run --frozen python bench/memory.py

crds:  ## copy the CRDs from k8s/crds/ (the source) into the chart (Helm cannot template crds/)
	@mkdir -p charts/flotilla/crds
	@cp k8s/crds/*.yaml charts/flotilla/crds/

browser:  ## Debian's chromium for the browser tests, installed with apt when missing (as root)
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
		&& echo "installing Debian's chromium for the browser tests" \
		&& DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; } \
		|| echo "chromium is missing and could not be installed: run 'apt-get install chromium' (the browser tests skip locally, fail under CI)"

helm:  ## a real helm binary: the one on PATH, else extracted into .tools/bin/ (see scripts/helm.py)
	@command -v helm >/dev/null 2>&1 || test -x .tools/bin/helm || python3 scripts/helm.py >/dev/null

engine: setup  ## a running Docker Engine: Debian's docker.io installed and dockerd started when missing (as root)
	@$(UV) run --frozen python scripts/images.py engine \
		|| echo "no Docker Engine: the container tests skip locally, fail under CI"

chart-check: setup helm crds  ## lint, render (5 value sets), validate (Kubernetes schemas, CRD), scan (checkov) the chart
	@$(UV) run --frozen pytest -q tests/charts $(PYTEST_ARGS)

e2e: setup helm crds  ## the user's path on the cluster KUBECONFIG names: install, test, scale, fail over, upgrade, uninstall (docs/kubernetes.md)
	@$(UV) run --frozen python -m tests.cluster.preflight
	@FLOTILLA_CLUSTER_E2E=1 HELM_ARGS="$(HELM_ARGS)" IMAGE_TAG=$(IMAGE_TAG) E2E_IMAGE_LOADER="$(E2E_IMAGE_LOADER)" \
		$(UV) run --frozen pytest tests/cluster -p no:cacheprovider -q -s --timeout 1800 $(PYTEST_ARGS)

# --- the kind path (needs kind; it cannot run on the development machine) -----------------
kind-up:  ## create the kind cluster of k8s/kind-config.yaml (edge :8080, console :8090, Jaeger :16686)
	kind create cluster --config k8s/kind-config.yaml --name $(KIND_CLUSTER)

images: setup  ## build every member's image with BuildKit (localhost/flotilla/flotilla-<member>:$(IMAGE_TAG)), then their sizes
	@IMAGE_TAG=$(IMAGE_TAG) $(UV) run --frozen python scripts/images.py build

base-images: setup  ## stand-ins for python:3.11-slim and uv's image, from Debian's packages and uv's wheel (no pulls)
	@$(UV) run --frozen python scripts/images.py base-images

kind-load: images  ## load the images into the kind cluster
	@for member in $$($(UV) run --frozen python scripts/images.py members); do \
		kind load docker-image --name $(KIND_CLUSTER) localhost/flotilla/flotilla-$$member:$(IMAGE_TAG) || exit 1; \
	done

deploy: helm  ## helm upgrade --install on the current kube context (kind values)
	$(HELM) upgrade --install $(RELEASE) charts/flotilla --namespace $(NAMESPACE) --create-namespace \
		-f charts/flotilla/ci/kind-values.yaml --set image.tag=$(IMAGE_TAG) --wait --timeout 10m

undeploy: helm  ## helm uninstall (the CRDs stay, as Helm leaves crds/ alone)
	$(HELM) uninstall $(RELEASE) --namespace $(NAMESPACE)

port-forward:  ## the edge, console and Jaeger on localhost without NodePorts
	kubectl -n $(NAMESPACE) port-forward svc/$(RELEASE)-edge 8080:8080 & \
	kubectl -n $(NAMESPACE) port-forward svc/$(RELEASE)-console 8090:8090 & \
	kubectl -n $(NAMESPACE) port-forward svc/$(RELEASE)-jaeger 16686:16686 & \
	wait
