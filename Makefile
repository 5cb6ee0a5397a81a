# SkinGenBench — the two commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_OUT ?= demo-output
DEMO_N ?= 600
DEMO_SIZE ?= 64
export HF_HUB_OFFLINE := 1
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: install demo test bench clean

# The venv is (re)installed when missing or when the package metadata changed.
# torch 2.14.1 + torchvision 0.29.1 is the pair that works together on these machines.
$(VENV)/.installed: setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

test: install
	$(PY) -m pytest -q

demo: install
	@echo "SkinGenBench demo: the data path on the built-in phantom dataset"
	@echo "  $(DEMO_N) phantom images -> ingest -> lesion-grouped split -> $(DEMO_SIZE) px HDF5 shards in $(DEMO_OUT)/ (about a minute on 2 cores)"
	$(VENV)/bin/skingen data phantom --out $(DEMO_OUT)/phantom --n $(DEMO_N) --seed 0
	$(VENV)/bin/skingen data ingest $(DEMO_OUT)/phantom --out $(DEMO_OUT)/data/manifest.csv
	$(VENV)/bin/skingen data split $(DEMO_OUT)/data/manifest.csv --out $(DEMO_OUT)/data/split.csv --seed 0 --dedup
	$(VENV)/bin/skingen data pack $(DEMO_OUT)/data/split.csv --out $(DEMO_OUT)/shards/basic --size $(DEMO_SIZE) --pipeline basic
	@echo "demo outputs: phantom images $(DEMO_OUT)/phantom, manifest + split + quarantine lists $(DEMO_OUT)/data, shards $(DEMO_OUT)/shards/basic"

bench: install
	$(PY) benchmarks/bench_data.py

clean:
	rm -rf $(DEMO_OUT) .pytest_cache
