# LCTeach: every workflow of the course. `make` lists the targets. Each target creates .venv
# (pinned dependencies from pyproject.toml) on first use and again after pyproject.toml changes.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed
# nbgrader runs `alembic` when it creates a gradebook, and jupyter finds its tools, on PATH.
export PATH := $(BIN):$(PATH)
# torch's OpenMP threads sleep instead of spinning while they wait: code made of many small
# operations (tiled kernels, the graders' memory tracker) otherwise slows down 10x or more as
# soon as another process shares the two cores (a pytest worker, a second kernel).
export OMP_WAIT_POLICY ?= PASSIVE

# Settings, e.g. `make lab PORT=9000`, `make grade WEEK=week1_foundations TIMEOUT=600`.
PORT ?=
JUPYTER_ARGS ?=
WEEK ?=
TIMEOUT ?=
JOBS ?=
PYTEST_ARGS ?= -n 2 --dist loadscope --durations=15

WEEK_OPTIONS = $(foreach week,$(WEEK),--week $(week))
GRADE_OPTIONS = $(if $(TIMEOUT),--timeout $(TIMEOUT)) $(if $(JOBS),--jobs $(JOBS))

.PHONY: help lab lint format test release grade feedback demo bench throughput clean

help: ## list the targets and their settings (the default target)
	@echo "usage: make TARGET [SETTING=value ...]"
	@echo "targets:"
	@sed -nE 's/^([a-z]+):.*## (.*)$$/  \1\t\2/p' $(MAKEFILE_LIST) | expand -t 14
	@echo "settings: PORT, JUPYTER_ARGS (lab); WEEK, TIMEOUT, JOBS (grade, feedback, demo, throughput); PYTEST_ARGS (test); BENCH_ARGS (bench)"

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "LCTeach needs Python 3.11 or newer; name one with make PYTHON=python3.11 ..."; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -e ".[dev]"
	# The course kernel (any Jupyter started from .venv, make or not): OpenMP threads that sleep.
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (ipykernel)" \
		--env OMP_WAIT_POLICY PASSIVE >/dev/null
	touch $@

lab: $(STAMP) ## open JupyterLab on course/ (PORT=8888, JUPYTER_ARGS="..."); Nbgrader menu: formgrader
	JUPYTER_CONFIG_PATH=$(CURDIR)/autograder$${JUPYTER_CONFIG_PATH:+:$$JUPYTER_CONFIG_PATH} \
		PYTHONPATH=$(CURDIR)$${PYTHONPATH:+:$$PYTHONPATH} jupyter lab --ServerApp.root_dir=$(CURDIR) --LabApp.default_url=/lab/tree/course \
		$(if $(PORT),--ServerApp.port=$(PORT)) $(JUPYTER_ARGS)

lint: $(STAMP) ## check the code with ruff: lint rules and formatting (pyproject.toml [tool.ruff])
	ruff check .
	ruff format --check .

format: $(STAMP) ## apply ruff's fixes and formatting (then review the diff)
	ruff check --fix .
	ruff format .

test: lint ## run the linter, then the test suite: library, graders, release, grading pipeline, notebooks
	python -m pytest $(PYTEST_ARGS)

release: $(STAMP) ## build course/ from solutions/ through nbgrader generate_assignment
	python -m autograder.release

grade: $(STAMP) ## grade autograder/submitted/ and LMS zips (WEEK=..., TIMEOUT=seconds per submission, JOBS=parallel workers)
	python -m autograder.grade $(WEEK_OPTIONS) $(GRADE_OPTIONS)

feedback: $(STAMP) ## regenerate feedback HTML of graded submissions, one subprocess each (WEEK=..., JOBS=...)
	python -m autograder.feedback $(WEEK_OPTIONS) $(if $(JOBS),--jobs $(JOBS))

demo: $(STAMP) ## release, submit and grade a sample class in a temporary folder (WEEK=..., TIMEOUT=...)
	python -m autograder.demo $(if $(WEEK),--week $(WEEK)) $(GRADE_OPTIONS)

bench: $(STAMP) ## time and measure the attention kernels vs SDPA into build/bench/ (BENCH_ARGS="--ns 1024,2048 --device cuda")
	python -m lcteach.bench --out build/bench $(BENCH_ARGS)

throughput: $(STAMP) ## grade a sample class of 40 with 1 worker, then JOBS (default 2); print the speedup
	python -m autograder.throughput $(if $(WEEK),--week $(WEEK)) --jobs $(or $(JOBS),2) $(if $(TIMEOUT),--timeout $(TIMEOUT))

clean: ## remove build outputs and caches; keeps .venv, submissions, gradebook, feedback, reports
	rm -rf autograder/source autograder/release .pytest_cache .hypothesis
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -exec rm -rf {} +
