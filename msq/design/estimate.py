"""Resource estimate of a generated design from its IR and plan (no synthesis).

Per layer, from the Yosys calibration table (msq/data/calibration.json, ``msq calibrate``):

- each engine (SP2, fixed-point on DSPs, fixed-point in LUTs, the high-precision rows' DSP
  engine): ``PE x SIMD`` MACs at the calibrated cost per MAC of that engine, SIMD and width (the
  DSP engines pack two rows per DSP when the generator does);
- the requantizers: ``ceil(PE / steps per fold)`` per engine, by datapath width;
- the frame buffers of its inputs (every buffer), and the output stream's: in registers at the
  calibrated cost per bit, or, for images in block RAM (``msq.ir.plan.block_frame``), the RAM
  tiles of a pixel per word plus the pixel assembler and the reader's group multiplexer (measured
  with Yosys: docs/rtl.md, Frame buffers);
- average pooling, add and concat: a requantizer per lane;
- ROMs: weights (``folds x steps`` words of ``PE x SIMD`` codes per engine) and requantization
  constants, in LUTs at the calibrated cost per bit, or block RAM when the generator puts them
  there (one RAMB36 per 72 bits of width and 512 words of depth);
- the controller: what whole layers measured beyond their parts.

DSPs are counted by the same rule: fixed MACs (halved when packed) and one per requantizer.
The documented tolerance against Yosys (docs/synthesis.md, tests/test_synth.py) is
``LUT_TOLERANCE`` / ``FF_TOLERANCE`` relative error on the whole design.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from msq.backends.rtl import cycles, verilog
from msq.design import cost_model
from msq.design.calibrate import CAL_BUFFERS
from msq.ir.arith import MULT_BITS, SHIFT_BITS
from msq.ir.model import ComputeLayer, IRModel, Layer
from msq.ir.plan import EngineRows, LayerPlan, Plan, block_frame, engine_rows, folds

LUT_TOLERANCE = 0.25
FF_TOLERANCE = 0.25
RAMB36_WIDTH, RAMB36_DEPTH = 72, 512  # simple dual-port shape of a RAMB36 used for wide ROMs
# (width, depth, RAMB36 tiles) of the shapes a block RAM takes (RAMB36E1, and RAMB18E1 as half a tile)
RAM_SHAPES = ((72, 512, 1.0), (36, 1024, 1.0), (18, 2048, 1.0), (9, 4096, 1.0), (4, 8192, 1.0),
              (36, 512, 0.5), (18, 1024, 0.5), (9, 2048, 0.5))


@dataclass(frozen=True)
class Resources:
    """Estimated LUT/FF/DSP/BRAM (36 Kb tiles) of a design or a layer."""

    lut: float
    ff: float
    dsp: float
    bram36: float = 0.0

    def __add__(self, other: Resources) -> Resources:
        return Resources(self.lut + other.lut, self.ff + other.ff, self.dsp + other.dsp, self.bram36 + other.bram36)

    def as_dict(self) -> dict[str, float]:
        return {k: (round(v) if k in ("lut", "ff", "dsp") else round(v, 1)) for k, v in asdict(self).items()}


ZERO = Resources(0.0, 0.0, 0.0)


def rom(width: int, depth: int, table: dict[str, Any]) -> Resources:
    """A ROM as the generator places it: block RAM from ``verilog.BLOCK_ROM_BITS`` bits, else LUTs."""
    if width * depth >= verilog.BLOCK_ROM_BITS:
        return Resources(0.0, 0.0, 0.0, math.ceil(width / RAMB36_WIDTH) * math.ceil(depth / RAMB36_DEPTH))
    return Resources(cost_model.lut_rom_cost(width * depth, table), 2.0 * width, 0.0)


def engine(layer: ComputeLayer, e: EngineRows, lp: LayerPlan, table: dict[str, Any]) -> Resources:
    """One engine: its MACs (at the engine's weight width), requantizers, weight and constant ROMs."""
    simd, nf, sf, pe = lp.simd, folds(layer, lp), verilog.steps_per_fold(layer, lp), e.pe
    lut, ff, dsp = cost_model.mac_cost(e.kind, e.wbits, layer.in_fmt.bits, simd, verilog.fixed_packing(e), table)
    macs = pe * simd
    total = Resources(macs * lut, macs * ff, macs * dsp)
    units = verilog.requant_units(pe, sf)
    rq = cost_model.requant_cost(layer.requant_bits, table)
    total += Resources(units * rq[0], units * rq[1], units * rq[2])
    total += rom(pe * simd * verilog.code_bits(e.kind, e.wbits), nf * sf, table)
    total += rom(units * (MULT_BITS + layer.requant_bits + SHIFT_BITS), nf * math.ceil(pe / units), table)
    return total


def ram_tiles(width: int, depth: int) -> float:
    """RAMB36 tiles of a ``width`` x ``depth`` RAM in its cheapest shape."""
    return min(math.ceil(width / w) * math.ceil(depth / d) * tiles for w, d, tiles in RAM_SHAPES)


def buffers(shape: tuple[int, ...], bits: int, count: int, word: int, table: dict[str, Any]) -> Resources:
    """``count`` frame buffers of ``shape`` read ``word`` elements at a time: in registers at the
    calibrated cost (the calibration measured three), or in block RAM (a pixel of ``C x bits`` per
    word; the assembler and the group multiplexer as measured: about a LUT and a flip-flop per
    pixel bit, a third of a LUT per word bit and group)."""
    if block_frame(shape, bits):
        pixel = shape[-1] * bits
        groups = verilog.read_layout(shape, bits, word).stride
        return Resources(pixel + word * bits * (groups - 1) / 3 + 25, pixel + word * bits + 24, 0.0,
                         ram_tiles(pixel, verilog.block_ram_words(shape, count)))
    lut, ff = cost_model.buffer_cost(int(np.prod(shape)) * count // CAL_BUFFERS, bits, table)
    return Resources(lut, ff, 0.0)


def layer_resources(layer: Layer, lp: LayerPlan, n_buffers: tuple[int, ...],
                    table: dict[str, Any] | None = None) -> Resources:
    """Estimated resources of one layer: engines (or, for average pooling, add and concat, a
    requantizer per lane), the ``n_buffers[i]`` buffers of its input ``i``, controller."""
    table = table or cost_model.calibration()
    total = ZERO
    if isinstance(layer, ComputeLayer):
        for e in engine_rows(layer, lp):
            total += engine(layer, e, lp, table)
    elif layer.kind != "maxpool":  # a lane's constant multiply, as a requantization stage measured
        rq = cost_model.requant_cost(layer.requant_bits, table)
        total += Resources(lp.simd * rq[0], lp.simd * rq[1], lp.simd * rq[2])
    for shape, fmt, count in zip(layer.in_shapes, layer.in_fmts, n_buffers):
        total += buffers(tuple(shape), fmt.bits, count, lp.simd, table)
    return total + Resources(*cost_model.control_cost(table), 0.0)


def estimate_design(ir: IRModel, plan: Plan, table: dict[str, Any] | None = None) -> Resources:
    """Estimated resources of the whole generated design (``msq rtl`` output) for ``plan``."""
    table = table or cost_model.calibration()
    counts = cycles.buffer_counts(ir, plan)
    total = ZERO
    for layer, count in zip(ir.layers, counts):
        total += layer_resources(layer, plan[layer.name], count, table)
    total += buffers((int(np.prod(ir.output_shape)),), ir.output_fmt.bits, counts[-1][0], plan.out_width, table)
    return Resources(math.ceil(total.lut), math.ceil(total.ff), math.ceil(total.dsp), total.bram36)


def control_fit(table: dict[str, Any]) -> dict[str, float]:
    """The per-layer controller cost: the median over the whole calibration layers of what they
    measure beyond their estimated parts."""
    from msq.design import calibrate

    table = {**table, "control": {"lut": 0.0, "ff": 0.0}}
    luts, ffs = [], []
    for m in table["measured"]["layer"]:
        fan_in, rows, simd, pe_s, pe_f = m["params"]
        layer = calibrate.synthetic_dense(fan_in, rows)
        parts = layer_resources(layer, LayerPlan(simd, pe_s, pe_f), (CAL_BUFFERS,), table)
        luts.append(m["lut"] - parts.lut)
        ffs.append(m["ff"] - parts.ff)
    return {"lut": max(0.0, float(np.median(luts))), "ff": max(0.0, float(np.median(ffs)))}
