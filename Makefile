# Everyday commands. `make run` and `make test` are the two commands the README promises.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# No download bars from the hub and no tokenizers fork warnings in the executed notebooks.
# Offline, the model choice falls back to the packaged MiniLM: docs/models.md.
export HF_HUB_DISABLE_PROGRESS_BARS ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: venv run test test-fast test-server test-stress verify-findings lint strip clean bench bench-peers

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	# CPU torch first: otherwise anything that depends on torch pulls a multi-GB CUDA build.
	bash scripts/with_heartbeat.sh "installing torch" $(PY) -m pip install "torch==2.13.0"
	bash scripts/with_heartbeat.sh "installing the package and its dependencies" \
		$(PY) -m pip install -e ".[dev]"
	$(PY) -m ipykernel install --sys-prefix --name lc-utils --display-name "Python (lc-utils)"
	touch $(STAMP)

venv: $(STAMP)

## Execute every notebook into outputs/<run>/ and write a report. Pass ARGS="-p NAME VALUE ...".
## About 8 minutes on 2 quiet CPU cores (README "Two commands"); the console shows each
## notebook's progress bars.
run: $(STAMP)
	$(PY) -m lc_utils.run $(ARGS)

## The whole test suite: library, notebooks (papermill, each once), then the real Milvus server
## (its own venv, started inside a loopback-only network namespace; see scripts/test_server.sh).
## pytest runs in TEST_PROCESSES processes (pytest-xdist), each taking whole files, or one
## notebook's tests, at a time (tests/conftest.py, xdist_scope), so that a shared set-up (a
## notebook's run, a local Ray) is made once; TEST_PROCESSES=0 runs everything in one process.
TEST_PROCESSES ?= $(shell $(PYTHON) -c "import os; print(min(4, len(os.sched_getaffinity(0))))" 2>/dev/null || echo 2)
XDIST := $(if $(filter 0,$(TEST_PROCESSES)),,-n $(TEST_PROCESSES) --dist loadscope)
# The server tests mostly wait on the server, so they take one process more than the cores.
SERVER_XDIST := $(if $(filter 0,$(TEST_PROCESSES)),,-n $(shell echo $$(($(TEST_PROCESSES) + 1))) --dist loadscope)
SERVER_TESTS := tests/test_notebooks.py::test_05_against_a_real_milvus_server tests/test_scale.py \
	-m server $(SERVER_XDIST) --durations=10
test: $(STAMP)
	$(PY) -m pytest $(XDIST) --durations=15 $(PYTEST_ARGS)
	bash scripts/test_server.sh -- $(SERVER_TESTS)

test-server: $(STAMP)
	bash scripts/test_server.sh -- $(SERVER_TESTS)

## Stress tests, not part of `make test`: ten scale-out jobs in a row, each on a fresh local Ray
## (3-5 minutes on 2 cores), to catch a rare crash of Ray.
test-stress: $(STAMP)
	$(PY) -m pytest -m stress -s $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow and not server" $(PYTEST_ARGS)

## Re-run the full runs behind docs/findings.md (the default run, and two larger runs of 10) into
## outputs/verify-findings/<time>/ and compare every value committed under tests/expected/full/
## with its tolerance; prints each difference, fails if any. Not part of `make test`: it takes
## longer than `make run` (docs/testing.md). ONLY=07_chunk_size,... limits it to those files.
verify-findings: $(STAMP)
	$(PY) tests/test_notebooks.py --verify-full $(if $(ONLY),--only $(ONLY))

## The library's ruff rules (pyproject.toml) on the library, tests, benchmarks and notebooks.
LINTED := lc_utils tests benchmarks notebooks
lint: $(STAMP)
	$(VENV)/bin/ruff check $(LINTED)
	$(VENV)/bin/ruff format --check $(LINTED)

## Clear outputs, execution counts and run metadata from the committed notebooks (nbconvert),
## keeping cell tags and the kernelspec; papermill's injected cells go too.
strip: $(STAMP)
	$(VENV)/bin/jupyter nbconvert --to notebook --inplace --log-level=WARN \
	  --ClearOutputPreprocessor.enabled=True --ClearMetadataPreprocessor.enabled=True \
	  --ClearMetadataPreprocessor.preserve_cell_metadata_mask=tags \
	  --ClearMetadataPreprocessor.preserve_nb_metadata_mask=kernelspec \
	  --ClearMetadataPreprocessor.preserve_nb_metadata_mask=language_info \
	  --TagRemovePreprocessor.enabled=True \
	  --TagRemovePreprocessor.remove_cell_tags=injected-parameters \
	  --TagRemovePreprocessor.remove_cell_tags=papermill-error-cell-tag \
	  notebooks/*.ipynb

## Benchmarks (scripts, not tests): throughput and memory in .venv; results in outputs/bench/.
bench: $(STAMP)
	$(PY) benchmarks/bench_throughput.py
	$(PY) benchmarks/bench_memory.py

## The peers (afterthoughts, chonkie) are not project dependencies: they get their own venv.
BENCH_VENV := .venv-bench
$(BENCH_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install "torch==2.13.0"
	$(BENCH_VENV)/bin/python -m pip install -e . afterthoughts chonkie accelerate sentence-transformers
	touch $@

bench-peers: $(BENCH_VENV)/.installed
	HF_HUB_OFFLINE=1 $(BENCH_VENV)/bin/python benchmarks/bench_peers.py $(ARGS)

clean:
	rm -rf outputs .pytest_cache .hypothesis
