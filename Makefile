# reformer: set-up, tests and the paper's experiments.
#   make install   install into the active virtualenv, or into ./.venv (created if missing)
#   make test      run the test suite (CPU only; GPU tests skip without a GPU)
#   make test-wheel  build a wheel, install it into a fresh virtualenv, run it from an empty folder
#   make reproduce-table PROFILE=smoke|cpu|quick|paper
#                  run the paper's experiments (experiments/) at that profile, resumably, then
#                  rebuild results/ with `reformer table` (REPRODUCE_ARGS="--only table2 --time-limit 540");
#                  smoke writes its records and pages to outputs/reproduce/smoke/results instead;
#                  JOBS=2 trains two runs at once (the one-thread smoke and cpu profiles on 2 cores)
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
JOBS ?= 1

.PHONY: help install corpus test test-wheel test-gpu bench-gpu gpu-step1 gpu-step2 gpu-step3 gpu-wheels reproduce-table clean

help:  ## list the targets
	@grep -E '^[a-z0-9 -]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

install:  ## install reformer (editable) with its test dependencies
	@[ -x "$(PY)" ] || python3 -m venv .venv
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install "$(TORCH_SPEC)"
	$(PY) -m pip install -e ".[dev]"
	@echo "installed: $$($(PY) -c 'import torch, reformer_cli; print("reformer", reformer_cli.__version__, "torch", torch.__version__)')"

# The cpu profiles' text corpus: GCIDE, the GNU Collaborative International Dictionary of English
# (GPL-2+), 39,952,321 bytes of English prose with light markup, as Debian's package dict-gcide
# 0.48.5+nmu2 ships it (docs/data.md, "GCIDE"). Needs apt-get and dpkg-deb (Debian or Ubuntu).
GCIDE_VERSION ?= 0.48.5+nmu2
GCIDE_SHA256 = 802beb667e1fb666203e750f1faea60d5c202ac5430c2083c4180494609f10a7
GCIDE_DIR = data/gcide

corpus:  ## the cpu profiles' text corpus, data/gcide/gcide.txt (Debian's dict-gcide, checked by sha256)
	@mkdir -p $(GCIDE_DIR)
	@if [ -f $(GCIDE_DIR)/gcide.txt ] && echo "$(GCIDE_SHA256)  $(GCIDE_DIR)/gcide.txt" | sha256sum -c --quiet 2>/dev/null; then \
		echo "$(GCIDE_DIR)/gcide.txt is there (sha256 checked)"; exit 0; fi; \
	if ! command -v apt-get >/dev/null || ! command -v dpkg-deb >/dev/null; then \
		echo "make corpus needs apt-get and dpkg-deb (Debian, Ubuntu); elsewhere see docs/data.md, 'GCIDE'" >&2; exit 2; fi; \
	set -e; cd $(GCIDE_DIR); rm -f dict-gcide_*.deb; apt-get download "dict-gcide=$(GCIDE_VERSION)"; \
	dpkg-deb --fsys-tarfile dict-gcide_*_all.deb | tar -xO ./usr/share/dictd/gcide.dict.dz | gzip -dc > gcide.txt.tmp; \
	echo "$(GCIDE_SHA256)  gcide.txt.tmp" | sha256sum -c --quiet; mv gcide.txt.tmp gcide.txt; rm -f dict-gcide_*.deb; \
	echo "$(GCIDE_DIR)/gcide.txt: $$(wc -c < gcide.txt) bytes, sha256 $(GCIDE_SHA256)"

# The suite runs in one worker per core, at most 4 (pytest-xdist, a dev dependency; without it, in one
# process): its subprocess-heavy tests leave a single process's second core mostly idle.
TEST_WORKERS = $(shell $(PY) -c "import xdist" 2>/dev/null && echo "-n auto --maxprocesses 4")

test:  ## run the test suite
	$(PY) -m pytest -q $(TEST_WORKERS) --durations=20

test-wheel:  ## build a wheel, install it into a fresh virtualenv, run it from an empty folder
	$(PY) -m pytest -q -m wheel tests/test_packaging.py

test-gpu:  ## only the tests that need a CUDA GPU
	$(PY) -m pytest -q -m gpu

