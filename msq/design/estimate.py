"""Resource estimate of a generated design from its IR and engine plan (no synthesis).

Per layer, from the Yosys calibration table (msq/data/calibration.json, ``msq calibrate``):

- every engine lane: the calibrated cost of one lane (MAC kernel + accumulator register) at the
  layer's weight and input bits, corrected by the per-accumulator-bit slope for ``acc_bits``;
- the weight ROMs: ``lanes * passes * fan_in`` codes of ``code_bits`` (SP2: 1 + m1 + max(m2, 1),
  fixed: wbits), and the per-row bias/multiplier/shift ROMs, at the calibrated cost per ROM bit;
- the per-row accumulator file (``rows * acc_bits`` bits), the requantizer (by datapath width) and
  the ping-pong frame buffer (``2^AW * in_bits`` bits per bank pair), by their calibrated fits;
- control: the template's counters and address registers (a structural count of flip-flops);
- the residual: whole generated layers synthesized at calibration show LUTs the terms above miss
  (controller logic, and weight ROMs that map less densely beside the lanes than a bare ROM);
  they are fitted per layer against its weight bits (``layer_lut_per_weight_bit``).

DSPs are exact: one DSP48 per fixed lane, none anywhere else (a fixed lane whose product is
narrower than 9 bits is calibrated as Yosys maps it: LUTs, no DSP). The generated design never infers
block RAM (the frame buffer reads asynchronously, so it maps to distributed RAM): BRAM is 0.
The documented tolerance against Yosys (docs/synthesis.md, tests/test_synth.py) is
``LUT_TOLERANCE`` / ``FF_TOLERANCE`` relative error on the whole design; DSP is exact.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from msq.design import cost_model
from msq.ir.plan import LayerPlan
from msq.backends.rtl import cycles, verilog
from msq.ir.arith import MULT_BITS, SHIFT_BITS, requant_datapath_bits
from msq.ir.model import ComputeLayer, IRModel, Layer
from msq.numerics import RowScheme, sp2_split

LUT_TOLERANCE = 0.25
FF_TOLERANCE = 0.25
ROW_CONST_BITS = MULT_BITS + SHIFT_BITS  # multiplier and shift ROM bits per row (the bias adds the datapath width)


@dataclass(frozen=True)
class Resources:
    """Estimated LUT/FF/DSP/BRAM (36 Kb tiles) of a design or a layer."""

    lut: float
    ff: float
    dsp: int
    bram36: float = 0.0

    def __add__(self, other: Resources) -> Resources:
        return Resources(self.lut + other.lut, self.ff + other.ff, self.dsp + other.dsp, self.bram36 + other.bram36)

    def as_dict(self) -> dict[str, float]:
        d = asdict(self)
        return {k: (round(v) if k in ("lut", "ff") else v) for k, v in d.items()}


ZERO = Resources(0.0, 0.0, 0)


def _linear(table: dict[str, Any], name: str, x: float) -> float:
    fit = table["fits"][name]
    return max(0.0, fit["a"] + fit["b"] * x)


def _buffer(table: dict[str, Any], width: int, elems: int) -> Resources:
    aw = max(1, (elems - 1).bit_length())
    bits = width * (1 << aw)
    return Resources(_linear(table, "buffer_lut_per_bit", bits), _linear(table, "buffer_ff_per_bit", bits), 0)


def _rom(table: dict[str, Any], bits: float) -> Resources:
    return Resources(_linear(table, "rom_lut_per_bit", bits), 0.0, 0) if bits else ZERO


def _counter_bits(layer: Layer, plan: LayerPlan | None) -> tuple[int, int, int]:
    """(tap, pass, row) counter widths of a layer's controller (as msq.backends.rtl.verilog sizes them)."""
    if not isinstance(layer, ComputeLayer):
        return 1, 1, 1
    n_pass = cycles.passes(layer, plan)
    return tuple(max(1, int(x).bit_length()) for x in (layer.fan_in - 1, n_pass - 1, layer.rows - 1))


def control_ff(layer: Layer, plan: LayerPlan | None) -> float:
    """Flip-flops of a layer's controller: 9 coordinate/address registers, counters, state, output."""
    if isinstance(layer, ComputeLayer):
        h, w, c = (1, 1, layer.fan_in) if layer.kind == "dense" else layer.in_shape
        saw = verilog._saw((h, w, c), layer.padding if layer.kind == "conv" else (0, 0), layer.fan_in + layer.rows)
    else:
        saw = verilog._saw(tuple(layer.in_shape), (0, 0), layer.kernel[0] * layer.kernel[1])
    return 9 * saw + sum(_counter_bits(layer, plan)) + 2 + 1 + layer.out_fmt.bits


