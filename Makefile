# Set-up and entry points. `make demo` and `make test` install whatever is missing first.
#   make demo    reduce the default configuration's night (the simulated demo night) + report
#   make test    run the test suite
#   make lint    ruff, snakemake --lint, snakefmt --check
#   make dag     draw the rule graph of the default configuration (needs graphviz)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORES ?= 2
WORK_DIR = $(shell $(BIN)/python -c "import yaml; print(yaml.safe_load(open('config/config.yaml'))['work_dir'])")

.PHONY: setup system-deps demo test lint dag clean

setup: $(VENV)/.installed system-deps

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

system-deps:
	@bash .ci/install-system-deps

demo: setup
	$(BIN)/snakemake --cores $(CORES)
	$(BIN)/snakemake --cores $(CORES) --report $(WORK_DIR)/report.html
	@echo "Report: $(WORK_DIR)/report.html"

# The fault suite runs its small nights two at a time (each Snakemake run on one core): they
# spend much of their time starting Python jobs, which two runs overlap well.
test: setup
	$(BIN)/pytest --ignore=tests/faults
	$(BIN)/pytest -n 2 tests/faults

lint: setup
	$(BIN)/ruff check src tests workflow/scripts bench
	$(BIN)/ruff format --check src tests workflow/scripts bench
	$(BIN)/snakemake --lint
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/snakefmt --check workflow

dag: setup
	$(BIN)/snakemake --rulegraph | dot -Tsvg > rulegraph.svg
	@echo "Rule graph: rulegraph.svg"

clean:
	rm -rf results data .snakemake rulegraph.svg
