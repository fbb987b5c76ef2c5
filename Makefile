# MSQ: `make demo` runs the main job end to end; `make test` runs the tests. Both set up first.
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.msq-setup-stamp
DEMO   := runs/demo

.PHONY: setup test demo bench clean

$(STAMP): pyproject.toml scripts/setup.sh
	bash scripts/setup.sh
	touch $@

setup: $(STAMP)

test: setup
	$(BIN)/python -m pytest tests

demo: setup
	$(BIN)/msq train --model mlp --dataset digits --wbits 4 --abits 4 --scheme msq --board pynq-z2 \
		--epochs 40 --seed 0 --out $(DEMO)
	$(BIN)/msq export $(DEMO)
	$(BIN)/msq eval $(DEMO)

bench: setup
	$(BIN)/python benchmarks/accuracy.py

clean:
	rm -rf runs .pytest_cache
