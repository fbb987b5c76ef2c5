"""C++ for one layer: its configuration struct (types, shapes, plan) and, for compute layers, its
process function holding the ROMs (pooling, add and concat layers have no tables).

A configuration struct ``L`` is what the kernel templates of ``hls/msq_kernels.h`` are
instantiated with. A compute layer's weights are one ROM per engine (SP2; fixed point, DSP and
LUT lanes together; the high-precision rows), a word per (fold, step): the codes of the engine's
PE lanes for one SIMD word of input, each code at its real width (``wbits``: SP2 ``sign, k1, k2``;
fixed two's complement; ``high_bits`` for the high rows). Its requantization tables hold, per
(fold, requantization step) and shared requantizer, the row's bias, mult, shift and IR row.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from msq import numerics
from msq.ir.arith import ActFormat, requant_datapath_bits
from msq.ir.model import ComputeLayer, Layer, MergeLayer, PoolLayer
from msq.ir.plan import LayerPlan, all_engine_rows, folds



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


def word_type(n: int, bits: int) -> str:
    """A packed stream word of ``n`` elements of ``bits`` bits."""
    return f"ap_uint<{n * bits}>"


def rom_impl(depth: int, width: int) -> str:
    """BIND_STORAGE impl of a ROM: ``lutram`` when tiny (at most 64 words, one LUT per bit column,
    or at most 4096 bits), else ``bram`` (a block RAM is 18 Kbit, at most 36 bits wide)."""
    return "lutram" if depth <= 64 or depth * width <= 4096 else "bram"


CHUNK_TYPES = {8: "unsigned char", 16: "unsigned short", 32: "unsigned int", 64: "unsigned long long"}


def chunking(width: int) -> tuple[int, int]:
    """(chunk bits, chunks) storing a ``width``-bit ROM word as plain C integers: the fewest bits
    (at most 7 above ``width``), then the fewest chunks."""
    return min(((c, -(-width // c)) for c in CHUNK_TYPES), key=lambda cn: (cn[0] * cn[1], cn[1]))


def pack_words(fields: np.ndarray, field_bits: int) -> tuple[int, int, np.ndarray]:
    """Rows of unsigned fields (depth, n) -> (chunk bits, chunks, (depth, chunks) uint64): field i
    of a row in bits [i*field_bits, (i+1)*field_bits) of its word, chunk 0 the lowest bits."""
    depth, n = fields.shape
    chunk_bits, chunks = chunking(n * field_bits)
    bits = (fields.astype(np.uint64)[..., None] >> np.arange(field_bits, dtype=np.uint64)) & np.uint64(1)
    bits = bits.reshape(depth, n * field_bits)
    bits = np.pad(bits, ((0, 0), (0, chunks * chunk_bits - n * field_bits))).reshape(depth, chunks, chunk_bits)
    return chunk_bits, chunks, (bits << np.arange(chunk_bits, dtype=np.uint64)).sum(axis=2, dtype=np.uint64)


def _datapath_bits(layer: Layer) -> int:
    max_shift = int(np.max(layer.shift))
    return requant_datapath_bits(layer.requant_bits, layer.acc_bits, max_shift)


def _common(index: int, layer: Layer, requant: bool) -> list[str]:
    lines = [f"    static const int LAYER = {index};",
             f"    typedef {act_type(layer.in_fmt)} in_t;  // {fmt_comment(layer.in_fmt)}",
             f"    typedef {act_type(layer.out_fmt)} out_t;  // {fmt_comment(layer.out_fmt)}",
             f"    static const int IN_BITS = {layer.in_fmt.bits}, OUT_BITS = {layer.out_fmt.bits};"]
    if requant:
        lines += [f"    typedef ap_int<{layer.acc_bits}> acc_t;  // accumulator: no in-range input overflows it",
                  f"    typedef ap_int<{_datapath_bits(layer)}> rq_t;  // acc * mult, + bias, rounding term, each exact",
                  f"    static const long long OUT_LO = {lit(layer.out_fmt.lo)};",
                  f"    static const long long OUT_HI = {lit(layer.out_fmt.hi)};"]
    return lines


def line_rows(kernel: tuple[int, int], stride: tuple[int, int]) -> int:
    """Rows of a sliding window's line buffer: a power of two >= KH + SH."""
    return 1 << (kernel[0] + stride[0] - 1).bit_length()


