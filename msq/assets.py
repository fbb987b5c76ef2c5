"""Where MSQ's shipped files are: the HLS kernel library (``hls/``), the Verilog kernels, templates
and testbench (``rtl_sim/``), the boards (``boards/``) and the calibration table.

The three hardware folders sit at the top of the repository. A wheel carries them inside the
package as ``msq/_assets/<folder>``; that copy wins when present, so an editable checkout and an
installed package find the same files through this one module.
"""
from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def _folder(name: str) -> Path:
    packaged = _PACKAGE / "_assets" / name
    return packaged if packaged.is_dir() else _PACKAGE.parent / name


HLS_DIR = _folder("hls")
RTL_SIM_DIR = _folder("rtl_sim")
BOARDS_DIR = _folder("boards")
CALIBRATION_JSON = _PACKAGE / "data" / "calibration.json"
