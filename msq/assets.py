"""Where MSQ's shipped files are: the HLS kernel library (``hls/``), the Verilog kernels, templates
and testbench (``rtl_sim/``), the boards (``boards/``) and the calibration table.

The three hardware folders sit at the top of the repository. The wheel build (setup.py) copies
them into the package as ``msq/_assets/<folder>``; that copy wins when present, so a checkout and
an installed wheel find the same files through this one module.
"""
from __future__ import annotations

from importlib.resources import files
from pathlib import Path

# Installed packages are plain directories (wheels are unpacked), so the resources are real paths
# the external tools (g++, Verilator, Yosys) can read.
_PACKAGE = Path(str(files("msq")))


def _folder(name: str) -> Path:
    packaged = _PACKAGE / "_assets" / name
    return packaged if packaged.is_dir() else _PACKAGE.parent / name


HLS_DIR = _folder("hls")
RTL_SIM_DIR = _folder("rtl_sim")
BOARDS_DIR = _folder("boards")
CALIBRATION_JSON = _PACKAGE / "data" / "calibration.json"