# `make bench-gpu` on a CUDA machine that has python3 with torch and triton (no hydra, omegaconf or
# wandb needed): the fast kernels' tests, then results/speed.{md,json,png} (the standard problem of
# docs/performance.md, with the peers) and results/train_step.{md,json}, in about 8 minutes;
# the tests' log goes to $(RESULTS)/gpu-tests.log. For the short sessions of a lent GPU machine,
# `make gpu-step1|gpu-step2|gpu-step3` run the prepared steps of scripts/gpu/ (README.md there).
# Wheels in .whl/ are installed first when present: `make gpu-wheels` fills .whl/ on a machine with
# pip access with reformer-pytorch (a peer; transformers, the other, is usually there already) and
# the Hydra stack `reformer run` / `reformer reproduce` need (hydra-core, omegaconf, antlr4).
GPU_PY ?= $(if $(wildcard $(PY)),$(PY),python3)
GPU_SITE ?= /tmp/reformer-site
PEER_WHEELS = reformer-pytorch==1.4.4 axial-positional-embedding==0.3.12 local-attention==1.11.2 \
	product-key-memory==0.3.0 colt5-attention==0.11.2 hyper-connections==0.4.11 torch-einops-utils==0.2.0 einops==0.8.2
HYDRA_WHEELS = hydra-core==1.3.8 omegaconf==2.3.1
WHEEL_PYTHON ?= 3.12
# where bench-gpu writes (a device session passes RESULTS=$$OUT to get the files back)
RESULTS ?= results

bench-gpu:  ## on a CUDA machine: kernel tests, results/speed.{md,json,png}, results/train_step.{md,json}
	@mkdir -p $(RESULTS)
	@if ls .whl/*.whl >/dev/null 2>&1; then \
		$(GPU_PY) -m pip install -q --no-index --no-deps --no-compile --target $(GPU_SITE) .whl/*.whl; fi
	@status=0; export PYTHONPATH=$(GPU_SITE)$${PYTHONPATH:+:$$PYTHONPATH} PYTHONUNBUFFERED=1; \
	$(GPU_PY) -m pytest -q -p no:cacheprovider tests/attention/test_lsh_fast.py >$(RESULTS)/gpu-tests.log 2>&1 \
		|| status=1; tail -n 15 $(RESULTS)/gpu-tests.log; \
	$(GPU_PY) -m reformer_cli bench speed --peers --out $(RESULTS) || status=1; \
	$(GPU_PY) -m reformer_cli bench step --out $(RESULTS) || status=1; \
	exit $$status

gpu-step1 gpu-step2 gpu-step3:  ## a GPU session's prepared step (scripts/gpu/): OUT=folder, BUDGET=seconds
	OUT=$${OUT:-gpu-out} PY=$(GPU_PY) bash scripts/gpu/$(subst gpu-,,$@).sh

gpu-wheels:  ## fill .whl/ for a GPU machine without internet: the peer reformer-pytorch and the Hydra stack
	$(PY) -m pip download --no-deps --only-binary=:all: --python-version $(WHEEL_PYTHON) --implementation cp \
		--platform manylinux2014_x86_64 -d .whl $(PEER_WHEELS) $(HYDRA_WHEELS)
	@# antlr4-python3-runtime 4.9.3 (omegaconf's parser) is published as a source archive only
	$(PY) -m pip wheel --no-deps -w .whl antlr4-python3-runtime==4.9.3

# PROFILE=smoke checks the pipeline: its records and pages go to a scratch folder, never over results/
SMOKE_RESULTS = outputs/reproduce/smoke/results

reproduce-table:  ## run experiments/ at PROFILE=smoke|cpu|quick|paper (resumes), then rebuild results/ (reformer table)
	@$(PY) -m reformer_cli reproduce --profile $(PROFILE) --jobs $(JOBS) $(REPRODUCE_ARGS); status=$$?; \
	if [ "$(PROFILE)" = smoke ]; then \
		$(PY) -m reformer_cli table --profile smoke --runs $(SMOKE_RESULTS)/runs --out $(SMOKE_RESULTS) || exit $$?; \
	else $(PY) -m reformer_cli table --readme README.md || exit $$?; fi; \
	exit $$status

clean:  ## remove run outputs (not datasets, not results/)
	rm -rf outputs multirun .pytest_cache
