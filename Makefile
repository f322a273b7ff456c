# nanobench: `make bench DEVICE=cpu` and `make test` are all a fresh clone needs.
# Every target installs what is missing into $(VENV) first.

PYTHON   ?= python3
VENV     ?= .venv
# The torch requirement. The default pin installs a CPU wheel here and the CUDA build from
# PyPI on a Linux machine with a GPU; override for another build, e.g.
#   make bench DEVICE=cuda TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"
TORCH    ?= torch==2.13.0
DEVICE   ?= cpu
DTYPE    ?= fp32
SCENARIO ?= shakespeare_char_cpu
RESULTS  ?= results
REPORT   ?= reports/latest
ARGS     ?=
NPROC    ?=
PYTEST_ARGS ?=
MODULES  ?=

BIN   := $(VENV)/bin
STAMP := $(VENV)/.nanobench-installed

.PHONY: install bench compare report test lint mutate bench-micro bench-check gpu-check clean

# Reinstalls when pyproject.toml changes or TORCH names another spec than last time.
install:
	@if [ ! -f $(STAMP) ] || [ pyproject.toml -nt $(STAMP) ] || [ "$$(cat $(STAMP))" != '$(TORCH)' ]; then \
		set -e; \
		test -x $(BIN)/python || $(PYTHON) -m venv $(VENV); \
		echo "installing $(TORCH) and nanobench into $(VENV)" >&2; \
		$(BIN)/python -m pip install -q --disable-pip-version-check $(TORCH); \
		$(BIN)/python -m pip install -q --disable-pip-version-check -e ".[dev]"; \
		echo '$(TORCH)' > $(STAMP); \
	fi

bench: install
	$(BIN)/nanobench run $(SCENARIO) --device $(DEVICE) --dtype $(DTYPE) --out $(RESULTS) $(if $(NPROC),--nproc $(NPROC)) $(ARGS)

# Top-level result files only: results/examples/ (committed, from the project's reference
# machine) and results/gpu-check/ stay out unless named.
compare: install
	$(BIN)/nanobench compare '$(RESULTS)/*.parquet' $(ARGS)

report: install
	$(BIN)/nanobench report '$(RESULTS)/*.parquet' -o $(REPORT) $(ARGS)
	@echo "open $(REPORT)/index.html"

test: install
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# ruff, as configured in pyproject.toml: lint findings and files the formatter would change.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Mutation testing (mutmut) of MODULES, default the modules that decide verdicts and
# figures; each against its own tests. Scores and survivors: build/mutate/summary.txt.
mutate: install
	$(BIN)/python scripts/mutate.py $(MODULES)

bench-micro: install
	$(BIN)/python -m pytest -q bench --benchmark-only --benchmark-columns=min,median,mean,stddev,rounds $(PYTEST_ARGS)

# Every benchmark once at a small size, untimed (CI): collected and run, so none can break
# unseen; the timings and their gates are bench-micro's.
bench-check: install
	NANOBENCH_BENCH_SIZE=small $(BIN)/python -m pytest -q -p no:cacheprovider bench --benchmark-disable $(PYTEST_ARGS)
	NANOBENCH_BENCH_SIZE=small PYTHONPATH=. $(BIN)/python bench/test_bench_compare_report.py
	$(BIN)/python bench/profile_step.py smoke --steps 2 --warmup 1

# No install step: a lent GPU machine has torch but no package registry. The script uses
# $(VENV) when it exists, else python3 with this checkout on PYTHONPATH.
gpu-check:
	VENV=$(VENV) bash scripts/gpu-check.sh

clean:
	rm -rf $(VENV) .pytest_cache .benchmarks build/mutate mutants
