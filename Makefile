# oculi: two commands for a fresh clone.
#   make demo   set up everything (venv, dependencies, model assets) and run the built-in model on the sample photos
#   make test   set up everything and run the whole test suite
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.oculi-installed

.PHONY: pdf setup models demo test test-fast bench bench-search bench-index bench-server bench-integrity bench-footage bench-inspect eval eval-footage eval-easy-vqa browser clean

setup: $(STAMP) models pdf

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# the CPU build of torch that the target machines carry; an unpinned torch pulls CUDA
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

models: $(STAMP)
	$(BIN)/oculi models pull

# Debian's chromium drives the web-UI test; without it that test is skipped with its reason.
# PDF reports: WeasyPrint needs pango (and HarfBuzz's subsetter to embed small fonts)
pdf:
	@/sbin/ldconfig -p 2>/dev/null | grep -q libpangoft2-1.0 && /sbin/ldconfig -p 2>/dev/null | grep -q libharfbuzz-subset || (apt-get update -qq && apt-get install -y -qq libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 >/dev/null) || echo "pango not installed: PDF reports (oculi report --format pdf) will fail; HTML works"

browser:
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || echo "chromium not installed: the browser test will be skipped"

demo: setup
	$(BIN)/oculi demo --out out/demo

test: setup browser pdf
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

# benchmarks print Markdown tables naming the machine; their current figures are in README.md
bench: setup
	$(BIN)/python benchmarks/bench_core.py

bench-index: setup
	$(BIN)/python benchmarks/bench_index.py

bench-search: setup          # 10k/100k/1M items; the 1M index build takes ~15 min on 2 cores
	$(BIN)/python benchmarks/bench_search.py

bench-server: setup
	$(BIN)/python benchmarks/bench_server.py

bench-inspect: setup         # texture benchmark with synthetic defects: AUROC per texture/defect/size, fit and inspect speed
	$(BIN)/python benchmarks/bench_inspect.py

bench-footage: setup        # 720p/1080p speed, question latency over a day of events, memory on a 2-hour file
	$(BIN)/python benchmarks/bench_footage.py

bench-integrity: setup       # checksum cost per write; `collections check` time per 10k items
	$(BIN)/python benchmarks/bench_integrity.py

eval: setup
	$(BIN)/python benchmarks/eval_vqa.py
	$(BIN)/python benchmarks/eval_retrieval.py

eval-footage: setup         # event precision/recall on generated clips with known ground truth
	$(BIN)/python benchmarks/eval_footage.py

# oculi train vqa on easy-VQA's train split, oculi eval vqa on its test split (image features
# cached under out/easy-vqa-home: the first run reads 5,000 images)
eval-easy-vqa: setup
	$(BIN)/python benchmarks/eval_easy_vqa.py

clean:
	rm -rf $(VENV) out .pytest_cache
