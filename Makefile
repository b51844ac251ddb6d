# reformer: set-up, tests and the paper's experiments.
#   make install   install into the active virtualenv, or into ./.venv (created if missing)
#   make test      run the test suite (CPU only; GPU tests skip without a GPU)
#   make reproduce-table PROFILE=smoke|quick|paper
#                  run the paper's experiments (experiments/) at that profile, resumably, then
#                  rebuild results/ with `reformer table` (REPRODUCE_ARGS="--only table2 --time-limit 540")
# Use another interpreter with `make install PY=/path/to/python`.

ifdef VIRTUAL_ENV
PY ?= $(VIRTUAL_ENV)/bin/python
else
PY ?= .venv/bin/python
endif
# The CPU build of torch, installed only when the interpreter has no torch yet: a GPU user's
# CUDA torch is kept as it is.
TORCH_SPEC ?= torch==2.13.0
PROFILE ?= smoke
REPRODUCE_ARGS ?=

.PHONY: help install test test-gpu reproduce-table clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

install:  ## install reformer (editable) with its test dependencies
	@[ -x "$(PY)" ] || python3 -m venv .venv
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install "$(TORCH_SPEC)"
	$(PY) -m pip install -e ".[dev]"
	@echo "installed: $$($(PY) -c 'import torch, reformer_cli; print("reformer", reformer_cli.__version__, "torch", torch.__version__)')"

test:  ## run the test suite
	$(PY) -m pytest -q

test-gpu:  ## only the tests that need a CUDA GPU
	$(PY) -m pytest -q -m gpu

reproduce-table:  ## run experiments/ at PROFILE=smoke|quick|paper (resumes), then rebuild results/ (reformer table)
	@$(PY) -m reformer_cli reproduce --profile $(PROFILE) $(REPRODUCE_ARGS); status=$$?; \
	$(PY) -m reformer_cli table --readme README.md || exit $$?; \
	exit $$status

clean:  ## remove run outputs (not datasets, not results/)
	rm -rf outputs multirun .pytest_cache
