"""Resource cost model: what one engine lane of each scheme costs, and the board's SP2 ratio.

The figures are measured, not assumed: ``msq calibrate`` synthesizes the project's own kernels
(``rtl_sim/kernels/msq_sp2_mac.v`` and ``msq_fixed_mac.v``, each with its accumulator register)
with Yosys ``synth_xilinx`` at weight and activation widths 2..8 and writes
``msq/data/calibration.json`` (Yosys version, date and the command inside). A lane's cost at
``(wbits, abits)`` is the measured point when the grid has it, else the measured ``(wbits, 4)``
plus ``(4, abits)`` minus ``(4, 4)`` (widths outside 2..8 are clipped), corrected for the
accumulator width by the measured per-bit slope.

Yosys' ``synth_xilinx`` maps a multiply to a DSP48 only when its product is at least 9 bits wide
(``abits + 1 + wbits >= 9``, e.g. W4A4); narrower fixed lanes are measured as LUT multipliers
with no DSP, and the estimator (msq/design/estimate.py) follows those Yosys counts.
Vivado honours the kernel's ``use_dsp`` attribute at every width, so the board ratio costs a fixed
lane as one DSP48 plus the LUTs of a DSP-mapped lane whatever the widths.

The board ratio (docs/architecture.md): ``r = P_lut / (P_lut + P_dsp)`` balances the engines. With ``HEADROOM`` of each
resource planned for, the DSP budget affords ``P_dsp`` fixed lanes (one DSP48 each); the LUTs
those lanes use besides their DSP come out of the LUT budget, and the rest affords ``P_lut`` SP2
lanes at their calibrated LUT cost.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from msq.assets import CALIBRATION_JSON
from msq.boards import Board
from msq.errors import MSQError
from msq.numerics import RowScheme, check_bits

HEADROOM = 0.8
ENGINE_SCHEMES = (RowScheme.SP2, RowScheme.FIXED)  # the row schemes that have hardware engines


@lru_cache(maxsize=1)
def calibration() -> dict[str, Any]:
    """The calibration table (msq/data/calibration.json), read once."""
    try:
        table = json.loads(CALIBRATION_JSON.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise MSQError(f"{CALIBRATION_JSON}: cannot read the calibration table ({exc}); "
                       "regenerate it with 'msq calibrate'") from exc
    for key in ("measured", "fits", "acc_ref"):
        if key not in table:
            raise MSQError(f"{CALIBRATION_JSON}: missing field '{key}'; regenerate it with 'msq calibrate'")
    return table


def _lane_points(scheme: str, table: dict[str, Any]) -> dict[tuple[int, int], dict[str, Any]]:
    return {(m["params"][0], m["params"][1]): m for m in table["measured"][f"{scheme}_lane"]
            if m["params"][2] == table["acc_ref"]}


def lane_cost(scheme: str, wbits: int, abits: int, acc_bits: int | None = None,
              table: dict[str, Any] | None = None) -> tuple[float, float, int]:
    """(LUT, FF, DSP) of one engine lane of ``scheme`` ('sp2' or 'fixed'): kernel + accumulator
    (``table``: a calibration table other than the shipped one)."""
    if scheme not in ENGINE_SCHEMES:
        raise MSQError(f"unknown scheme {scheme!r}: expected one of {', '.join(ENGINE_SCHEMES)}")
    table = table or calibration()
    pts = _lane_points(scheme, table)
    w, a = min(max(wbits, 2), 8), min(max(abits, 2), 8)
    if (w, a) in pts:
        p = pts[(w, a)]
        lut, ff, dsp = float(p["lut"]), float(p["ff"]), int(p["dsp"])
    else:
        pw, pa, p0 = pts[(w, 4)], pts[(4, a)], pts[(4, 4)]
        lut = float(pw["lut"] + pa["lut"] - p0["lut"])
        ff = float(pw["ff"] + pa["ff"] - p0["ff"])
        dsp = int(max(pw["dsp"], pa["dsp"]))
    extra = (acc_bits if acc_bits is not None else table["acc_ref"]) - table["acc_ref"]
    fits = table["fits"]
    lut += extra * fits[f"{scheme}_lane_lut_per_acc_bit"]
    ff += extra * fits[f"{scheme}_lane_ff_per_acc_bit"]
    return max(lut, 1.0), max(ff, 0.0), dsp


def sp2_mac_luts(wbits: int, abits: int) -> float:
    """Calibrated LUTs of one SP2 shift-add lane (MAC + accumulator) at the reference accumulator width."""
    check_bits(wbits)
    check_bits(abits, "abits")
    return lane_cost(RowScheme.SP2, wbits, abits)[0]


def _dsp_lane(wbits: int, abits: int) -> tuple[float, float, int]:
    """The calibrated fixed lane, or (when Yosys put a narrow product in LUTs) the W4A4 DSP lane."""
    cost = lane_cost(RowScheme.FIXED, wbits, abits)
    return cost if cost[2] else lane_cost(RowScheme.FIXED, 4, 4)


def fixed_mac_dsps(wbits: int, abits: int) -> float:
    """DSP slices of one fixed-point lane: one DSP48 (the kernel's product is marked use_dsp)."""
    check_bits(wbits)
    check_bits(abits, "abits")
    return float(_dsp_lane(wbits, abits)[2])


def fixed_mac_luts(wbits: int, abits: int) -> float:
    """Calibrated LUTs a DSP-mapped fixed-point lane uses besides its DSP (accumulator and select)."""
    check_bits(wbits)
    check_bits(abits, "abits")
    return _dsp_lane(wbits, abits)[0]


def board_sp2_ratio(board: Board, wbits: int, abits: int) -> float:
    """The SP2 row fraction that balances the board's LUT engine against its DSP engine."""
    p_dsp = HEADROOM * board.dsp / fixed_mac_dsps(wbits, abits)
    luts_left = max(0.0, HEADROOM * board.lut - p_dsp * fixed_mac_luts(wbits, abits))
    p_lut = luts_left / sp2_mac_luts(wbits, abits)
    return p_lut / (p_lut + p_dsp)
