# The README's two commands: `make serve` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: serve test lint unit integration deploy bench readme clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first, pinned: on these machines 2.13.0 is a CPU build on disk;
	# an unpinned torch would pull a multi-GB CUDA build. Keep pip's byte-compiling:
	# where PYTHONDONTWRITEBYTECODE=1 (as on this machine), nothing compiled later is
	# kept, and with --no-compile every Ray worker recompiled what it imported
	# (the integration suite went from 9 to 13 minutes).
	$(PY) -m pip install --quiet torch==2.13.0
	# cpu-fast: ONNX Runtime and OpenVINO, the embedder's and cross-encoder's faster CPU backends.
	$(PY) -m pip install --quiet -e '.[dev,cpu-fast]'
	touch $(STAMP)

serve: $(STAMP)
	$(PY) -m serve_app serve --config config/providers.yaml

# tests/run.py: the tests that need no Ray run beside the integration suite; then
# tests/deploy (ray start --head, serve deploy) and tests/newcomer (`make serve`'s
# command), each with a Ray instance of its own. It ends with each part's wall time.
test: $(STAMP)
	$(PY) tests/run.py

# ruff's rule set is in pyproject.toml; .ci/run runs this before the tests.
lint: $(STAMP)
	$(PY) -m ruff check .

unit: $(STAMP)  # everything without Ray: real databases, caches and models in process
	$(PY) -m pytest -q -p no:cacheprovider tests/unit tests/stores tests/caches tests/rerankers tests/graph

integration: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider tests/integration

deploy: $(STAMP)
	$(PY) -m pytest -q -rs -p no:cacheprovider tests/deploy

bench: $(STAMP)
	$(PY) benchmarks/embeddings_throughput.py --quick

# The generated providers.yaml reference in docs/configuration.md, from the config's JSON Schema.
readme: $(STAMP)
	$(PY) -m serve_app.config_reference --write docs/configuration.md

clean:
	rm -rf $(VENV) .data
