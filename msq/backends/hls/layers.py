"""C++ for one layer: its configuration struct (types, shapes, engine lanes) and its constant tables.

A configuration struct ``L`` is what the kernel templates of ``hls/msq_kernels.h`` are
instantiated with. Compute layers split their rows between the SP2 engine (codes ``sign, k1,
k2``) and the fixed engine (two's-complement integers), each table padded with zero rows to a
multiple of that engine's lanes; ``row_sp2``/``row_slot`` put the rows back in IR order.
"""
from __future__ import annotations

import re

import numpy as np

from msq import numerics
from msq.ir.plan import LayerPlan
from msq.ir.arith import ActFormat, requant_datapath_bits
from msq.ir.model import SCHEME_SP2, ComputeLayer, Layer, PoolLayer



def struct_name(index: int, layer: Layer) -> str:
    """C identifier of a layer's configuration struct, e.g. ``L0_dense1``."""
    return f"L{index}_" + re.sub(r"[^0-9A-Za-z_]", "_", layer.name)


def act_type(fmt: ActFormat) -> str:
    """Exact-width ``ap_int``/``ap_uint`` of an activation format."""
    return f"ap_{'int' if fmt.signed else 'uint'}<{fmt.bits}>"


def fmt_comment(fmt: ActFormat) -> str:
    return f"{'signed' if fmt.signed else 'unsigned'} {fmt.bits} bits, {fmt.frac} fraction bits"


def lit(value: int) -> str:
    """An integer literal that keeps its value whatever its size (``LL`` beyond 32 bits)."""
    value = int(value)
    return str(value) if -(2**31) < value < 2**31 else f"{value}LL"


def _table(values, render=str, per_line: int = 16, indent: str = "    ") -> str:
    """A brace-enclosed initializer, ``per_line`` items a line."""
    items = [render(v) for v in values]
    lines = [", ".join(items[i:i + per_line]) for i in range(0, len(items), per_line)]
    return "{\n" + ",\n".join(indent + line for line in lines) + "\n}" if items else "{}"


