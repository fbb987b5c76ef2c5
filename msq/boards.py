"""FPGA boards as data: ``boards/<name>.yaml`` (part, family, LUT/FF/DSP/BRAM counts, clock).

A board is named on the command line (``--board pynq-z2``) or given as a path to a user's own
YAML file with the same fields.

Families: ``xc7`` and ``xcup`` (AMD 7-series, UltraScale+: synthesized with Yosys ``synth_xilinx``
or Vivado) and ``ecp5`` (Lattice ECP5: Yosys ``synth_ecp5`` then nextpnr-ecp5 place and route).
``lut`` counts the family's LUTs (LUT6 for AMD, LUT4 for ECP5) and ``dsp`` its multiplier blocks
(DSP48, or ECP5 MULT18X18D). Block RAM is given in the family's native block: ``bram36`` (AMD
RAMB36 tiles) or ``bram18`` (ECP5 DP16KD, 18 Kbit), exactly one of the two. The other is derived
(a RAMB36 holds two RAMB18; two DP16KD make one 36-Kbit equivalent), so every board has both.
Optional ``board_part``: the Vivado board files' name, for the PS preset of ``msq deploy``.
An ECP5 ``part`` is a Lattice ordering code such as ``LFE5U-85F-6BG381C``: device, speed grade and
package are read from it for nextpnr.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from msq.assets import BOARDS_DIR
from msq.errors import MSQError
from msq.limits import check_size
from msq.names import check_label

FAMILIES = ("xc7", "xcup", "ecp5")  # AMD 7-series, AMD UltraScale+, Lattice ECP5
XILINX_FAMILIES = ("xc7", "xcup")
_INT_FIELDS = ("lut", "ff", "dsp")
_BRAM_FIELDS = ("bram36", "bram18")
MAX_COUNT = 10**8  # LUTs, flip-flops, DSPs or BRAM blocks of one device
MAX_CLOCK_MHZ = 2000.0
MAX_BOARD_BYTES = 64 * 1024
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's: fast, and it bounds the nesting depth
# Lattice ordering code: LFE5U / LFE5UM / LFE5UM5G, size in k-LUT, speed grade, package, grade.
ECP5_PART = re.compile(r"^(?P<device>LFE5U(?:M5G|M)?)-(?P<size>12|25|45|85)F-(?P<speed>[678])"
                       r"(?P<package>BG256|BG381|BG554|BG756|MG285|SG72|TG144)[CI]$")
BOARD_PART = re.compile(r"^[A-Za-z0-9_.-]+:[A-Za-z0-9_.-]+:part0:[0-9]+(\.[0-9]+)*$")


@dataclass(frozen=True)
class Board:
    """Resource capacity and clock target of one FPGA board."""

    name: str
    part: str
    family: str
    lut: int
    ff: int
    dsp: int
    bram36: float  # in 36-Kbit blocks: what MSQ's estimates and planner budget
    bram18: int  # in 18-Kbit blocks (RAMB18 or DP16KD)
    clock_mhz: float
    board_part: str | None = None  # Vivado board files (vendor:board:part0:version): msq deploy's PS preset


def available_boards() -> list[str]:
    """Names of the boards shipped in ``boards/``."""
    return sorted(p.stem for p in BOARDS_DIR.glob("*.yaml"))


def load_board(name_or_path: str | Path) -> Board:
    """Load a shipped board by name, or a user's board YAML by path; validate every field."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        check_label(str(name_or_path), "--board")
        path = BOARDS_DIR / f"{name_or_path}.yaml"
        if not path.is_file():
            raise MSQError(f"unknown board {str(name_or_path)!r}: expected one of "
                           f"{', '.join(available_boards())} or a path to a board .yaml file")
    if not path.is_file():
        raise MSQError(f"board file {path} does not exist")
    try:
        check_size(path, MAX_BOARD_BYTES, "board file")
        data = yaml.load(path.read_bytes().decode("utf-8"), Loader=_LOADER)
    except (yaml.YAMLError, UnicodeDecodeError, RecursionError) as exc:
        raise MSQError(f"board file {path} is not valid UTF-8 YAML: {type(exc).__name__}: {exc}") from exc
    if not isinstance(data, dict):
        raise MSQError(f"board file {path}: expected a mapping of fields")
    missing = [f for f in ("name", "part", "family", *_INT_FIELDS, "clock_mhz") if f not in data]
    brams = [f for f in _BRAM_FIELDS if f in data]
    if not brams:
        missing.append("bram36 (or bram18)")
    if missing:
        raise MSQError(f"board file {path}: missing field(s) {', '.join(missing)}")
    if len(brams) > 1:
        raise MSQError(f"board file {path}: give only one of the fields 'bram36' and 'bram18', not both")
    for field in (*_INT_FIELDS, *brams):
        value = data[field]
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_COUNT:
            raise MSQError(f"board file {path}: field '{field}' must be a non-negative integer at most {MAX_COUNT:,}, "
                           f"got {value!r}")
    check_label(data["name"], f"board file {path}: field 'name'")
    check_label(data["part"], f"board file {path}: field 'part'")
    if not isinstance(data["family"], str) or data["family"] not in FAMILIES:
        raise MSQError(f"board file {path}: field 'family' must be one of {', '.join(FAMILIES)}, got {data['family']!r}")
    if data["family"] == "ecp5" and not ECP5_PART.match(str(data["part"])):
        raise MSQError(f"board file {path}: field 'part' must be a Lattice ECP5 ordering code such as "
                       f"LFE5U-85F-6BG381C, got {data['part']!r}")
    clock = data["clock_mhz"]
    if (not isinstance(clock, (int, float)) or isinstance(clock, bool) or not math.isfinite(clock)
            or not 0 < clock <= MAX_CLOCK_MHZ):
        raise MSQError(f"board file {path}: field 'clock_mhz' must be a finite number in (0, {MAX_CLOCK_MHZ:g}], "
                       f"got {clock!r}")
    board_part = data.get("board_part")
    if board_part is not None and (not isinstance(board_part, str) or not BOARD_PART.match(board_part)):
        raise MSQError(f"board file {path}: field 'board_part' must be a Vivado board part "
                       f"vendor:board:part0:version such as tul.com.tw:pynq-z2:part0:1.0, got {board_part!r}")
    if "bram36" in data:
        bram36, bram18 = data["bram36"], 2 * data["bram36"]
    else:
        bram18 = data["bram18"]
        bram36 = bram18 // 2 if bram18 % 2 == 0 else bram18 / 2
    return Board(name=data["name"], part=data["part"], family=data["family"],
                 lut=data["lut"], ff=data["ff"], dsp=data["dsp"], bram36=bram36,
                 bram18=bram18, clock_mhz=float(clock), board_part=board_part)
