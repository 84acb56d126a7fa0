# Benchmarks (see bench/RESULTS.md). Data goes to $(BENCH_DIR), outside the repository.
#   make bench                       1M and 10M rows, 3 runs each, plus the incremental case
#   make bench ROWS=1000000 RUNS=1   a quick pass
#   make bench SRC=/path/to/src      benchmark another copy of the package (a folder holding retail_etl/)
#   make bench-clean                 delete the generated data, cached lakes and work folders

PYTHON ?= $(if $(wildcard .venv/bin/python),.venv/bin/python,python3)
ROWS ?= 1000000 10000000
RUNS ?= 3
CASES ?= pipeline duckdb pandas incremental
BENCH_DIR ?= /tmp/retail-etl-bench
SRC ?=

.PHONY: bench bench-clean

bench:
	BENCH_DIR=$(BENCH_DIR) BENCH_SRC=$(SRC) $(PYTHON) bench/run.py --rows $(ROWS) --runs $(RUNS) --cases $(CASES)

bench-clean:
	rm -rf $(BENCH_DIR)