def _geometry(shape_in, kernel, stride, padding, shape_out) -> list[str]:
    h, w, c = shape_in
    lines = line_rows(kernel, stride)
    return [f"    static const int H = {h}, W = {w}, C = {c};  // input image (H, W, C)",
            f"    static const int KH = {kernel[0]}, KW = {kernel[1]};",
            f"    static const int SH = {stride[0]}, SW = {stride[1]};",
            f"    static const int PH = {padding[0]}, PW = {padding[1]};  // zero padding",
            f"    static const int HO = {shape_out[0]}, WO = {shape_out[1]};  // output image",
            f"    static const int LINES = {lines};  // line buffer rows of the sliding window (>= KH + SH)"]


@dataclass(frozen=True)
class Folding:
    """How a compute layer's plan folds it: steps per pixel, folds, shared requantizers."""

    simd: int
    pe_sp2: int
    pe_fix: int      # fixed-point lanes: the first pe_fix_dsp on DSPs, the rest in LUTs
    pe_fix_dsp: int
    pe_hi: int       # high-precision lanes (their own DSP engine)
    sf: int  # SIMD words per output pixel
    nf: int  # folds (passes over the pixel's words)
    nq: int  # requantizers, enough for the lanes of one fold within SF cycles
    qs: int  # requantization steps per fold (<= SF)

    @classmethod
    def of(cls, layer: ComputeLayer, lp: LayerPlan) -> "Folding":
        sf = layer.fan_in // lp.simd
        pe = {e.kind: e.pe for e in all_engine_rows(layer, lp)}  # the PEs each engine builds
        lanes = sum(pe.values())
        nq = -(-lanes // sf)
        return cls(lp.simd, pe["sp2"], pe["fixed"] + pe["fixed_lut"], pe["fixed"], pe["fixed_hi"], sf,
                   folds(layer, lp), nq, -(-lanes // nq))

    def lanes(self, layer: ComputeLayer, lp: LayerPlan) -> list[tuple[np.ndarray, int, int]]:
        """(IR rows of the lane's engine, rows per fold, lane within the engine) of every lane in
        hardware order: the SP2 lanes, the fixed lanes on DSPs, the fixed lanes in LUTs, the
        high-precision lanes."""
        return [(e.rows, e.pe, i) for e in all_engine_rows(layer, lp) for i in range(e.pe)]


def engine_fields(codes: np.ndarray, rows: np.ndarray, pe: int, fo: Folding) -> np.ndarray:
    """(NF*SF, pe*SIMD) weight fields of one engine: word f*SF + s, lane l, element k holds the code
    of row rows[f*pe + l] at input column s*SIMD + k (zero where that row does not exist)."""
    table = np.zeros((fo.nf * pe, codes.shape[1]), dtype=np.int64)
    table[:len(rows)] = codes[rows]
    return table.reshape(fo.nf, pe, fo.sf, fo.simd).transpose(0, 2, 1, 3).reshape(fo.nf * fo.sf, pe * fo.simd)


def requant_rows(layer: ComputeLayer, lp: LayerPlan, fo: Folding) -> np.ndarray:
    """(NF*QS, NQ) IR row requantized by requantizer u at step q of fold f (lane q*NQ + u, lanes
    in :meth:`Folding.lanes` order); ``rows`` where that lane has no row."""
    out = np.full((fo.nf * fo.qs, fo.nq), layer.rows, dtype=np.int64)
    lanes = fo.lanes(layer, lp)
    for f in range(fo.nf):
        for q in range(fo.qs):
            for u in range(fo.nq):
                if q * fo.nq + u < len(lanes):
                    rows, pe, i = lanes[q * fo.nq + u]
                    if f * pe + i < len(rows):
                        out[f * fo.qs + q, u] = rows[f * pe + i]
    return out


def compute_struct(index: int, layer: ComputeLayer, lp: LayerPlan) -> tuple[str, str]:
    """(declaration, process function with its ROMs) of a dense or conv layer."""
    name = struct_name(index, layer)
    fo = Folding.of(layer, lp)
    m1, m2 = numerics.sp2_split(layer.wbits)
    bias_word = "int" if layer.requant_bits <= 32 else "long long"
    shape = "x".join(map(str, layer.in_shape)) + " -> " + "x".join(map(str, layer.out_shape))
    pix = layer.out_shape[0] * layer.out_shape[1] if layer.kind == "conv" else 1
    decl = [f"// Layer {index} '{layer.name}': {layer.kind} {shape}, {layer.wbits}-bit weights; "
            f"SIMD {fo.simd}, SP2 engine {len(layer.sp2_rows)} rows x {fo.pe_sp2} lanes, fixed engine "
            f"{len(layer.fixed_rows)} rows x {fo.pe_fix} lanes ({fo.pe_fix_dsp} on DSPs); "
            + (f"high-precision engine {len(layer.high_rows)} rows x {fo.pe_hi} lanes; " if layer.high_bits else "") +
            f"{fo.nf} folds x {fo.sf} steps per pixel",
            f"struct {name} {{"]
    decl += _common(index, layer, requant=True)
    if layer.kind == "conv":
        decl += _geometry(layer.in_shape, layer.kernel, layer.stride, layer.padding, layer.out_shape)
    w = layer.wbits
    decl += [f"    static const int K = {layer.fan_in}, ROWS = {layer.rows}, PIX = {pix};  "
             "// fan-in, output rows, output pixels",
             f"    static const int SIMD = {fo.simd}, PE_SP2 = {fo.pe_sp2}, PE_FIX = {fo.pe_fix}, "
             f"PE_FIX_DSP = {fo.pe_fix_dsp}, PE_HI = {fo.pe_hi};  // the plan",
             f"    static const int SF = {fo.sf}, NF = {fo.nf};  // steps per fold, folds per pixel",
             f"    static const int NQ = {fo.nq}, QS = {fo.qs}, RQ_DEPTH = {fo.nf * fo.qs};  "
             "// shared requantizers, their steps per fold",
             f"    typedef {word_type(fo.simd, layer.in_fmt.bits)} in_word_t;  // SIMD input elements",
             f"    typedef {word_type(layer.rows, layer.out_fmt.bits)} out_word_t;  // one output pixel, IR row order",
             f"    typedef {bias_word} bias_word_t;  // stored bias, 2^-shift output steps (plain C integer)",
             f"    static const int WBITS = {w}, CODE_BITS = {w};"]
    roms, pragmas = [], []
    sign, k1, k2 = (c.reshape(layer.rows, -1) for c in layer.sp2_codes())
    engines_of = {e.kind: e for e in all_engine_rows(layer, lp)}
    hi = engines_of["fixed_hi"]

    def fields(kind: str, codes: np.ndarray) -> np.ndarray:
        return engine_fields(codes, engines_of[kind].rows, engines_of[kind].pe, fo)

    fixed_codes = layer.w_int.reshape(layer.rows, -1) & ((1 << w) - 1)
    engines = (("sp2", fo.pe_sp2, fields("sp2", (sign << (m1 + m2)) | (k1 << m2) | k2), w),
               ("fix", fo.pe_fix, np.concatenate([fields("fixed", fixed_codes), fields("fixed_lut", fixed_codes)],
                                                 axis=1), w),
               ("hi", fo.pe_hi, fields("fixed_hi", layer.w_int.reshape(layer.rows, -1) & ((1 << hi.wbits) - 1)),
                hi.wbits))
    for eng, pe, table, code_bits in engines:
        if eng == "sp2":
            decl += [f"    // SP2 engine: weight = +-(2^(E-k1) + 2^(E-k2)), {w}-bit code sign << (M1 + M2) | k1 << M2 | k2",
                     f"    static const int SP2_E = {numerics.sp2_exponent(w)}, SP2_M1 = {m1}, SP2_M2 = {m2};"]
        elif eng == "fix":
            decl += [f"    // fixed engine: {w}-bit two's-complement weights; lanes below PE_FIX_DSP multiply on "
                     "DSPs, the others in LUTs",
                     f"    typedef ap_int<{w}> fix_t;"]
        else:
            decl += [f"    // high-precision engine: {hi.wbits}-bit two's-complement weights on DSPs, its own accumulator"
                     + ("" if pe else " (no high rows: a stub the kernel never reads)"),
                     f"    typedef ap_int<{hi.wbits}> hi_t;",
                     f"    typedef ap_int<{hi.acc_bits}> hi_acc_t;  // no in-range input overflows the high rows"]
        more_decl, rom, rom_pragmas = _engine_rom(name, eng, table if pe else None, pe, fo, code_bits)
        decl += more_decl
        roms.append(rom)
        pragmas += rom_pragmas
    decl.append("};")
    rq_rows = requant_rows(layer, lp, fo)
    real = rq_rows < layer.rows

    def per_row(values: np.ndarray) -> np.ndarray:
        return np.where(real, np.append(values, 0)[rq_rows], 0)

    for table, ctype, bits, values in (("rq_bias", f"{name}::bias_word_t", 64 if bias_word == "long long" else 32,
                                        per_row(layer.bias)),
                                       ("rq_mult", "msq::mult_word_t", 16, per_row(layer.mult)),
                                       ("rq_shift", "msq::shift_word_t", 8, per_row(layer.shift)),
                                       ("rq_row", "unsigned short", 16, rq_rows)):
        roms.append(f"    static const {ctype} {table}[{fo.nf * fo.qs}][{fo.nq}] = " + _rows_2d(values, lit) + ";")
        pragmas += [f"#pragma HLS ARRAY_RESHAPE variable={table} complete dim=2",
                    f"#pragma HLS BIND_STORAGE variable={table} type=rom_1p "
                    f"impl={rom_impl(fo.nf * fo.qs, fo.nq * bits)}"]
    process = (f"// The layer's process: the folded matrix-vector unit (msq::mvau) with its ROMs.\n"
               f"void {process_name(index, layer)}(hls::stream<{name}::in_word_t>& in, "
               f"hls::stream<{name}::out_word_t>& out) {{\n#pragma HLS INLINE off\n"
               + "\n".join(roms) + "\n" + "\n".join(pragmas) + "\n"
               f"    msq::mvau<{name}>(in, out, sp2_w, fix_w, hi_w, rq_bias, rq_mult, rq_shift, rq_row);\n}}\n")
    return "\n".join(decl) + "\n", process


def _engine_rom(name: str, eng: str, fields: np.ndarray | None, pe: int, fo: Folding,
                w: int) -> tuple[list[str], str, list[str]]:
    """(struct constants, ROM definition, pragmas) of one engine's weights: a row per (fold, step) of
    ``pe`` lanes, each lane's SIMD codes packed at ``w`` bits into whole chunks. An engine without
    rows gets a one-entry stub that the kernel never reads."""
    lanes = max(pe, 1)
    if fields is None:
        fields = np.zeros((1, fo.simd), dtype=np.int64)
    chunk_bits, chunks, words = pack_words(fields.reshape(-1, fo.simd), w)
    words = words.reshape(len(fields), -1)
    ENG = eng.upper()
    decl = [f"    static const int {ENG}_LANE_BITS = {fo.simd * w};  // one lane's codes for one step",
            f"    static const int {ENG}_DEPTH = {len(words)}, {ENG}_ROW = {words.shape[1]}, {ENG}_CHUNKS = {chunks}, "
            f"{ENG}_CHUNK_BITS = {chunk_bits};  // ROM: a row per (fold, step), CHUNKS per lane",
            f"    typedef {CHUNK_TYPES[chunk_bits]} {eng}_chunk_t;"]
    render = (lambda v: f"{v}ULL") if chunk_bits == 64 else (lambda v: f"{v}U")
    rom = f"    static const {name}::{eng}_chunk_t {eng}_w[{len(words)}][{words.shape[1]}] = " + _rows_2d(words, render) + ";"
    pragmas = [f"#pragma HLS ARRAY_RESHAPE variable={eng}_w complete dim=2",
               f"#pragma HLS BIND_STORAGE variable={eng}_w type=rom_1p "
               f"impl={rom_impl(len(words), lanes * chunks * chunk_bits)}"]
    return decl, rom, pragmas


def _rows_2d(rows: np.ndarray, render, per_line: int = 12) -> str:
    """A 2-D brace initializer, one row (wrapped every ``per_line`` items) per ``{...}``."""
    def row(values: list) -> str:
        items = [render(v) for v in values]
        lines = [", ".join(items[i:i + per_line]) for i in range(0, len(items), per_line)]
        return "        {" + ",\n         ".join(lines) + "}"
    return "{\n" + ",\n".join(row(r) for r in rows.tolist()) + "\n    }"


def process_name(index: int, layer: ComputeLayer) -> str:
    """The generated process function of a compute layer, e.g. ``L0_dense1_mvau``."""
    return struct_name(index, layer) + "_mvau"


def pool_struct(index: int, layer: PoolLayer, lp: LayerPlan) -> str:
    """Declaration of a max or average pooling layer (no tables)."""
    name = struct_name(index, layer)
    avg = layer.kind == "avgpool"
    decl = [f"// Layer {index} '{layer.name}': {layer.kind} {layer.kernel[0]}x{layer.kernel[1]}, "
            f"stride {layer.stride[0]}x{layer.stride[1]}, no padding; SIMD {lp.simd}",
            f"struct {name} {{"]
    decl += _common(index, layer, requant=avg)
    decl += _geometry(layer.in_shape, layer.kernel, layer.stride, (0, 0), layer.out_shape)
    decl += [f"    static const int SIMD = {lp.simd};  // channels per cycle",
             f"    typedef {word_type(lp.simd, layer.in_fmt.bits)} in_word_t;",
             f"    typedef {word_type(lp.simd, layer.out_fmt.bits)} out_word_t;"]
    if avg:
        decl += [f"    static const int MULT = {layer.mult};  // window sum -> output requantization",
                 f"    static const int SHIFT = {layer.shift};"]
    else:
        decl.append("    typedef in_t acc_t;  // the running maximum")
    decl.append("};")
    return "\n".join(decl) + "\n"


def merge_struct(index: int, layer: MergeLayer, lp: LayerPlan) -> str:
    """Declaration of an add or concat layer (no tables): ``in_t`` is input 0's element, ``in1_t``
    input 1's; both inputs and the output stream ``SIMD``-element words."""
    name = struct_name(index, layer)
    fmt1 = layer.in_fmts[1]
    c0, c1 = (int(shape[-1]) for shape in layer.in_shapes)
    decl = [f"// Layer {index} '{layer.name}': {layer.kind} of '{layer.inputs[0]}' and '{layer.inputs[1]}' -> "
            + "x".join(map(str, layer.out_shape)) + f"; SIMD {lp.simd}",
            f"struct {name} {{"]
    decl += _common(index, layer, requant=True)
    decl += [f"    typedef {act_type(fmt1)} in1_t;  // input 1: {fmt_comment(fmt1)}",
             f"    static const int IN1_BITS = {fmt1.bits};",
             f"    static const int PIX = {int(np.prod(layer.out_shape[:-1]))};  // pixels (1 for vectors)",
             f"    static const int C0 = {c0}, C1 = {c1};  // channels of input 0 and input 1",
             f"    static const int ALIGN0 = {layer.align[0]}, ALIGN1 = {layer.align[1]};  "
             "// left shifts to the common fraction",
             f"    static const int SIMD = {lp.simd};  // channels per cycle",
             f"    typedef {word_type(lp.simd, layer.in_fmts[0].bits)} in_word_t;  // input 0",
             f"    typedef {word_type(lp.simd, fmt1.bits)} in1_word_t;  // input 1",
             f"    typedef {word_type(lp.simd, layer.out_fmt.bits)} out_word_t;",
             f"    static const int MULT = {layer.mult};  // aligned value -> output requantization, no bias",
             f"    static const int SHIFT = {layer.shift};",
             "};"]
    return "\n".join(decl) + "\n"


def in_word(layer: Layer, slot: int) -> str:
    """The member naming a layer's input word type of input ``slot`` (a merge has two)."""
    return "in1_word_t" if slot else "in_word_t"


def out_elems(layer: Layer, lp: LayerPlan) -> int:
    """Elements per word of a layer's output stream: a whole pixel (compute), SIMD channels (pool,
    add, concat)."""
    return layer.rows if isinstance(layer, ComputeLayer) else lp.simd


def port_type(fmt: ActFormat, width: int) -> str:
    """AXI-Stream TDATA of ``width`` packed elements, zero-padded to whole bytes."""
    return f"ap_uint<{8 * -(-(width * fmt.bits) // 8)}>"
