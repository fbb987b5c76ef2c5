"""The engine plan: how wide each layer of the folded dataflow is (docs/architecture.md).

A dense or conv layer has up to four engines (:data:`ENGINES`): an SP2 engine (shift-adds in
LUTs) for its SP2 rows, for its fixed-point rows a DSP engine (multiplies on DSPs) and a LUT
engine (the same products as radix-4 Booth shift-adds in LUTs), and for its high-precision rows
(``high_bits``-bit fixed point, intra-layer multi-precision) a DSP engine of their own. Every cycle
each engine takes one word of ``simd`` input elements and computes ``pe_sp2``, ``pe_fixed``,
``pe_fixed_lut`` or ``pe_fixed_hi`` rows at once. An engine with ``R`` rows needs ``ceil(R / pe)`` folds (passes over the input vector, one
group of rows each); the slowest engine sets the layer's folds. The fixed rows are split between
the DSP and LUT engines by :func:`engine_rows`. A pooling layer takes ``simd`` channels per cycle. ``in_width`` and ``out_width`` are the elements per beat of the top-level input and output
streams. Backends read the plan like the IR; the planner (msq.design.planner) writes it.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from msq import atomic
from msq.errors import MSQError
from msq.ir.model import ComputeLayer, IRModel, Layer

PLAN_VERSION = 2
ENGINES = ("sp2", "fixed", "fixed_lut", "fixed_hi")  # engine kinds of a compute layer, in output-port order
DSP_ENGINES = ("fixed", "fixed_hi")  # the engines that multiply on DSPs (msq_fixed_engine)
PE_FIELDS = tuple(f"pe_{kind}" for kind in ENGINES)
BLOCK_FRAME_BITS = 4096  # a reader's frames of an image this large go to block RAM, a pixel per word


def block_frame(shape: tuple[int, ...], bits: int) -> bool:
    """Whether a layer keeps its input frames of ``shape`` (``bits`` per element) in block RAM, one
    pixel per word (docs/rtl.md, Frame buffers): images of more than one pixel and at least
    :data:`BLOCK_FRAME_BITS` bits. Vectors and small images stay in registers, where any element
    map is free."""
    return len(shape) == 3 and shape[0] * shape[1] > 1 and int(np.prod(shape)) * bits >= BLOCK_FRAME_BITS


def in_width_unit(ir: IRModel) -> int:
    """What ``in_width`` must divide: a frame's elements, or a pixel's channels when the network's
    input frames are in block RAM (they are written a pixel at a time, so no beat may straddle two)."""
    shape = tuple(ir.input_shape)
    return int(shape[-1]) if block_frame(shape, ir.input_fmt.bits) else int(np.prod(shape))


@dataclass(frozen=True)
class LayerPlan:
    """Parallelism of one layer: input elements per cycle, and rows per fold of each engine."""

    simd: int
    pe_sp2: int = 0
    pe_fixed: int = 0
    pe_fixed_lut: int = 0
    pe_fixed_hi: int = 0

    def summary(self) -> str:
        """One line for people: ``simd 16, pe_sp2 58, pe_fixed 6, pe_fixed_lut 0`` (and
        ``pe_fixed_hi`` when the layer has high-precision rows)."""
        hi = f", pe_fixed_hi {self.pe_fixed_hi}" if self.pe_fixed_hi else ""
        return f"simd {self.simd}, pe_sp2 {self.pe_sp2}, pe_fixed {self.pe_fixed}, pe_fixed_lut {self.pe_fixed_lut}{hi}"

    def pe(self, engine: str) -> int:
        """Rows per fold of ``engine`` (one of :data:`ENGINES`)."""
        return getattr(self, f"pe_{engine}")


@dataclass(frozen=True)
class Plan:
    """Parallelism of a whole design: one :class:`LayerPlan` per layer, and the stream widths."""

    layers: dict[str, LayerPlan]
    in_width: int = 1
    out_width: int = 1

    def __getitem__(self, name: str) -> LayerPlan:
        return self.layers[name]

    def as_dict(self) -> dict[str, Any]:
        return {"version": PLAN_VERSION, "io": {"in_width": self.in_width, "out_width": self.out_width},
                "layers": {name: asdict(p) for name, p in self.layers.items()}}


def simd_unit(layer: Layer) -> int:
    """What ``simd`` must divide: a dense layer's fan-in, a concat's channels of each input (a word
    never straddles two inputs), otherwise the input channels."""
    if layer.kind == "dense":
        return layer.fan_in
    if layer.kind == "concat":
        return math.gcd(*(int(shape[-1]) for shape in layer.in_shapes))
    return int(layer.in_shape[-1])


@dataclass(frozen=True)
class EngineRows:
    """One engine of a compute layer: its kind, its IR rows in fold order, rows per fold, and the
    widths its hardware is built for (weight bits, accumulator bits)."""

    kind: str
    rows: np.ndarray
    pe: int
    wbits: int
    acc_bits: int


def all_engine_rows(layer: ComputeLayer, lp: LayerPlan) -> list[EngineRows]:
    """Every engine kind of :data:`ENGINES` with its rows (possibly none). The fixed rows go first
    to the DSP engine, as many as it finishes in the folds both fixed engines need together
    (``ceil(R / (pe_fixed + pe_fixed_lut))``), the rest to the LUT engine, which builds no more PEs
    than it gets rows (a lane without rows would idle in every fold); the high-precision rows
    go to their own DSP engine. Every engine's widths are derived here: ``wbits`` (``high_bits``
    for the high engine) and :meth:`ComputeLayer.group_acc_bits` of its row group."""
    fixed = layer.fixed_rows
    shared = lp.pe_fixed + lp.pe_fixed_lut
    n_dsp = min(len(fixed), math.ceil(len(fixed) / shared) * lp.pe_fixed) if shared else 0
    low, high = (layer.wbits, layer.group_acc_bits(False)), (layer.high_bits or layer.wbits, layer.group_acc_bits(True))
    return [EngineRows("sp2", layer.sp2_rows, lp.pe_sp2, *low), EngineRows("fixed", fixed[:n_dsp], lp.pe_fixed, *low),
            EngineRows("fixed_lut", fixed[n_dsp:], min(lp.pe_fixed_lut, len(fixed) - n_dsp), *low),
            EngineRows("fixed_hi", layer.high_rows, lp.pe_fixed_hi, *high)]


def engine_rows(layer: ComputeLayer, lp: LayerPlan) -> list[EngineRows]:
    """The engines a layer builds: those of :func:`all_engine_rows` that have rows."""
    return [e for e in all_engine_rows(layer, lp) if len(e.rows)]


def folds(layer: ComputeLayer, lp: LayerPlan) -> int:
    """Groups of rows (passes over the input vector) of the slowest engine."""
    return max((math.ceil(len(e.rows) / e.pe) for e in engine_rows(layer, lp)), default=0)


def divisors(n: int) -> list[int]:
    """Every divisor of ``n``, ascending (the ``simd`` and stream widths a size allows)."""
    return [d for d in range(1, n + 1) if n % d == 0]


def default_plan(ir: IRModel) -> Plan:
    """The smallest design: one input element per cycle, one row per fold in each engine."""
    layers = {}
    for layer in ir.layers:
        if isinstance(layer, ComputeLayer):
            layers[layer.name] = LayerPlan(1, int(len(layer.sp2_rows) > 0), int(len(layer.fixed_rows) > 0),
                                           pe_fixed_hi=int(len(layer.high_rows) > 0))
        else:
            layers[layer.name] = LayerPlan(1)
    return Plan(layers, 1, 1)


def check_plan(ir: IRModel, plan: Plan, where: str = "plan") -> Plan:
    """Every layer planned, every width legal for its layer; an MSQError names the layer and field."""
    for what, width, size, of in (("in_width", plan.in_width, in_width_unit(ir), "input"),
                                  ("out_width", plan.out_width, int(np.prod(ir.output_shape)), "output")):
        _check_int(width, f"{where}: io.{what}")
        if size % width:
            unit = ("channels of a pixel (the input frames are in block RAM, written a pixel at a time)"
                    if size != int(np.prod(getattr(ir, f"{of}_shape"))) else "elements of a frame")
            raise MSQError(f"{where}: io.{what}={width} must divide the {size} {unit} (one of {divisors(size)})")
    if set(plan.layers) != {layer.name for layer in ir.layers}:
        missing = sorted({layer.name for layer in ir.layers} - set(plan.layers))
        extra = sorted(set(plan.layers) - {layer.name for layer in ir.layers})
        raise MSQError(f"{where}: layers must match the IR's (missing {missing}, unknown {extra})")
    for layer in ir.layers:
        lp = plan.layers[layer.name]
        _check_int(lp.simd, f"{where}: layer '{layer.name}' simd")
        unit = simd_unit(layer)
        if unit % lp.simd:
            raise MSQError(f"{where}: layer '{layer.name}' simd={lp.simd} must divide {unit} "
                           f"(one of {divisors(unit)})")
        compute = isinstance(layer, ComputeLayer)
        n_sp2, n_fixed, n_high = ((len(layer.sp2_rows), len(layer.fixed_rows), len(layer.high_rows)) if compute
                                  else (0, 0, 0))
        for field in PE_FIELDS:
            pe = getattr(lp, field)
            if not isinstance(pe, int) or isinstance(pe, bool) or pe < 0:
                raise MSQError(f"{where}: layer '{layer.name}' {field}={pe!r} must be a non-negative integer")
        for what, pe, n, rows in (("pe_sp2", lp.pe_sp2, n_sp2, "SP2 rows"),
                                  ("pe_fixed + pe_fixed_lut", lp.pe_fixed + lp.pe_fixed_lut, n_fixed,
                                   "fixed-point rows"),
                                  ("pe_fixed_hi", lp.pe_fixed_hi, n_high, "high-precision rows")):
            if not (pe <= n and (pe > 0) == (n > 0)):
                raise MSQError(f"{where}: layer '{layer.name}' {what} = {pe} must be in [1, {n}] "
                               f"({n} {rows}; 0 only when there are none)")
    return plan


def _check_int(value: Any, what: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise MSQError(f"{what} must be a positive integer, got {value!r}")


def save_plan(plan: Plan, path: str | Path) -> None:
    atomic.write_json(path, plan.as_dict())


def load_plan(ir: IRModel, path: str | Path | None) -> Plan:
    """Read a plan JSON and check it against the IR; ``None`` gives :func:`default_plan`."""
    if path is None:
        return default_plan(ir)
    return plan_from_dict(ir, atomic.read_json(path, "expected a plan written by 'msq plan'"), f"plan {path}")


def plan_from_dict(ir: IRModel, data: Any, where: str) -> Plan:
    """A plan's JSON form (:meth:`Plan.as_dict`, e.g. from a project's metadata) checked against the IR."""
    if not isinstance(data, dict) or data.get("version") != PLAN_VERSION:
        raise MSQError(f"{where}: expected a plan of version {PLAN_VERSION} "
                       f"(got version {data.get('version') if isinstance(data, dict) else None!r}); "
                       "write it with 'msq plan'")
    io, layers = data.get("io"), data.get("layers")
    if not isinstance(io, dict) or set(io) != {"in_width", "out_width"}:
        raise MSQError(f"{where}: field 'io' needs in_width and out_width")
    if not isinstance(layers, dict):
        raise MSQError(f"{where}: field 'layers' must map layer names to their plans")
    parsed = {}
    for name, entry in layers.items():
        if not isinstance(entry, dict) or not {"simd"} <= set(entry) <= {"simd", *PE_FIELDS}:
            raise MSQError(f"{where}: layer '{name}' needs simd (and {', '.join(PE_FIELDS)} "
                           "for dense/conv)")
        parsed[name] = LayerPlan(**entry)
    return check_plan(ir, Plan(parsed, io["in_width"], io["out_width"]), where)
