# The two commands of the README: `make demo` (train LeNet-5 on the embedded digits)
# and `make test`. Each creates .venv on first use, pinning the local CPU torch wheel
# so that pip never resolves torch to the CUDA build.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_PIN ?= torch==2.13.0

.PHONY: demo test bench fuzz generated vsix clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q $(TORCH_PIN)
	# compat: a plain path entry, which imports faster than setuptools' editable finder
	$(PY) -m pip install -q -e '.[test,train]' --config-settings editable_mode=compat
	# bytecode, as a regular install has it (an editable one does not)
	$(PY) -m compileall -q cnndsl
	touch $@

demo: $(VENV)/.installed
	$(VENV)/bin/cnndsl train lenet5 --data digits --out runs/lenet5

# The tests run on every core (pytest-xdist: a test file stays on one worker, the slowest
# files are handed out first, and tests/conftest.py gives each worker's PyTorch its share of
# the threads). Only the tests need a browser: the drawing page's test drives Debian's
# chromium (never `playwright install`), installed here where apt-get can (as root); the
# test says how otherwise.
test: $(VENV)/.installed
	@[ -x /usr/bin/chromium ] || { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && (apt-get update -qq && apt-get install -y -qq chromium) || true; }
	$(PY) -m pytest -q -n auto --dist loadfile --no-loadscope-reorder

# The benchmark suite (a few minutes on 2 cores): tables, JSON and plots in benchmarks/results/.
bench: $(VENV)/.installed
	$(PY) -m pip install -q -e '.[bench]' || $(PY) -m pip install -q matplotlib
	$(PY) benchmarks/run.py

# A longer fuzz campaign than CI's: FUZZ_MINUTES=30 make fuzz; FUZZ_ENGINE=atheris for coverage guidance;
# to a count instead: FUZZ_PROGRAMS=20000 FUZZ_BUILT=5000 make fuzz (5,000 of them built and run with backward).
FUZZ_MINUTES ?= 5
FUZZ_ENGINE ?= random
FUZZ_PROGRAMS ?= 0
FUZZ_BUILT ?= 0
# A counted campaign runs as FUZZ_SHARDS resumable shards (benchmarks/results/fuzz_shards/), each on its own seed:
# stopped, the same command resumes at the first shard not done on this commit.
FUZZ_SHARDS ?= 20
FUZZ_SEED ?= 0
fuzz: $(VENV)/.installed
	$(PY) benchmarks/fuzz_campaign.py --minutes $(FUZZ_MINUTES) --engine $(FUZZ_ENGINE) --seed $(FUZZ_SEED) \
		--programs $(FUZZ_PROGRAMS) --built $(FUZZ_BUILT) --shards $(FUZZ_SHARDS)

generated: $(VENV)/.installed
	for n in $$($(PY) -c "from cnndsl.resources import catalog; print(*catalog())"); do \
		$(VENV)/bin/cnndsl compile $$n -o generated/$$n.py || exit 1; done

# The VS Code extension, packed with npm's @vscode/vsce: editors/vscode/cnndsl-0.1.0.vsix
vsix:
	cd editors/vscode && npm install --no-audit --no-fund && npm run package

clean:
	rm -rf $(VENV) runs .pytest_cache
