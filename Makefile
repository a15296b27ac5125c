# Two commands for a new user (see README): `make demo` (the main job) and `make test` (the tests).
# Both set up .venv on first use; a change to pyproject.toml reinstalls.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed-$(shell $(PYTHON) -c "import hashlib;print(hashlib.sha1(open('pyproject.toml','rb').read()).hexdigest()[:12])")
OUT ?= runs/synthetic-staged

.PHONY: setup demo test lint bench
setup: $(INSTALLED)

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[dev,onnx]"
	rm -f $(VENV)/.installed-* && touch $@

demo: $(INSTALLED)
	$(BIN)/fcn-lightning staged --config configs/synthetic/staged.yaml --out $(OUT)

test: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

bench: $(INSTALLED)
	$(BIN)/python benchmarks/bench_nets.py --size 128
