# MSQ: `make demo` runs the main job end to end; `make test` runs the tests. Both set up first.
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.msq-setup-stamp
DEMO   := runs/demo

.PHONY: setup test demo bench clean

$(STAMP): pyproject.toml scripts/setup.sh scripts/system-packages.sh
	bash scripts/setup.sh
	touch $@

setup: $(STAMP)

test: setup
	$(BIN)/python -m pytest tests

demo: setup
	$(BIN)/msq flow --model mlp --dataset digits --board pynq-z2 --epochs 40 --seed 0 --out $(DEMO)

bench: setup
	$(BIN)/python benchmarks/accuracy.py
	$(BIN)/python benchmarks/accuracy.py --dataset mnist5k --epochs 15
	$(BIN)/python benchmarks/flow.py
	$(BIN)/python benchmarks/hls_csim.py
	$(BIN)/python benchmarks/rtl_sim.py
	$(BIN)/python benchmarks/headline.py
	$(BIN)/python benchmarks/headline.py --boards pynq-z2 --synth --update
	$(BIN)/python benchmarks/headline.py --boards ulx3s-85f --networks demo-mlp,mlp-128x3 --designs msq --headroom 0.4 --synth --update
	$(BIN)/python benchmarks/precision_hw.py --synth --rtlsim 8
	$(BIN)/python benchmarks/resnet8.py --synth
	$(BIN)/python benchmarks/readme_tables.py

clean:
	rm -rf runs .pytest_cache
