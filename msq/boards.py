"""FPGA boards as data: ``boards/<name>.yaml`` (part, family, LUT/FF/DSP/BRAM counts, clock).

A board is named on the command line (``--board pynq-z2``) or given as a path to a user's own
YAML file with the same fields.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from msq.assets import BOARDS_DIR
from msq.errors import MSQError

FAMILIES = ("xc7", "xcup")  # Yosys synth_xilinx families: 7-series, UltraScale+
_INT_FIELDS = ("lut", "ff", "dsp", "bram36")


@dataclass(frozen=True)
class Board:
    """Resource capacity and clock target of one FPGA board."""

    name: str
    part: str
    family: str
    lut: int
    ff: int
    dsp: int
    bram36: int
    clock_mhz: float


def available_boards() -> list[str]:
    """Names of the boards shipped in ``boards/``."""
    return sorted(p.stem for p in BOARDS_DIR.glob("*.yaml"))


def load_board(name_or_path: str | Path) -> Board:
    """Load a shipped board by name, or a user's board YAML by path; validate every field."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = BOARDS_DIR / f"{name_or_path}.yaml"
        if not path.is_file():
            raise MSQError(f"unknown board {str(name_or_path)!r}: expected one of "
                           f"{', '.join(available_boards())} or a path to a board .yaml file")
    if not path.is_file():
        raise MSQError(f"board file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise MSQError(f"board file {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise MSQError(f"board file {path}: expected a mapping of fields")
    missing = [f for f in ("name", "part", "family", *_INT_FIELDS, "clock_mhz") if f not in data]
    if missing:
        raise MSQError(f"board file {path}: missing field(s) {', '.join(missing)}")
    for field in _INT_FIELDS:
        value = data[field]
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise MSQError(f"board file {path}: field '{field}' must be a non-negative integer, got {value!r}")
    if data["family"] not in FAMILIES:
        raise MSQError(f"board file {path}: field 'family' must be one of {', '.join(FAMILIES)}, got {data['family']!r}")
    clock = data["clock_mhz"]
    if not isinstance(clock, (int, float)) or isinstance(clock, bool) or clock <= 0:
        raise MSQError(f"board file {path}: field 'clock_mhz' must be a positive number, got {clock!r}")
    return Board(name=str(data["name"]), part=str(data["part"]), family=data["family"],
                 lut=data["lut"], ff=data["ff"], dsp=data["dsp"], bram36=data["bram36"],
                 clock_mhz=float(clock))
