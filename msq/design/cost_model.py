"""Resource cost model: what each cell of the folded architecture costs, and the board's SP2 ratio.

The figures are measured, not assumed: ``msq calibrate`` synthesizes the project's own cells with
Yosys ``synth_xilinx`` (msq/design/calibrate.py) and writes ``msq/data/calibration.json``. A MAC of
an engine (``sp2``, ``fixed`` on DSPs, ``fixed_lut``: fixed point in LUTs, ``fixed_hi``: the
high-precision rows on DSPs) costs what the engine measured per MAC at the nearest SIMD
(interpolated in log2 SIMD) at W4A4, scaled by the measured bit-width trend at SIMD 8. Yosys maps a
multiply to a DSP48 only when its product has at least 9 bits; narrower fixed-point MACs are
measured as it maps them. The high rows' engine (``fixed_hi``) is the same kernel,
``msq_fixed_engine``, as the fixed DSP engine: its SIMD sweep is measured at W8A4
(:data:`MEASURED_AT`), and the width trend is the fixed engine's (:data:`MEASURED_AS`); a table
without its measurements costs it as the fixed engine, scaled by width to ``high_bits``.

The board ratio (docs/architecture.md): ``r = P_lut / (P_lut + P_dsp)`` balances the engines. With
``HEADROOM`` of each resource planned for, the DSP budget affords ``P_dsp`` fixed MACs per cycle
(two per DSP when packed); the LUTs those MACs use besides their DSPs come out of the LUT budget,
and the rest affords ``P_lut`` SP2 MACs at their calibrated LUT cost.
"""
from __future__ import annotations

import json
import math
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from msq.assets import CALIBRATION_JSON
from msq.boards import Board
from msq.errors import MSQError
from msq.ir.plan import DSP_ENGINES, ENGINES
from msq.numerics import check_bits

HEADROOM = 0.8
REFERENCE_SIMD = 8
MEASURED_AS = {"fixed_hi": "fixed"}  # engine -> the engine whose width sweep scales it (and costs it without its own)
MEASURED_AT = {"fixed_hi": (8, 4)}  # engine -> (wbits, abits) of its own SIMD sweep; the others' is W4A4


