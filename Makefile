# Queuey: the commands a person runs are the ones CI runs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
CONFIG := var/queuey.toml

.PHONY: install serve test lint bench cassandra cassandra-cluster cassandra-stop clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
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
	# Apart: checked with the rest, scripts/cassandra.py would shadow the driver's package.
	$(BIN)/mypy scripts/cassandra.py

## test: ruff, mypy and the whole pytest suite (starts and stops Cassandra itself)
test: lint
	$(BIN)/pytest $(PYTEST_ARGS)

## bench: measure, and write BENCHMARKS.md
bench: $(STAMP)
	$(BIN)/python -m bench.run

cassandra: $(STAMP)
	$(BIN)/python scripts/cassandra.py start --nodes 1

cassandra-cluster: $(STAMP)
	$(BIN)/python scripts/cassandra.py start --nodes 3

cassandra-stop:
	$(PYTHON) scripts/cassandra.py stop

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
