# berth.converge — see README.md.  `make demo` and `make test` work on a fresh machine.
SHELL := /bin/bash
VENV ?= .venv
PYTHON ?= python3
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: venv env-up env-down demo test lint sanity unit integration bench collection clean

venv: $(VENV)/.installed
$(VENV)/.installed: requirements.txt test-requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -r test-requirements.txt
	touch $@

env-up:
	hack/localenv up
env-down:
	hack/localenv down

demo: venv
	hack/localenv up
	hack/demo

# The whole suite against a fresh local environment; the environment is stopped afterwards.
test: venv
	@set -e; hack/localenv up; trap 'hack/localenv down' EXIT; \
	eval "$$(hack/localenv env)"; \
	$(MAKE) --no-print-directory lint sanity unit integration

# ansible-lint resolves the role's berth.converge.* modules through a collections path that holds this tree.
lint: venv
	@set -e; dir=$$(mktemp -d); trap 'rm -rf "$$dir"' EXIT; mkdir -p "$$dir/ansible_collections/berth"; \
	ln -s "$(CURDIR)" "$$dir/ansible_collections/berth/converge"; \
	ANSIBLE_COLLECTIONS_PATH="$$dir" ansible-lint --offline --profile production; \
	antsibull-changelog lint

sanity: venv
	hack/sanity

unit: venv
	$(VENV)/bin/python -m pytest -q tests/unit

integration: venv
	$(VENV)/bin/python -m pytest -q tests/integration

bench: venv
	hack/localenv up
	@eval "$$(hack/localenv env)"; for b in bench/bench_*.py; do $(VENV)/bin/python $$b || exit 1; done

collection:
	ansible-galaxy collection build --force

clean:
	rm -rf $(VENV) .pytest_cache berth-converge-*.tar.gz