@lru_cache(maxsize=1)
def calibration() -> dict[str, Any]:
    """The calibration table (msq/data/calibration.json), read once."""
    try:
        table = json.loads(CALIBRATION_JSON.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise MSQError(f"{CALIBRATION_JSON}: cannot read the calibration table ({exc}); "
                       "regenerate it with 'msq calibrate'") from exc
    for key in ("measured", "pe", "control"):
        if key not in table:
            raise MSQError(f"{CALIBRATION_JSON}: missing field '{key}'; regenerate it with 'msq calibrate'")
    return table


def _interp(x: float, points: list[tuple[float, float]]) -> float:
    """Piecewise-linear interpolation through sorted points, held flat outside them."""
    points = sorted(points)
    if x <= points[0][0]:
        return points[0][1]
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        if x <= x1:
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return points[-1][1]


def _per_mac(kind: str, key: str, match: Callable, table: dict[str, Any]) -> list[tuple[dict, float]]:
    macs = table["pe"]
    return [(m, m[key] / (macs * m["params"][2])) for m in table["measured"][kind] if match(m["params"])]


def mac_cost(engine: str, wbits: int, abits: int, simd: int, pack: bool = False,
             table: dict[str, Any] | None = None) -> tuple[float, float, float]:
    """(LUT, FF, DSP) per MAC of an ``engine`` (one of ``ENGINES``) at these widths, SIMD and packing."""
    if engine not in ENGINES:
        raise MSQError(f"unknown engine {engine!r}: expected one of {', '.join(ENGINES)}")
    check_bits(wbits)
    check_bits(abits, "abits")
    table = table or calibration()
    trend = f"{MEASURED_AS.get(engine, engine)}_engine"  # the engine whose width sweep scales this one
    kind = f"{engine}_engine" if f"{engine}_engine" in table["measured"] else trend
    if kind not in table["measured"] or trend not in table["measured"]:
        raise MSQError(f"{CALIBRATION_JSON}: no measurements of the {engine} engine; regenerate it with "
                       "'msq calibrate'")
    ref_w, ref_a = MEASURED_AT.get(engine, (4, 4)) if kind != trend else (4, 4)
    p = int(pack) if engine in DSP_ENGINES else None
    bits = (wbits + abits) / 2
    out = []
    for key in ("lut", "ff", "dsp"):
        by_simd = [(math.log2(m["params"][2]), v) for m, v in _per_mac(kind, key, lambda q: (q[0], q[1]) == (ref_w, ref_a)
                                                                        and (p is None or q[3] == p), table)]
        by_bits = [(m["params"][0], v) for m, v in _per_mac(trend, key, lambda q: q[2] == REFERENCE_SIMD
                                                             and (p is None or q[3] == 0), table)]
        ref = _interp((ref_w + ref_a) / 2, by_bits)
        scale = _interp(bits, by_bits) / ref if ref else 0.0
        base = _interp(math.log2(simd), by_simd)
        out.append(base * scale if key != "dsp" else (base if _interp(bits, by_bits) else 0.0))
    return out[0], out[1], out[2]


def requant_cost(rqw: int, table: dict[str, Any] | None = None) -> tuple[float, float, float]:
    """(LUT, FF, DSP) of one requantizer of a ``rqw``-bit datapath (per-stage overhead included)."""
    table = table or calibration()
    pts = {(m["params"][0], m["params"][1]): m for m in table["measured"]["requant"]}
    widths = sorted({r for _, r in pts})
    out = []
    for key in ("lut", "ff", "dsp"):
        out.append(max(0.0, _interp(rqw, [(r, float(pts[(1, r)][key])) for r in widths])))
    return out[0], out[1], out[2]


def _linear(kind: str, key: str, x: float, feature: Callable, table: dict[str, Any]) -> float:
    pts = [(feature(m["params"]), float(m[key])) for m in table["measured"][kind]]
    (x0, y0), (x1, y1) = sorted(pts)[0], sorted(pts)[-1]
    slope = (y1 - y0) / (x1 - x0)
    return max(0.0, y0 + slope * (x - x0))


def buffer_cost(elems: int, bits: int, table: dict[str, Any] | None = None) -> tuple[float, float]:
    """(LUT, FF) of one stage's frame buffers (every buffer) of ``elems`` elements of ``bits``."""
    table = table or calibration()
    feature = lambda q: q[0] * q[1]  # noqa: E731
    return (_linear("buffer", "lut", elems * bits, feature, table),
            _linear("buffer", "ff", elems * bits, feature, table))


def lut_rom_cost(bits: int, table: dict[str, Any] | None = None) -> float:
    """LUTs of a LUT ROM of ``bits`` bits."""
    table = table or calibration()
    return _linear("rom", "lut", bits, lambda q: q[0] * q[1], table) if bits else 0.0


def control_cost(table: dict[str, Any] | None = None) -> tuple[float, float]:
    """(LUT, FF) of one layer's controller: what whole layers measured beyond their parts."""
    table = table or calibration()
    return table["control"]["lut"], table["control"]["ff"]


def sp2_mac_luts(wbits: int, abits: int) -> float:
    """Calibrated LUTs of one SP2 MAC at the reference SIMD."""
    return mac_cost("sp2", wbits, abits, REFERENCE_SIMD)[0]


def fixed_mac_cost(wbits: int, abits: int) -> tuple[float, float]:
    """(LUT, DSP) of one fixed-point MAC at the reference SIMD, packed two per DSP when it fits."""
    lut, _, dsp = mac_cost("fixed", wbits, abits, REFERENCE_SIMD, pack=True)
    return lut, dsp


def board_sp2_ratio(board: Board, wbits: int, abits: int) -> float:
    """The SP2 row fraction that balances the board's LUT engine against its DSP engine."""
    lut_f, dsp_f = fixed_mac_cost(wbits, abits)
    p_dsp = HEADROOM * board.dsp / dsp_f if dsp_f else 0.0
    luts_left = max(0.0, HEADROOM * board.lut - p_dsp * lut_f)
    p_lut = luts_left / sp2_mac_luts(wbits, abits)
    return p_lut / (p_lut + p_dsp)
