# Queuey: the commands a person runs are the ones CI runs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
CONFIG := var/queuey.toml

.PHONY: install serve test lint bench bench-live chaos cassandra cassandra-cluster cassandra-stop clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# setuptools' "Editable installation." notice is information only; deprecations still show.
	PYTHONWARNINGS="ignore:Editable installation" $(BIN)/pip install --quiet -e '.[test,bench]'
	touch $(STAMP)

$(CONFIG): | $(STAMP)
	$(BIN)/queuey init $(CONFIG)

## serve: run Queuey on 127.0.0.1:5000 with its SQLite file in var/
serve: $(STAMP) $(CONFIG)
	@echo "Application 'queuey', key: $$(sed -n 's/^queuey = \["\(.*\)"\]/\1/p' $(CONFIG))"
	$(BIN)/queuey serve --config $(CONFIG) --host 127.0.0.1 --port 5000

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## test: ruff, mypy and the whole pytest suite (starts and stops Cassandra itself)
test: lint
	$(BIN)/pytest $(PYTEST_ARGS)

## bench: measure, and write BENCHMARKS.md
bench: $(STAMP)
	$(BIN)/python -m bench.run

## bench-live: idle held reads, open event streams, POST-to-event latency (bench/live.py, ~1 min)
bench-live: $(STAMP)
	$(BIN)/python -m bench.live

## chaos: fault injection with a per-message check (docs/chaos.md); the Cassandra part
## replaces the single test node with a 3-node cluster and restores one node after
chaos: $(STAMP)
	$(BIN)/python -m chaos --backend sqlite --seconds 60 && $(BIN)/python -m chaos --backend cassandra-cluster --seconds 90

cassandra: $(STAMP)
	$(BIN)/python -m scripts.cassandra_runner start --nodes 1

cassandra-cluster: $(STAMP)
	$(BIN)/python -m scripts.cassandra_runner start --nodes 3

# The system python will do (no venv needed): the runner is standard library only.
cassandra-stop:
	$(PYTHON) -m scripts.cassandra_runner stop

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
