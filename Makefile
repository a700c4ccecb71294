# The README's two commands: `make demo` (the embedded environment and the shop example)
# and `make test` (lint, types and every test). Each target sets up .venv first.
VENV := .venv
BIN := $(VENV)/bin
OPSFLOW := $(BIN)/opsflow

.PHONY: bootstrap demo test lint format bench down clean

bootstrap:
	@bash scripts/bootstrap.sh

# The shop online with its app deployed; ends with the shop's URL and the Temporal UI's.
demo: bootstrap
	@bash scripts/demo.sh

# Every test, in TEST_PROCS pytest processes (pytest-xdist): most tests wait on servers,
# sshd and subprocesses rather than compute, so more processes than this machine's 2 cores
# pay. Each process starts the session's servers of its own; each test goes to whichever
# process is free (worksteal), so no process is left with a queue while others idle.
# Bytecode is written (unlike this machine's default) so that the ~100 CLI and worker
# processes the tests start do not each compile opsflow's modules again.
TEST_PROCS ?= 4
test: lint
	PYTHONDONTWRITEBYTECODE= $(BIN)/pytest -q -n $(TEST_PROCS) --dist worksteal

# The remote scripts (activities/**/*.sh) are POSIX sh, since an instance's sh may be
# dash: each says so to shellcheck (`# shellcheck shell=sh`, its first line), so a plain
# `shellcheck FILE` checks it as sh too; our own scripts are bash; the demo shop's recipes
# are sh.
REMOTE_SCRIPTS = $(shell find activities -name '*.sh' | sort)

lint: bootstrap
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .
	@for script in $(REMOTE_SCRIPTS); do sh -n "$$script" || exit 1; done
	shellcheck $(REMOTE_SCRIPTS)
	shellcheck scripts/*.sh .ci/run
	shellcheck -s sh examples/shop/cookbooks/*/*.sh

format: bootstrap
	$(BIN)/ruff format .

bench: bootstrap
	$(BIN)/python bench/stack_apply.py

# Stops the embedded environment; local instances and $OPSFLOW_HOME are kept.
down:
	@if [ -x $(OPSFLOW) ]; then $(OPSFLOW) dev down; fi

# Build and tool caches only: .venv and $OPSFLOW_HOME (stacks, dev database) stay.
clean:
	rm -rf build *.egg-info .mypy_cache .ruff_cache .pytest_cache
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -exec rm -rf {} +