def weight_bits(layer: Layer) -> int:
    """Bits of a layer's weight codes (SP2: 1 + m1 + max(m2, 1) per weight, fixed: wbits; pools: 0)."""
    if not isinstance(layer, ComputeLayer):
        return 0
    m1, m2 = sp2_split(layer.wbits)
    per_row = len(layer.sp2_rows) * (1 + m1 + max(m2, 1)) + len(layer.fixed_rows) * layer.wbits
    return per_row * layer.fan_in


def _residual(table: dict[str, Any], layer: Layer) -> Resources:
    return Resources(_linear(table, "layer_lut_per_weight_bit", weight_bits(layer)), 0.0, 0)


def compute_layer(layer: ComputeLayer, plan: LayerPlan, table: dict[str, Any]) -> Resources:
    """Estimated resources of one dense/conv layer with the given lanes, controller excluded."""
    w, a, acc = layer.wbits, layer.in_fmt.bits, layer.acc_bits
    n_pass = cycles.passes(layer, plan)
    total = ZERO
    m1, m2 = sp2_split(w)
    for scheme, lanes, code_bits in ((RowScheme.SP2, plan.sp2_lanes, 1 + m1 + max(m2, 1)), (RowScheme.FIXED, plan.fixed_lanes, w)):
        if not lanes:
            continue
        lut, ff, dsp = cost_model.lane_cost(scheme, w, a, acc, table)
        total += Resources(lanes * lut, lanes * ff, lanes * dsp)
        total += _rom(table, lanes * n_pass * layer.fan_in * code_bits)
    pw = requant_datapath_bits(layer.requant_bits, acc, int(layer.shift.max()))
    total += _rom(table, layer.rows * (ROW_CONST_BITS + pw))
    acc_bits = layer.rows * acc
    total += Resources(_linear(table, "accfile_lut_per_bit", acc_bits), _linear(table, "accfile_ff_per_bit", acc_bits), 0)
    total += Resources(_linear(table, "requant_lut_per_pw", pw), _linear(table, "requant_ff_per_pw", pw), 0)
    h, wd, c = (1, 1, layer.fan_in) if layer.kind == "dense" else layer.in_shape
    return total + _buffer(table, layer.in_fmt.bits, h * wd * c)


def pool_layer(layer: Layer, table: dict[str, Any]) -> Resources:
    """A pooling layer's frame buffer and (average pooling) requantizer, controller excluded."""
    total = _buffer(table, layer.in_fmt.bits, int(np.prod(layer.in_shape)))
    taps = layer.kernel[0] * layer.kernel[1]
    if layer.kind == "avgpool":
        sumw = layer.in_fmt.bits + 1 + max(1, (taps - 1).bit_length())
        pw = requant_datapath_bits(layer.requant_bits, sumw, layer.shift)
        total += Resources(_linear(table, "requant_lut_per_pw", pw), _linear(table, "requant_ff_per_pw", pw), 0)
    return total


def layer_resources(layer: Layer, plan: LayerPlan | None, table: dict[str, Any] | None = None,
                    residual: bool = True) -> Resources:
    """Estimated resources of any layer (compute layers need their plan); ``table`` defaults to
    the shipped calibration; ``residual=False`` leaves out the fitted residual (calibration fits it)."""
    table = table or cost_model.calibration()
    if isinstance(layer, ComputeLayer):
        if plan is None:
            raise ValueError(f"layer '{layer.name}' needs its engine plan")
        res = compute_layer(layer, plan, table)
    else:
        res = pool_layer(layer, table)
    res += Resources(0.0, control_ff(layer, plan), 0)
    return res + _residual(table, layer) if residual else res


def estimate_design(ir: IRModel, plan: dict[str, LayerPlan]) -> Resources:
    """Estimated resources of the whole generated design (``msq rtl`` output) for ``plan``."""
    total = ZERO
    for layer in ir.layers:
        total += layer_resources(layer, plan.get(layer.name))
    return Resources(math.ceil(total.lut), math.ceil(total.ff), total.dsp, total.bram36)
