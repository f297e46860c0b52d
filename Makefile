# The template repository: `make demo` shows a baked project's lifecycle, `make test` proves
# every option combination. Both create .venv and install what they need.
.DEFAULT_GOAL := help
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c

VENV := .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
TEMPLATE := {{cookiecutter.project}}
STAMP := $(VENV)/.installed
# Parallel pytest workers: the two lifecycle bakes run side by side on 2 cores.
WORKERS ?= 2

export DVC_NO_ANALYTICS := 1

.PHONY: help setup test test-fast demo docs lint benchmarks clean pins

help: ## list targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

setup: $(STAMP) promtool ## create .venv: template test tools + the generated project's dependencies

$(STAMP): requirements/test.txt $(TEMPLATE)/pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	@test -x $(BIN)/uv || $(PY) -m pip install --quiet uv
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(PY) -r requirements/test.txt
	$(PY) tests/install_project_deps.py --venv $(VENV)
	@touch $@

# promtool checks the generated alert rules (tests/test_monitoring.py skips without it): Debian's
# prometheus package, installed only when missing and only where we are root with apt.
.PHONY: promtool
promtool:
	@command -v promtool >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
		&& apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus >/dev/null; } \
		|| echo "note: promtool is not installed (needs root and apt-get); the alert-rule tests will skip"

lint: setup ## ruff on the template's own code
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: setup ## the full template test-suite (bakes, hooks, workflows, lifecycles, docs)
	@# exit 5 means "no tests collected": not a failure of the suite itself
	$(PY) -m pytest -n $(WORKERS) --dist loadgroup || test $$? -eq 5

test-fast: setup ## everything except the install-and-run lifecycle bakes
	$(PY) -m pytest -n $(WORKERS) -m "not slow"

demo: setup ## bake a default project and run its whole lifecycle
	$(PY) tests/demo.py --venv $(VENV)

docs: setup ## build the documentation site into build/site
	$(BIN)/mkdocs build --strict --site-dir build/site

benchmarks: setup ## measure; results go to docs/benchmarks.md
	$(PY) benchmarks/run_all.py

pins: setup ## move every action pin (templates/github.jinja, .github/workflows/ci.yml) to its newest release (needs network)
	$(PY) tools/pins.py

clean: ## remove the venv and build outputs
	rm -rf $(VENV) build .pytest_cache