def _padded(rows: np.ndarray, lanes: int) -> tuple[int, int, int]:
    """(lanes, groups, slots) of an engine with ``len(rows)`` rows; at least one (zero) slot."""
    lanes = max(lanes, 1)
    groups = -(-len(rows) // lanes)
    return lanes, groups, max(groups * lanes, 1)


def _datapath_bits(layer: Layer) -> int:
    max_shift = int(np.max(layer.shift))
    return requant_datapath_bits(layer.requant_bits, layer.acc_bits, max_shift)


def _common(index: int, layer: Layer, requant: bool) -> list[str]:
    lines = [f"    static const int LAYER = {index};",
             f"    typedef {act_type(layer.in_fmt)} in_t;  // {fmt_comment(layer.in_fmt)}",
             f"    typedef {act_type(layer.out_fmt)} out_t;  // {fmt_comment(layer.out_fmt)}"]
    if requant:
        lines += [f"    typedef ap_int<{layer.acc_bits}> acc_t;  // accumulator: no in-range input overflows it",
                  f"    typedef ap_int<{_datapath_bits(layer)}> rq_t;  // acc * mult, + bias, rounding term, each exact",
                  f"    static const long long OUT_LO = {lit(layer.out_fmt.lo)};",
                  f"    static const long long OUT_HI = {lit(layer.out_fmt.hi)};"]
    return lines


def _geometry(shape_in, kernel, stride, padding, shape_out) -> list[str]:
    h, w, c = shape_in
    return [f"    static const int H = {h}, W = {w}, C = {c};  // input image (H, W, C)",
            f"    static const int KH = {kernel[0]}, KW = {kernel[1]};",
            f"    static const int SH = {stride[0]}, SW = {stride[1]};",
            f"    static const int PH = {padding[0]}, PW = {padding[1]};  // zero padding",
            f"    static const int HO = {shape_out[0]}, WO = {shape_out[1]};  // output image"]


def compute_struct(index: int, layer: ComputeLayer, plan: LayerPlan) -> tuple[str, str]:
    """(declaration, table definitions) of a dense or conv layer."""
    name = struct_name(index, layer)
    sp2_rows, fix_rows = layer.sp2_rows, layer.fixed_rows
    s_lanes, s_groups, s_slots = _padded(sp2_rows, plan.sp2_lanes)
    f_lanes, f_groups, f_slots = _padded(fix_rows, plan.fixed_lanes)
    m1, m2 = numerics.sp2_split(layer.wbits)
    bias_word = "int" if layer.requant_bits <= 32 else "long long"
    shape = "x".join(map(str, layer.in_shape)) + " -> " + "x".join(map(str, layer.out_shape))
    decl = [f"// Layer {index} '{layer.name}': {layer.kind} {shape}, {layer.wbits}-bit weights; "
            f"SP2 engine {len(sp2_rows)} rows x {s_lanes} lanes, fixed engine {len(fix_rows)} rows x {f_lanes} lanes",
            f"struct {name} {{"]
    decl += _common(index, layer, requant=True)
    if layer.kind == "conv":
        decl += _geometry(layer.in_shape, layer.kernel, layer.stride, layer.padding, layer.out_shape)
    decl += [f"    static const int K = {layer.fan_in};  // fan-in: inputs per output row",
             f"    static const int ROWS = {layer.rows};",
             f"    typedef {bias_word} bias_word_t;  // stored bias, 2^-shift output steps (plain C integer)",
             f"    // SP2 engine: weight = +-(2^(E-k1) + 2^(E-k2)), {layer.wbits}-bit code (sign, k1, k2)",
             f"    static const int SP2_ROWS = {len(sp2_rows)}, SP2_LANES = {s_lanes}, "
             f"SP2_GROUPS = {s_groups}, SP2_SLOTS = {s_slots};",
             f"    static const int SP2_E = {numerics.sp2_exponent(layer.wbits)}, SP2_M1 = {m1}, SP2_M2 = {m2};",
             f"    typedef ap_uint<{layer.wbits}> sp2_t;  // code: sign << (M1 + M2) | k1 << M2 | k2",
             "    typedef unsigned char sp2_word_t;",
             "    static const sp2_word_t sp2_w[SP2_SLOTS][K];",
             "    static const bias_word_t sp2_bias[SP2_SLOTS];",
             "    static const msq::mult_word_t sp2_mult[SP2_SLOTS];",
             "    static const msq::shift_word_t sp2_shift[SP2_SLOTS];",
             f"    // fixed engine: {layer.wbits}-bit two's-complement weights on DSP multipliers",
             f"    static const int FIX_ROWS = {len(fix_rows)}, FIX_LANES = {f_lanes}, "
             f"FIX_GROUPS = {f_groups}, FIX_SLOTS = {f_slots};",
             f"    typedef ap_int<{layer.wbits}> fix_t;",
             "    typedef signed char fix_word_t;",
             "    static const fix_word_t fix_w[FIX_SLOTS][K];",
             "    static const bias_word_t fix_bias[FIX_SLOTS];",
             "    static const msq::mult_word_t fix_mult[FIX_SLOTS];",
             "    static const msq::shift_word_t fix_shift[FIX_SLOTS];",
             "    // output row r = engine row_sp2[r] (1: SP2, 0: fixed), slot row_slot[r]",
             "    static const bool row_sp2[ROWS];",
             "    static const unsigned short row_slot[ROWS];",
             "};"]
    return "\n".join(decl) + "\n", _compute_tables(name, layer, sp2_rows, fix_rows, s_slots, f_slots)


def _pad_rows(a: np.ndarray, slots: int) -> np.ndarray:
    out = np.zeros((slots,) + a.shape[1:], dtype=np.int64)
    out[:len(a)] = a
    return out


def _compute_tables(name: str, layer: ComputeLayer, sp2_rows: np.ndarray, fix_rows: np.ndarray,
                    s_slots: int, f_slots: int) -> str:
    w = layer.w_int.reshape(layer.rows, -1)
    sign, k1, k2 = (c.reshape(layer.rows, -1) for c in layer.sp2_codes())
    m1, m2 = numerics.sp2_split(layer.wbits)
    codes = _pad_rows(((sign << (m1 + m2)) | (k1 << m2) | k2)[sp2_rows], s_slots)
    fixed = _pad_rows(w[fix_rows], f_slots)
    slot = np.zeros(layer.rows, dtype=np.int64)
    slot[sp2_rows] = np.arange(len(sp2_rows))
    slot[fix_rows] = np.arange(len(fix_rows))

    def rows_2d(rows: np.ndarray, render) -> str:
        body = ",\n".join("    " + _table(r, render, per_line=12, indent="    ").replace("\n", "\n    ")
                          for r in rows)
        return "{\n" + body + "\n}"

    parts = []
    for engine, rows, slots in (("sp2", sp2_rows, s_slots), ("fix", fix_rows, f_slots)):
        parts += [f"const {name}::bias_word_t {name}::{engine}_bias[{engine.upper()}_SLOTS] = "
                  + _table(_pad_rows(layer.bias[rows], slots), lit) + ";",
                  f"const msq::mult_word_t {name}::{engine}_mult[{engine.upper()}_SLOTS] = "
                  + _table(_pad_rows(layer.mult[rows], slots), lit) + ";",
                  f"const msq::shift_word_t {name}::{engine}_shift[{engine.upper()}_SLOTS] = "
                  + _table(_pad_rows(layer.shift[rows], slots), lit) + ";"]
    parts += [f"const {name}::sp2_word_t {name}::sp2_w[SP2_SLOTS][K] = " + rows_2d(codes, str) + ";",
              f"const {name}::fix_word_t {name}::fix_w[FIX_SLOTS][K] = " + rows_2d(fixed, lit) + ";",
              f"const bool {name}::row_sp2[ROWS] = "
              + _table(layer.scheme == SCHEME_SP2, lambda v: "true" if v else "false") + ";",
              f"const unsigned short {name}::row_slot[ROWS] = " + _table(slot) + ";"]
    return "\n".join(parts) + "\n"


def pool_struct(index: int, layer: PoolLayer) -> str:
    """Declaration of a max or average pooling layer (no tables)."""
    name = struct_name(index, layer)
    avg = layer.kind == "avgpool"
    decl = [f"// Layer {index} '{layer.name}': {layer.kind} {layer.kernel[0]}x{layer.kernel[1]}, "
            f"stride {layer.stride[0]}x{layer.stride[1]}, no padding",
            f"struct {name} {{"]
    decl += _common(index, layer, requant=avg)
    decl += _geometry(layer.in_shape, layer.kernel, layer.stride, (0, 0), layer.out_shape)
    if avg:
        decl += [f"    static const int MULT = {layer.mult};  // window sum -> output requantization",
                 f"    static const int SHIFT = {layer.shift};"]
    decl.append("};")
    return "\n".join(decl) + "\n"


def kernel_call(index: int, layer: Layer) -> str:
    """The kernel template a layer instantiates, e.g. ``msq::dense<L0_dense1>``."""
    fn = {"dense": "dense", "conv": "conv2d", "maxpool": "maxpool2d", "avgpool": "avgpool2d"}[layer.kind]
    return f"msq::{fn}<{struct_name(index, layer)}>"


def port_type(fmt: ActFormat) -> str:
    """Byte-aligned AXI-Stream TDATA type of a format (value in the low bits)."""
    return f"ap_{'int' if fmt.signed else 'uint'}<{8 * -(-fmt.bits // 8)}>"
