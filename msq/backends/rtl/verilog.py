"""Verilog text of one design: the folded layer pipeline (docs/rtl.md).

Every layer owns the frame buffers of its input; the stage before writes them through ports whose
(beat, lane) -> element map is fixed at generation, so every element has one source and no
reordering logic exists. A dense/conv layer replays its input over its folds into an SP2 engine
(shift-add adder trees), a fixed-point engine on DSPs and one in LUTs (radix-4 Booth shift-adds),
and a DSP engine of its high-precision rows, each followed by a shared requantization stage;
pooling layers combine ``simd`` channels per cycle. Weights and requantization constants are
ROMs whose contents live in their own wrapper modules.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from string import Template

import numpy as np

from msq import numerics
from msq.assets import RTL_SIM_DIR
from msq.boards import FAMILIES
from msq.backends.rtl import cycles
from msq.ir.arith import MULT_BITS, SHIFT_BITS, ActFormat, requant_datapath_bits
from msq.ir.model import INPUT, ComputeLayer, IRModel, Layer, MergeLayer, PoolLayer
from msq.ir.plan import DSP_ENGINES, EngineRows, LayerPlan, Plan, block_frame, engine_rows, folds

KERNELS = RTL_SIM_DIR / "kernels"
TEMPLATES = RTL_SIM_DIR / "templates"
KERNEL_FILES = ("msq_frame_control.v", "msq_rom.v", "msq_tree.v", "msq_step_control.v", "msq_shift_add_engine.v",
                "msq_fixed_engine.v", "msq_requant_stage.v")
ENGINE_KERNEL = {"sp2": "msq_shift_add_engine.v", "fixed": "msq_fixed_engine.v", "fixed_lut": "msq_shift_add_engine.v",
                 "fixed_hi": "msq_fixed_engine.v"}
BLOCK_ROM_BITS = 16384  # ROMs this large go to block RAM, smaller ones to LUTs
TREE_REGISTER_LEVELS = 1  # adder trees are registered every this many levels (1: after every adder)
X_COPY_ROWS = 8  # rows of a shift-add engine served by one copy of the input word register (fan-out)
READ_COPY_ELEMS = 4  # elements of a register frame buffer's read word selected by one copy of the word address
FIXED_SUM = 1          # fixed engine: 1 = chains through the DSP post-adders, 0 = LUT adder tree
FIXED_CHAIN_COLUMNS = 8  # longest DSP chain (FIXED_SUM 1): its operand delays grow as its length squared
DSP_A_BITS, DSP_P_BITS = 25, 48  # DSP48E1 A operand and accumulator widths (packing limits)
DEFAULT_FAMILY = "xc7"  # of msq.boards.FAMILIES: where the generated Verilog's pipeline registers sit


def product_register(family: str) -> int:
    """msq_fixed_engine's MREG: register each product before the chain add where the multipliers
    have no post-adder (ECP5), after the chain where they do (AMD DSP48)."""
    if family not in FAMILIES:
        raise ValueError(f"unknown FPGA family {family!r}: expected one of {', '.join(FAMILIES)}")
    return int(family == "ecp5")


def kernels_used(ir: IRModel, plan: Plan) -> list[str]:
    """The kernel files a design instantiates."""
    compute = ir.compute_layers()
    used = {ENGINE_KERNEL[e.kind] for layer in compute for e in engine_rows(layer, plan[layer.name])}
    if compute:
        used |= {"msq_rom.v", "msq_tree.v", "msq_step_control.v", "msq_requant_stage.v"}
    if ir.layers:
        used.add("msq_frame_control.v")
    return [name for name in KERNEL_FILES if name in used]


def _template(name: str) -> Template:
    return Template((TEMPLATES / name).read_text())


def _bits(n: int) -> int:
    """Bits of an unsigned counter holding 0..n (at least 1)."""
    return max(1, int(n).bit_length())


def _slit(value: int, width: int) -> str:
    """A sized signed Verilog literal."""
    return f"{width}'sd{value}" if value >= 0 else f"-{width}'sd{-value}"


def _ulit(value: int, width: int) -> str:
    return f"{width}'d{value}"


def _rom_init(words: list[int], width: int) -> str:
    """A ROM's contents as a concatenation of sized hex literals, one word per line, word 0 last (in
    the low bits): one literal of the whole ROM made lines of 100k characters, more than Yosys's
    Verilog lexer takes."""
    mask = (1 << width) - 1
    return "{" + ",\n                    ".join(f"{width}'h{int(w) & mask:x}" for w in reversed(words)) + "}"


def tdata_width(elems: int, fmt: ActFormat) -> int:
    """AXI-Stream TDATA width of a beat of ``elems`` elements: whole bytes."""
    return 8 * math.ceil(elems * fmt.bits / 8)


def layer_module(name: str) -> str:
    return f"msq_layer_{name}"


def _fmt(fmt: ActFormat) -> str:
    return f"{'s' if fmt.signed else 'u'}{fmt.bits}.{fmt.frac}"


# --- who writes which element of a frame ---------------------------------------------------------

@dataclass(frozen=True)
class Port:
    """One writer port into a frame buffer: ``lanes`` elements per beat, ``beats`` per frame, and
    the element each (beat, lane) carries (-1: none)."""

    name: str
    lanes: int
    beats: int
    element: np.ndarray  # (beats, lanes) element index or -1
    delay: int = 0       # cycles a block RAM buffer holds its beats: none may start a pixel before all end the last


def pixels(layer: Layer) -> int:
    """Output pixels of a layer's frame (1 for a vector)."""
    return 1 if len(layer.out_shape) == 1 else int(layer.out_shape[0] * layer.out_shape[1])


def output_ports(layer: Layer, lp: LayerPlan) -> list[Port]:
    """The ports through which ``layer`` writes its output frame (channels-last element order)."""
    n_pix, rows = pixels(layer), int(layer.out_shape[-1])
    ports = []
    if isinstance(layer, ComputeLayer):
        nf, engines = folds(layer, lp), engine_rows(layer, lp)
        latencies = [engine_latency(layer, e, lp) for e in engines]
        # a port whose beats lead the slowest port's by a fold's steps or more would write its
        # first beat of a pixel before the slowest port's last beat of the pixel before
        lead = [max(0, max(latencies) - lat - steps_per_fold(layer, lp) + 1) for lat in latencies]
        for e, delay in zip(engines, lead):
            element = -np.ones((n_pix * nf, e.pe), dtype=np.int64)
            for p in range(n_pix):
                for k, row in enumerate(e.rows):
                    element[p * nf + k // e.pe, k % e.pe] = p * rows + int(row)
            ports.append(Port(e.kind, e.pe, n_pix * nf, element, delay))
    else:
        groups = rows // lp.simd
        element = (np.arange(n_pix)[:, None, None] * rows + np.arange(groups)[None, :, None] * lp.simd
                   + np.arange(lp.simd)[None, None, :]).reshape(n_pix * groups, lp.simd)
        ports.append(Port(layer.kind, lp.simd, n_pix * groups, element))
    return ports


def input_port(ir: IRModel, plan: Plan) -> Port:
    """The top-level input stream as a writer of the first layer's buffers."""
    elems = int(np.prod(ir.input_shape))
    return Port("x_in", plan.in_width, elems // plan.in_width,
                np.arange(elems).reshape(elems // plan.in_width, plan.in_width))


def group_stride(groups: int, block: bool) -> int:
    """Word addresses per pixel in a reader's frame buffer of ``groups`` words per pixel: a power
    of two in block RAM, whose address is {pixel, group}; ``groups`` in registers."""
    return 1 << (groups - 1).bit_length() if block else groups


@dataclass(frozen=True)
class ReadLayout:
    """How a reader addresses its frame buffer of words of ``word`` elements."""

    block: bool   # in block RAM (``msq.ir.plan.block_frame``), else registers
    stride: int   # word addresses per pixel (``group_stride``)
    raw: int      # bits of a word address


def block_ram_words(shape: tuple[int, ...], nbuf: int) -> int:
    """Words of a block RAM frame buffer: ``nbuf`` frames of a pixel per word, each frame at a
    power-of-two base (the write address is {buffer, pixel})."""
    return nbuf << _bits(int(np.prod(shape[:-1])) - 1)


def read_layout(shape: tuple[int, ...], bits: int, word: int) -> ReadLayout:
    """The read side of a frame buffer of ``shape`` (HWC or a vector) and ``bits`` per element."""
    block = block_frame(tuple(shape), bits)
    stride = group_stride(int(shape[-1]) // word, block)
    return ReadLayout(block, stride, _bits(int(np.prod(shape[:-1])) * stride - 1))


def read_copies(word: int) -> int:
    """Copies of a reader's word address into a register frame buffer: the fewest that split the
    ``word`` into equal groups of at most ``READ_COPY_ELEMS`` elements."""
    return next(n for n in range(1, word + 1) if word % n == 0 and word // n <= READ_COPY_ELEMS)


def frame_buffer(module: str, consumer: str, ports: list[Port], shape: tuple[int, ...], xw: int, word: int,
                 nbuf: int, header: str, block: bool = False, copies: int = 1) -> str:
    """The ``nbuf`` frame buffers (frames of ``shape``) of one reader, written by ``ports``: in
    registers, read combinationally through ``copies`` copies of the word address (each selecting
    an equal share of the word), or in block RAM (``block``; one address), read through its register."""
    if block:
        return _block_frame_buffer(module, consumer, ports, shape, xw, word, nbuf, header)
    elems = int(np.prod(shape))
    bi = _bits(nbuf - 1)
    offsets = np.cumsum([0] + [p.lanes for p in ports])
    params, regs, done, reset, advance, writes = [], [], [], [], [], []
    for i, port in enumerate(ports):
        pb = _bits(port.beats - 1)
        params.append(f"    localparam integer PB{i} = {pb};  // port {i} ({port.name}): {port.lanes} lanes, "
                      f"{port.beats} beats per frame\n    localparam [PB{i}-1:0] LAST{i} = {_ulit(port.beats - 1, pb)};")
        regs.append(f"    reg [PB{i}-1:0] beat{i};\n    reg [BI-1:0]   ph{i};   // buffer port {i} writes")
        done.append(f"            if (wr[{i}] && beat{i} == LAST{i} && ph{i} == b[BI-1:0]) done_now[b*NP + {i}] = 1'b1;")
        reset.append(f"            beat{i} <= {{PB{i}{{1'b0}}}}; ph{i} <= {{BI{{1'b0}}}};")
        advance.append(f"            if (wr[{i}]) begin\n                if (beat{i} == LAST{i}) begin\n"
                       f"                    beat{i} <= {{PB{i}{{1'b0}}}}; ph{i} <= next(ph{i});\n"
                       f"                end else beat{i} <= beat{i} + 1'b1;\n            end")
        cases = []
        for b in range(port.beats):
            stores = [f"frame[{int(e)}*XW +: XW] <= lanes[{int(offsets[i]) + lane}*XW +: XW];"
                      for lane, e in enumerate(port.element[b]) if e >= 0]
            if stores:
                cases.append(f"                    {_ulit(b, pb)}: begin " + " ".join(stores) + " end")
        writes.append(f"                if (wr[{i}] && ph{i} == g) case (beat{i})\n" + "\n".join(cases)
                      + "\n                    default: ;\n                endcase")
    doc = "; ".join(f"{p.name} ({p.lanes} lanes x {p.beats} beats)" for p in ports)
    return _template("frame_buffer.v.tmpl").substitute(
        header=header, module=module, consumer=consumer, nbuf=nbuf, bi=bi, np=len(ports),
        lanes=int(offsets[-1]), xw=xw, elems=elems, word=word, raw=_bits(elems // word - 1), nra=copies, ports_doc=doc,
        port_params="\n".join(params), port_regs="\n".join(regs), done_now="\n".join(done),
        port_reset="\n".join(reset), port_advance="\n".join(advance), writes="\n".join(writes))


def _pixel_map(port: Port, pixels: int, channels: int) -> np.ndarray:
    """A port's (beat within a pixel, lane) -> channel map (-1: none), the same in every pixel; a
    ValueError if the port's beats do not write pixel by pixel."""
    per = port.beats // pixels
    slots = port.element[:per] % channels if per else port.element[:0]
    slots = np.where(port.element[:per] >= 0, slots, -1)
    expect = np.where(slots >= 0, slots[None] + channels * np.arange(pixels)[:, None, None], -1)
    if per * pixels != port.beats or not np.array_equal(expect.reshape(port.element.shape), port.element):
        raise ValueError(f"port {port.name} does not write a frame pixel by pixel: no block RAM buffer")
    return slots


def _block_frame_buffer(module: str, consumer: str, ports: list[Port], shape: tuple[int, ...], xw: int, word: int,
                        nbuf: int, header: str) -> str:
    """Block RAM frame buffers (frame_buffer_block.v.tmpl): a pixel assembler, one pixel per RAM word."""
    h, w, c = shape
    groups = c // word
    gs = (group_stride(groups, True) - 1).bit_length()
    pxb = _bits(h * w - 1)
    offsets = np.cumsum([0] + [p.lanes for p in ports])
    params, align, assemble, reset, advance = [], [], [], [], []
    for i, port in enumerate(ports):
        slots = _pixel_map(port, h * w, c)
        per = len(slots)
        pb = _bits(per - 1)
        lw = port.lanes * xw
        params.append(f"    localparam integer PB{i} = {pb};  // port {i} ({port.name}): {port.lanes} lanes, {per} beats "
                      f"per pixel, {port.delay} cycles of alignment\n"
                      f"    localparam [PB{i}-1:0] LAST{i} = {_ulit(per - 1, pb)};")
        lanes = f"lanes[{int(offsets[i]) * xw} +: {lw}]"
        if port.delay:
            d = port.delay
            shift = f"{{wr{i}_d[{d - 2}:0], wr[{i}]}}" if d > 1 else f"wr[{i}]"
            align += [f"    reg  [{d}-1:0]  wr{i}_d;   // port {i}, {d} cycles behind",
                      f"    reg  [{lw}-1:0] lanes{i}_d [0:{d}-1];",
                      f"    integer k{i};",
                      "    always @(posedge clk) begin",
                      f"        wr{i}_d <= rst_n ? {shift} : {{{d}{{1'b0}}}};",
                      f"        lanes{i}_d[0] <= {lanes};",
                      f"        for (k{i} = 1; k{i} < {d}; k{i} = k{i} + 1) lanes{i}_d[k{i}] <= lanes{i}_d[k{i} - 1];",
                      "    end",
                      f"    wire          wr{i}    = wr{i}_d[{d - 1}];",
                      f"    wire [{lw}-1:0] lanes{i} = lanes{i}_d[{d - 1}];"]
        else:
            align += [f"    wire          wr{i}    = wr[{i}];", f"    wire [{lw}-1:0] lanes{i} = {lanes};"]
        align.append(f"    reg  [PB{i}-1:0] beat{i};  // port {i}'s beat within the pixel")
        cases = []
        for b in range(per):
            stores = [f"pix_next[{int(ch)}*XW +: XW] = lanes{i}[{lane}*XW +: XW];"
                      for lane, ch in enumerate(slots[b]) if ch >= 0]
            if stores:
                cases.append(f"                {_ulit(b, pb)}: begin " + " ".join(stores) + " end")
        assemble.append(f"        if (wr{i}) begin\n            case (beat{i})\n" + "\n".join(cases)
                        + f"\n                default: ;\n            endcase\n"
                        f"            if (beat{i} == LAST{i}) done_now[{i}] = 1'b1;\n        end")
        reset.append(f"            beat{i} <= {{PB{i}{{1'b0}}}};")
        advance.append(f"            if (wr{i}) beat{i} <= (beat{i} == LAST{i}) ? {{PB{i}{{1'b0}}}} : beat{i} + 1'b1;")
    if gs:
        read_group = "\n".join([
            "    reg [GS-1:0] gq;  // the group of the word in q",
            "    always @(posedge clk) gq <= rd_addr[GS-1:0];",
            "    wire [WORD*XW-1:0] group_words [0:(1 << GS)-1];",
            "    genvar v;",
            "    generate",
            "        for (v = 0; v < (1 << GS); v = v + 1) begin : g_group",
            "            if (v < C / WORD) begin : g_word",
            "                assign group_words[v] = q[v*WORD*XW +: WORD*XW];",
            "            end else begin : g_pad  // an address slot past the pixel's groups: never read",
            "                assign group_words[v] = {(WORD*XW){1'b0}};",
            "            end",
            "        end",
            "    endgenerate",
            "    assign rd_word = group_words[gq];"])
    else:
        read_group = "    assign rd_word = q;  // one group per pixel"
    doc = "; ".join(f"{p.name} ({p.lanes} lanes x {p.beats} beats)" for p in ports)
    return _template("frame_buffer_block.v.tmpl").substitute(
        header=header, module=module, consumer=consumer, nbuf=nbuf, pixels=h * w, channels=c, xw=xw,
        ports_doc=doc, word=word, gstride=1 << gs, bi=_bits(nbuf - 1), np=len(ports), lanes=int(offsets[-1]),
        raw=pxb + gs, gs=gs, px_last=_ulit(h * w - 1, pxb), port_params="\n".join(params),
        port_align="\n".join(align), assemble="\n".join(assemble), port_reset="\n".join(reset),
        port_advance="\n".join(advance), read_group=read_group)


def _read_stage(reg: str, word: str, width: str, block: bool) -> str:
    """The first register of a reader's pipeline, ``reg``, holding the word read a cycle before:
    in a block RAM buffer the RAM's read register is that register (``word`` is already registered)."""
    if block:
        return f"    wire [{width}-1:0] {reg} = {word};  // registered in the block RAM buffer"
    return f"    reg  [{width}-1:0] {reg};\n    always @(posedge clk) {reg} <= {word};"


# --- compute layers -------------------------------------------------------------------------------

def _geometry(layer: Layer) -> tuple[tuple[int, int, int], tuple[int, int], tuple[int, int], tuple[int, int],
                                     tuple[int, int]]:
    """(in HWC, kernel, stride, padding, out HW): dense layers are 1x1 convs on a 1x1xK image."""
    if layer.kind == "dense":
        return (1, 1, layer.fan_in), (1, 1), (1, 1), (0, 0), (1, 1)
    padding = tuple(layer.padding) if isinstance(layer, ComputeLayer) else (0, 0)
    return tuple(layer.in_shape), tuple(layer.kernel), tuple(layer.stride), padding, tuple(layer.out_shape[:2])


def _saw(in_shape: tuple[int, int, int], pad: tuple[int, int], groups: int) -> int:
    """Signed width for word addresses and coordinates of a layer."""
    h, w, _ = in_shape
    bound = (h + 2 * pad[0] + 2) * (w + 2 * pad[1] + 2) * groups + 2
    return bound.bit_length() + 1


def sp2_code_fields(wbits: int) -> tuple[int, int]:
    """(k1 bits, k2 bits) of an SP2 code in the engine's weight word (k2 at least one bit)."""
    m1, m2 = numerics.sp2_split(wbits)
    return m1, max(m2, 1)


def requant_units(pe: int, steps: int) -> int:
    """Requantizers an engine needs to finish a fold's ``pe`` rows within one fold's ``steps``."""
    return math.ceil(pe / steps)


def fixed_packing(e: EngineRows) -> bool:
    """Two rows per DSP multiply in a DSP engine when the pair and its sums fit a DSP48E1:
    ``acc_bits + wbits`` bits into its A operand, ``2 * acc_bits + 1`` into P (so 8-bit
    high rows pack only while their accumulator has at most 17 bits)."""
    return (e.kind in DSP_ENGINES and e.pe % 2 == 0 and e.acc_bits + e.wbits <= DSP_A_BITS
            and 2 * e.acc_bits + 1 <= DSP_P_BITS)


def chain_segment(simd: int) -> int:
    """msq_fixed_engine's SEG: columns per DSP chain, the largest divisor of ``simd`` up to
    FIXED_CHAIN_COLUMNS (the chains' sums meet in a LUT adder tree)."""
    return max(d for d in range(1, min(simd, FIXED_CHAIN_COLUMNS) + 1) if simd % d == 0)


def engine_latency(layer: ComputeLayer, e: EngineRows, lp: LayerPlan) -> int:
    """Cycles from a fold's last step to engine ``e``'s output beat leaving its requantization stage."""
    kind = e.kind
    levels = math.ceil(math.log2(lp.simd)) if lp.simd > 1 else 0
    if kind not in DSP_ENGINES:  # shift-add engines
        sum_lat = levels // TREE_REGISTER_LEVELS
    elif FIXED_SUM:
        seg = chain_segment(lp.simd)  # the chains, their extra register (MREG), their sums' tree
        sum_lat = seg + 1 + math.ceil(math.log2(lp.simd // seg)) // TREE_REGISTER_LEVELS
    else:
        sum_lat = 1 + levels // TREE_REGISTER_LEVELS
    operands = 3 if kind not in DSP_ENGINES else 2  # the shift-add engines register the weight word once more
    lat = operands + sum_lat + 1  # issue -> accumulators hold the fold (see the engines' timing notes)
    steps = math.ceil(e.pe / requant_units(e.pe, steps_per_fold(layer, lp)))
    return lat + steps + 5  # requantization: ROM read (2), select, multiply, add, shift, clamp -> beat


def steps_per_fold(layer: Layer, lp: LayerPlan) -> int:
    (_, _, c), (kh, kw), _, _, _ = _geometry(layer)
    return kh * kw * c // lp.simd


def _rom_module(module: str, doc: str, width: int, words: list[int], header: str) -> str:
    depth = len(words)
    aw = _bits(depth - 1)
    block = int(width * depth >= BLOCK_ROM_BITS)
    return (f"// {header}\n// {doc}\n// {depth} words of {width} bits (INIT lists the last word first); "
            f"{'block RAM' if block else 'LUTs'}.\n"
            f"module {module} (\n    input  wire clk,\n    input  wire [{aw}-1:0] addr,\n"
            f"    output wire [{width}-1:0] data\n);\n"
            f"    msq_rom #(.W({width}), .DEPTH({depth}), .AW({aw}), .BLOCK({block}),\n"
            f"              .INIT({_rom_init(words, width)})) rom (.clk(clk), .addr(addr), .data(data));\nendmodule\n")


def code_bits(kind: str, wbits: int) -> int:
    """Bits of one weight code in an engine's ROM word: SP2 {sign, k1, k2}, a fixed-point weight
    (``wbits`` the engine's: ``high_bits`` for the high rows), or its radix-4 Booth digits (3 bits
    each) for the LUT engine."""
    return {"sp2": 1 + sum(sp2_code_fields(wbits)), "fixed": wbits, "fixed_lut": 3 * numerics.booth_digits(wbits),
            "fixed_hi": wbits}[kind]


def booth_code(w_int: np.ndarray, wbits: int) -> np.ndarray:
    """The LUT fixed-point engine's weight codes: per Booth digit 3 bits {neg, nz, dbl}, digit j at
    bit 3j (msq_shift_add_engine, CODE 1)."""
    digits = numerics.booth_encode_array(w_int, wbits)
    fields = ((digits < 0) << 2) | ((digits != 0) << 1) | (np.abs(digits) == 2)
    return (fields << (3 * np.arange(digits.shape[-1]))).sum(axis=-1)


def _weight_words(layer: ComputeLayer, e: EngineRows, lp: LayerPlan) -> tuple[list[int], int]:
    """Weight ROM words of one engine (word = fold * SF + step; PE*SIMD codes, row-major) and width."""
    nf, sf, simd, rows, pe = folds(layer, lp), steps_per_fold(layer, lp), lp.simd, e.rows, e.pe
    flat = layer.w_int.reshape(layer.rows, -1)
    cw = code_bits(e.kind, e.wbits)
    if e.kind == "sp2":
        k1w, k2w = sp2_code_fields(layer.wbits)
        sign, k1, k2 = (a.reshape(layer.rows, -1) for a in layer.sp2_codes())
        code = (sign << (k1w + k2w)) | (k1 << k2w) | k2
    elif e.kind == "fixed_lut":
        code = np.zeros_like(flat)
        code[rows] = booth_code(flat[rows], layer.wbits)
    else:
        code = flat
    # codes[f, st, p, s]: row f * pe + p of the engine (0 past its last row), columns of step st
    padded = np.concatenate([np.asarray(rows, dtype=np.int64), -np.ones(nf * pe - len(rows), dtype=np.int64)])
    codes = np.where(padded[:, None] >= 0, code[np.maximum(padded, 0)], 0).reshape(nf, pe, sf, simd).transpose(0, 2, 1, 3)
    if fixed_packing(e):
        codes = packed_weight_codes(codes)
    codes = codes & ((1 << cw) - 1)
    shifts = [int(b) for b in (np.arange(pe * simd) * cw)]
    words = [sum(int(c) << b for c, b in zip(codes[f, st].reshape(-1), shifts)) for f in range(nf) for st in range(sf)]
    return words, pe * simd * cw


def packed_weight_codes(codes: np.ndarray) -> np.ndarray:
    """The weights of a packed DSP engine as its ROM holds them (``codes[..., p, s]``, rows 2q and
    2q+1 sharing a multiply): the high row's weight less the low row's sign, ``w_hi - [w_lo < 0]``
    (modulo 2^wbits), so that the multiplier operand ``w_hi * 2^ACCW + w_lo`` is the bit
    concatenation {w_hi - [w_lo < 0], sign copies of w_lo, w_lo}: no pre-adder in front of the
    multiplier (on ECP5 its LUTs were on the critical path)."""
    out = codes.copy()
    out[..., 1::2, :] = codes[..., 1::2, :] - (codes[..., 0::2, :] < 0)
    return out


def _requant_words(layer: ComputeLayer, rows: np.ndarray, pe: int, units: int, nf: int) -> tuple[list[int], int]:
    """Constant ROM words of one engine's requantizers: per (fold, step) ``units`` fields
    {shift, bias + 2^(shift-1), mult}; width."""
    rqw = layer.requant_bits
    qw = MULT_BITS + rqw + SHIFT_BITS
    steps = math.ceil(pe / units)
    words = []
    for f in range(nf):
        for t in range(steps):
            word = 0
            for u in range(units):
                k = t * units + u
                if k >= pe or f * pe + k >= len(rows):
                    continue
                r = int(rows[f * pe + k])
                shift = int(layer.shift[r])
                bias_r = int(layer.bias[r]) + ((1 << (shift - 1)) if shift else 0)
                field = ((shift << (MULT_BITS + rqw)) | ((bias_r & ((1 << rqw) - 1)) << MULT_BITS)
                         | (int(layer.mult[r]) & ((1 << MULT_BITS) - 1)))
                word |= field << (u * qw)
            words.append(word)
    return words, units * qw


def compute_layer(layer: ComputeLayer, lp: LayerPlan, in_ports: list[Port], nbuf: int, header: str,
                  family: str = DEFAULT_FAMILY) -> dict[str, str]:
    """{module name: Verilog} of a dense or conv layer: the layer, its buffers and its ROMs."""
    name, module = layer.name, layer_module(layer.name)
    (h, w, c), (kh, kw), (sh, sw), (ph, pw), (ho, wo) = _geometry(layer)
    simd, nf, sf = lp.simd, folds(layer, lp), steps_per_fold(layer, lp)
    groups = c // simd
    iw, xw = layer.in_fmt.bits, layer.in_fmt.bits + 1
    read = read_layout(tuple(layer.in_shape), iw, simd)
    gstride = read.stride
    saw = _saw((h, w, c), (ph, pw), gstride)
    buffer_module = f"msq_fbuf_{name}"
    copies = read_copies(simd) if not read.block and int(np.prod(layer.in_shape)) > simd else 1  # a one-word frame: no address
    files = {buffer_module: frame_buffer(buffer_module, name, in_ports, tuple(layer.in_shape), iw, simd, nbuf, header,
                                         read.block, copies)}
    fill = "rd_word[l*IW+IW-1]" if layer.in_fmt.signed else "1'b0"
    x_extend = ("    genvar l;\n    generate\n        for (l = 0; l < SIMD; l = l + 1) begin : g_x\n"
                f"            assign x_ext[l*XW +: XW] = {{{fill}, rd_word[l*IW +: IW]}};\n"
                "        end\n    endgenerate")
    ow = layer.out_fmt.bits
    lo, hi = layer.out_fmt.lo, layer.out_fmt.hi
    blocks, docs, lane_bits = [], [], 0
    for port, e in enumerate(engine_rows(layer, lp)):
        kind, rows, pe, accw = e.kind, e.rows, e.pe, f"ACCW_{e.kind}"
        units = requant_units(pe, sf)
        steps = math.ceil(pe / units)
        wwords, wwidth = _weight_words(layer, e, lp)
        qwords, qwidth = _requant_words(layer, rows, pe, units, nf)
        wmod, qmod = f"msq_w_{name}_{kind}", f"msq_q_{name}_{kind}"
        files[wmod] = _rom_module(wmod, f"Weights of layer '{name}', {kind} engine: word = fold * {sf} + step, "
                                  f"{pe} rows x {simd} codes (row-major).", wwidth, wwords, header)
        files[qmod] = _rom_module(qmod, f"Requantization constants of layer '{name}', {kind} engine: word = fold * "
                                  f"{steps} + step, {units} fields {{shift, bias + 2^(shift-1), mult}}.",
                                  qwidth, qwords, header)
        if kind == "sp2":
            k1w, k2w = sp2_code_fields(layer.wbits)
            inst = (f"    msq_shift_add_engine #(.PE({pe}), .SIMD(SIMD), .XW(XW), .CODE(0), .KW1({k1w}), .KW2({k2w}), "
                    f".ACCW({accw}), .RSTEP({TREE_REGISTER_LEVELS}), .XROWS({X_COPY_ROWS})) {kind} (")
            what = f"SP2 engine: {len(rows)} rows, {pe} per fold (shift-add adder trees, LUTs)"
        elif kind == "fixed_lut":
            inst = (f"    msq_shift_add_engine #(.PE({pe}), .SIMD(SIMD), .XW(XW), .CODE(1), "
                    f".ND({numerics.booth_digits(layer.wbits)}), .ACCW({accw}), .RSTEP({TREE_REGISTER_LEVELS}), "
                    f".XROWS({X_COPY_ROWS})) {kind} (")
            what = (f"fixed-point engine in LUTs: {len(rows)} rows, {pe} per fold "
                    "(radix-4 Booth shift-add adder trees)")
        else:
            pack = int(fixed_packing(e))
            inst = (f"    msq_fixed_engine #(.PE({pe}), .SIMD(SIMD), .XW(XW), .WBITS({e.wbits}), .ACCW({accw}), "
                    f".PACK({pack}), .ARCH({FIXED_SUM}), .MREG({product_register(family)}), .RSTEP({TREE_REGISTER_LEVELS}), "
                    f".SEG({chain_segment(lp.simd)})) "
                    f"{kind} (")
            what = (f"{'high-precision ' if kind == 'fixed_hi' else ''}fixed-point engine on DSPs: {len(rows)} rows "
                    f"of {e.wbits}-bit weights, {pe} per fold (DSP multiplies" + (", two rows per DSP" if pack else "") + ")")
        docs.append(f"   {what}; {units} requantizer(s).")
        qaw = _bits(nf * steps - 1)
        blocks.append(
            f"    // ---- {what} ----\n"
            f"    localparam integer {accw} = {e.acc_bits};  // accumulator: no in-range input overflows these rows\n"
            f"    wire [{wwidth}-1:0] {kind}_w;\n"
            f"    {wmod} {kind}_w_rom (.clk(clk), .addr(wa), .data({kind}_w));\n"
            f"    wire {kind}_acc_pre, {kind}_acc_v;\n    wire [{pe}*{accw}-1:0] {kind}_accs;\n"
            + inst + f"\n        .clk(clk), .rst_n(rst_n), .v(run), .first(step_first), .last(step_last), "
            f".x(x1m), .w({kind}_w),\n        .acc_pre({kind}_acc_pre), .acc_v({kind}_acc_v), .accs({kind}_accs));\n"
            f"    wire [{qaw}-1:0] {kind}_qaddr;\n    wire [{qwidth}-1:0] {kind}_q;\n"
            f"    {qmod} {kind}_q_rom (.clk(clk), .addr({kind}_qaddr), .data({kind}_q));\n"
            f"    msq_requant_stage #(.PE({pe}), .NRQ({units}), .STEPS({steps}), .NF({nf}), .ACCW({accw}), "
            f".RQW({layer.requant_bits}), .OBITS({ow}),\n"
            f"        .LO({_slit(lo, ow + 1)}), .HI({_slit(hi, ow + 1)}), .QAW({qaw}), .MULTW({MULT_BITS}), "
            f".SHIFTW({SHIFT_BITS})) {kind}_rq (\n"
            f"        .clk(clk), .rst_n(rst_n), .acc_pre({kind}_acc_pre), .acc_v({kind}_acc_v), .accs({kind}_accs),\n"
            f"        .qaddr({kind}_qaddr), .q({kind}_q), .beat_v(out_wr[{port}]), "
            f".beat(out_lanes[{lane_bits} +: {pe * ow}]));\n")
        lane_bits += pe * ow
    in_lanes = sum(p.lanes for p in in_ports)
    files[module] = _template("compute_layer.v.tmpl").substitute(
        header=header, name=name, kind=layer.kind, module=module, in_shape=list(layer.in_shape),
        out_shape=list(layer.out_shape), fan_in=layer.fan_in, folds=nf, sf=sf, simd=simd,
        engines_doc="\n//".join(docs), pixels=ho * wo, steps=ho * wo * nf * sf,
        in_np=len(in_ports), in_lanes_bits=in_lanes * iw, out_np=len(engine_rows(layer, lp)), out_lanes_bits=lane_bits,
        iw=iw, xw=xw, raw=read.raw, saw=saw, gb=_bits(groups - 1), nra=copies,
        read_stage=_read_stage("x1", "x_ext", "SIMD*XW", read.block),
        fb=_bits(nf - 1), wab=_bits(nf * sf - 1), g_last=_ulit(groups - 1, _bits(groups - 1)),
        f_last=_ulit(nf - 1, _bits(nf - 1)), wa_last=_ulit(nf * sf - 1, _bits(nf * sf - 1)),
        h=_slit(h, saw), w=_slit(w, saw), kh_last=_slit(kh - 1, saw), kw_last=_slit(kw - 1, saw),
        ho_last=_slit(ho - 1, saw), wo_last=_slit(wo - 1, saw), sh=_slit(sh, saw), swd=_slit(sw, saw),
        r0_first=_slit(-ph, saw), c0_first=_slit(-pw, saw), one=_slit(1, saw), zero=_slit(0, saw),
        pa_first=_slit((-ph * w - pw) * gstride, saw), tap_col=_slit(gstride - groups + 1, saw),
        tap_row=_slit((w - kw + 1) * gstride - groups + 1, saw),
        pos_col=_slit(sw * gstride, saw), pos_row=_slit((sh * w - (wo - 1) * sw) * gstride, saw),
        buffer_module=buffer_module, x_extend=x_extend, engines="\n".join(blocks))
    return files


# --- pooling layers -------------------------------------------------------------------------------

REQUANT_LANE_LATENCY = 5  # avgpool, add, concat: a step's last word -> its requantized beat (requant_lane)


def requant_lane(layer: PoolLayer | MergeLayer, sumw: int, valid: str) -> list[str]:
    """The end of a lane of an average pooling or merge layer, which holds its ``sumw``-bit sum in
    ``nxt`` (valid at the cycle of the read pipeline's ``v_d[1]``): the sum registered, multiplied by
    ``mult``, rounded by ``shift``, clamped to the output (``mult``, ``shift`` of the IR, no bias),
    the beat ``REQUANT_LANE_LATENCY`` cycles after the step whose ``valid`` flag ends it."""
    pw = max(requant_datapath_bits(layer.requant_bits, sumw, layer.shift), sumw + MULT_BITS + 1)
    half = (1 << (layer.shift - 1)) if layer.shift else 0
    lo, hi = _slit(layer.out_fmt.lo, pw), _slit(layer.out_fmt.hi, pw)
    return [f"            reg  signed [{pw}-1:0] s3, p4;",
            "            reg  [OW-1:0] y;",
            f"            wire signed [{pw}-1:0] r4 = (p4 + {_slit(half, pw)}) >>> {layer.shift};",
            "            /* verilator lint_off UNUSEDSIGNAL */ // only the low OW bits of the clamped value",
            f"            wire signed [{pw}-1:0] c4 = (r4 < {lo}) ? {lo} : (r4 > {hi}) ? {hi} : r4;",
            "            /* verilator lint_on UNUSEDSIGNAL */",
            "            always @(posedge clk) begin",
            f"                s3 <= {{{{({pw} - SUMW){{nxt[SUMW-1]}}}}, nxt}};",
            f"                p4 <= s3 * {_slit(layer.mult, pw)};",
            "                y <= c4[OW-1:0];",
            "            end",
            "            assign beat[l*OW +: OW] = y;",
            "        end", "    endgenerate",
            "    reg l3, l4;",
            "    always @(posedge clk) begin",
            f"        l3 <= rst_n && {valid};",
            "        l4 <= rst_n && l3;",
            "        beat_v <= rst_n && l4;",
            "    end"]


def pool_latency(layer: PoolLayer) -> int:
    """Cycles from a group's last tap to its output beat (see the lanes of :func:`pool_layer`)."""
    return 3 if layer.kind == "maxpool" else REQUANT_LANE_LATENCY


def pool_layer(layer: PoolLayer, lp: LayerPlan, in_ports: list[Port], nbuf: int, header: str) -> dict[str, str]:
    """{module name: Verilog} of a max or average pooling layer and its buffers."""
    name, module = layer.name, layer_module(layer.name)
    h, w, c = layer.in_shape
    ho, wo, _ = layer.out_shape
    kh, kw = layer.kernel
    sh, sw = layer.stride
    simd = lp.simd
    groups = c // simd
    iw, ow = layer.in_fmt.bits, layer.out_fmt.bits
    xw = iw + 1
    taps = kh * kw
    sumw = xw + (_bits(taps - 1) if layer.kind == "avgpool" else 0)
    read = read_layout(tuple(layer.in_shape), iw, simd)
    gstride = read.stride
    saw = _saw((h, w, c), (0, 0), gstride)
    buffer_module = f"msq_fbuf_{name}"
    files = {buffer_module: frame_buffer(buffer_module, name, in_ports, tuple(layer.in_shape), iw, simd, nbuf, header,
                                         read.block)}
    fill = "x2[l*IW+IW-1]" if layer.in_fmt.signed else "1'b0"
    lane = ["    genvar l;", "    generate", "        for (l = 0; l < SIMD; l = l + 1) begin : g_lane",
            f"            wire signed [SUMW-1:0] xs = {{{{(SUMW - IW){{{fill}}}}}, x2[l*IW +: IW]}};",
            "            reg  signed [SUMW-1:0] acc;"]
    if layer.kind == "maxpool":
        op = "maximum"
        lane += ["            wire signed [SUMW-1:0] nxt = first_d[1] ? xs : ((xs > acc) ? xs : acc);",
                 "            reg  [OW-1:0] y;",
                 "            always @(posedge clk) begin",
                 "                if (v_d[1]) acc <= nxt;",
                 "                if (v_d[1] && last_d[1]) y <= nxt[OW-1:0];",
                 "            end",
                 "            assign beat[l*OW +: OW] = y;",
                 "        end", "    endgenerate",
                 "    always @(posedge clk) beat_v <= rst_n && v_d[1] && last_d[1];"]
    else:
        op = "sum, then requantize"
        lane += ["            wire signed [SUMW-1:0] nxt = first_d[1] ? xs : (acc + xs);",
                 "            always @(posedge clk) if (v_d[1]) acc <= nxt;"]
        lane += requant_lane(layer, sumw, "v_d[1] && last_d[1]")
    files[module] = _template("pool_layer.v.tmpl").substitute(
        header=header, name=name, kind=layer.kind, module=module, kernel=list(layer.kernel), stride=list(layer.stride),
        in_shape=list(layer.in_shape), out_shape=list(layer.out_shape), simd=simd, taps=taps, op=op,
        pixels=ho * wo, groups=groups, steps=ho * wo * groups * taps,
        in_np=len(in_ports), in_lanes_bits=sum(p.lanes for p in in_ports) * iw, out_lanes_bits=simd * ow,
        iw=iw, sumw=sumw, ow=ow, raw=read.raw, saw=saw, gb=_bits(groups - 1),
        read_stage=_read_stage("x1", "rd_word", "SIMD*IW", read.block),
        g_last=_ulit(groups - 1, _bits(groups - 1)), kh_last=_slit(kh - 1, saw), kw_last=_slit(kw - 1, saw),
        ho_last=_slit(ho - 1, saw), wo_last=_slit(wo - 1, saw), one=_slit(1, saw), zero=_slit(0, saw),
        tap_col=_slit(gstride, saw), tap_row=_slit((w - kw + 1) * gstride, saw), pos_col=_slit(sw * gstride, saw),
        pos_row=_slit((sh * w - (wo - 1) * sw) * gstride, saw), buffer_module=buffer_module,
        lanes="\n".join(lane))
    return files


# --- add and concat -------------------------------------------------------------------------------

def _extend(src: str, iw: int, width: int, signed: bool) -> str:
    """``src`` (``iw`` bits) sign- or zero-extended to ``width`` bits."""
    if width == iw:
        return src
    return f"{{{{{width - iw}{{{src}[{iw - 1}] }}}}, {src}}}" if signed else f"{{{width - iw}'d0, {src}}}"


def merge_layer(layer: MergeLayer, lp: LayerPlan, in_ports: list[list[Port]], nbuf: tuple[int, ...],
                header: str) -> dict[str, str]:
    """{module name: Verilog} of an add or concat layer and the buffers of its two inputs."""
    name, module, simd = layer.name, layer_module(layer.name), lp.simd
    (iw0, iw1), ow, sumw = (f.bits for f in layer.in_fmts), layer.out_fmt.bits, layer.acc_bits
    n_pix = pixels(layer)
    shapes = [tuple(shape) for shape in layer.in_shapes]
    in_groups = [int(shape[-1]) // simd for shape in shapes]
    reads = [read_layout(shape, f.bits, simd) for shape, f in zip(shapes, layer.in_fmts)]
    block, stride, raw = ([getattr(r, k) for r in reads] for k in ("block", "stride", "raw"))
    files, buffers = {}, []
    for j in range(2):
        buffers.append(f"msq_fbuf_{name}_{j}")
        files[buffers[j]] = frame_buffer(buffers[j], f"{name} (input {j}, {layer.inputs[j]})", in_ports[j], shapes[j],
                                         (iw0, iw1)[j], simd, nbuf[j], header, block[j])
    concat = layer.kind == "concat"
    groups = int(layer.out_shape[-1]) // simd
    gb = _bits(groups - 1)
    extended = [f"(e{j} <<< {layer.align[j]})" for j in range(2)]
    lane = ["    genvar l;", "    generate", "        for (l = 0; l < SIMD; l = l + 1) begin : g_lane"]
    for j, iw in enumerate((iw0, iw1)):
        lane.append(f"            wire signed [SUMW-1:0] e{j} = "
                    + _extend(f"x{j}_2[l*IW{j} +: IW{j}]", iw, sumw, layer.in_fmts[j].signed) + ";")
    if concat:
        lane.append(f"            wire signed [SUMW-1:0] nxt = sel_d[1] ? {extended[1]} : {extended[0]};")
    else:
        lane += ["            /* verilator lint_off UNUSEDSIGNAL */ // an add reads both inputs in every group",
                 "            wire unused_sel = sel_d[1];",
                 "            /* verilator lint_on UNUSEDSIGNAL */",
                 f"            wire signed [SUMW-1:0] nxt = {extended[0]} + {extended[1]};"]
    lane += requant_lane(layer, sumw, "v_d[1]")
    g0 = in_groups[0] if concat else groups
    last = [_ulit((n_pix - 1) * st + n - 1, r) for st, n, r in zip(stride, in_groups, raw)]
    ends = (f"(g == {'G0_LAST' if concat else 'G_LAST'})", "(g == G_LAST)")  # a pixel's last group, per input
    # the next word address: past the padded address slots of a block RAM buffer after a pixel's last group
    nxt = [f"a{j} + 1'b1" if st == n else f"a{j} + ({ends[j]} ? {_ulit(st - n + 1, r)} : {_ulit(1, r)})"
           for j, (st, n, r) in enumerate(zip(stride, in_groups, raw))]
    files[module] = _template("merge_layer.v.tmpl").substitute(
        header=header, name=name, kind=layer.kind, module=module, input0=layer.inputs[0], input1=layer.inputs[1],
        in_shapes=[list(shape) for shape in layer.in_shapes], out_shape=list(layer.out_shape), simd=simd,
        reads="one word of input 0 or input 1 (input 0's channels first)" if concat else "one word of each input",
        align0=layer.align[0], align1=layer.align[1], op="takes the one it read" if concat else "sums them",
        pixels=pixels(layer), groups=groups, steps=pixels(layer) * groups,
        in0_np=len(in_ports[0]), in0_lanes_bits=sum(p.lanes for p in in_ports[0]) * iw0,
        in1_np=len(in_ports[1]), in1_lanes_bits=sum(p.lanes for p in in_ports[1]) * iw1, out_lanes_bits=simd * ow,
        iw0=iw0, iw1=iw1, sumw=sumw, ow=ow, raw0=raw[0], raw1=raw[1],
        gb=gb, g_last=_ulit(groups - 1, gb), g0_last=_ulit(g0 - 1, gb),
        a0_last=last[0], a1_last=last[1], a0_next=nxt[0], a1_next=nxt[1], concat=f"1'b{int(concat)}",
        read_stage0=_read_stage("x0_1", "word0", "SIMD*IW0", block[0]),
        read_stage1=_read_stage("x1_1", "word1", "SIMD*IW1", block[1]),
        buffer0=buffers[0], buffer1=buffers[1], lanes="\n".join(lane))
    return files


# --- the top level --------------------------------------------------------------------------------

def design_modules(ir: IRModel, plan: Plan, header: str, family: str = DEFAULT_FAMILY) -> dict[str, str]:
    """{module name: Verilog} of every generated module (kernels not included)."""
    files: dict[str, str] = {}
    writers = {INPUT: [input_port(ir, plan)]}
    counts = cycles.buffer_counts(ir, plan)
    for k, layer in enumerate(ir.layers):
        lp = plan[layer.name]
        ins = [writers[name] for name in ir.inputs_of(k)]
        if isinstance(layer, ComputeLayer):
            files.update(compute_layer(layer, lp, ins[0], counts[k][0], header, family))
        elif isinstance(layer, MergeLayer):
            files.update(merge_layer(layer, lp, ins, counts[k], header))
        else:
            files.update(pool_layer(layer, lp, ins[0], counts[k][0], header))
        writers[layer.name] = output_ports(layer, lp)
    out_elems = int(np.prod(ir.output_shape))
    files["msq_fbuf_out"] = frame_buffer("msq_fbuf_out", "the output stream", writers[ir.layers[-1].name],
                                         (out_elems,), ir.output_fmt.bits, plan.out_width, counts[-1][0], header)
    files["msq_top"] = top(ir, plan, header)
    return files


def top(ir: IRModel, plan: Plan, header: str) -> str:
    """``msq_top``: input writer, the layers, the output buffers and their AXI-Stream reader. Each
    stream (the input, every layer's output) has a claim, write strobes and lanes that every reader's
    buffers take; its writer may claim when all its readers can (``<stream>_free``). The input
    stream passes a register slice (the accepted beat's claim, strobe and lanes) so its readers'
    write enables start at flip-flops; like a layer's registered claim, no new frame starts while
    its claim is in flight."""
    in_elems, out_elems = int(np.prod(ir.input_shape)), int(np.prod(ir.output_shape))
    in_bits, out_bits = ir.input_fmt.bits, ir.output_fmt.bits
    in_tw, out_tw = tdata_width(plan.in_width, ir.input_fmt), tdata_width(plan.out_width, ir.output_fmt)
    in_beats, out_beats = in_elems // plan.in_width, out_elems // plan.out_width
    ib, ob = _bits(in_beats - 1), _bits(out_beats - 1)
    readers = ir.consumers()
    readers[ir.layers[-1].name].append((len(ir.layers), 0))  # the output stream

    def can_claim(k: int, slot: int) -> str:
        return "out_can_claim" if k == len(ir.layers) else f"{ir.layers[k].name}_in{slot}_can_claim"

    def free(stream: str) -> str:
        return " && ".join(can_claim(k, slot) for k, slot in readers[stream])

    lines = [f"    // ---- input stream -> its readers' buffers ({plan.in_width} elements per beat) ----",
             "    wire " + ", ".join(can_claim(k, slot) for k, slot in readers[INPUT]) + ";",
             "    wire out_can_claim;  // the output stream's buffers",
             f"    wire input_free = {free(INPUT)};",
             "    reg  filling;  // a frame is being written",
             f"    reg  [{ib}-1:0] in_beat;",
             "    // register slice: the accepted beat's claim, write strobe and lanes reach the buffers a cycle later",
             "    reg  in_claim_q, in_wr_q;",
             f"    reg  [{plan.in_width * in_bits}-1:0] in_lanes_q;",
             "    wire in_fire = x_in_TVALID && x_in_TREADY;",
             "    assign x_in_TREADY = filling || (input_free && !in_claim_q);  // no new frame while its claim is in flight",
             "    always @(posedge ap_clk) begin",
             "        if (!ap_rst_n) begin",
             f"            filling <= 1'b0; in_beat <= {{{ib}{{1'b0}}}}; in_claim_q <= 1'b0; in_wr_q <= 1'b0;",
             "        end else begin",
             "            in_claim_q <= in_fire && !filling; in_wr_q <= in_fire;",
             "            if (in_fire) begin",
             f"                filling <= (in_beat != {_ulit(in_beats - 1, ib)});",
             f"                in_beat <= (in_beat == {_ulit(in_beats - 1, ib)}) ? {{{ib}{{1'b0}}}} : in_beat + 1'b1;",
             "            end",
             "        end",
             "    end",
             "    /* verilator lint_off UNUSEDSIGNAL */ // frames are counted in beats: side channels ignored",
             f"    wire [{2 * (in_tw // 8)}:0] unused_in_side = {{x_in_TKEEP, x_in_TSTRB, x_in_TLAST}};",
             "    /* verilator lint_on UNUSEDSIGNAL */"]
    if in_tw > plan.in_width * in_bits:
        lines += ["    /* verilator lint_off UNUSEDSIGNAL */ // TDATA is whole bytes: the elements are its low bits",
                  f"    wire [{in_tw}-1:0] x_in_data = x_in_TDATA;", "    /* verilator lint_on UNUSEDSIGNAL */"]
        src = f"x_in_data[{plan.in_width * in_bits}-1:0]"
    else:
        src = "x_in_TDATA"
    lines.append(f"    always @(posedge ap_clk) in_lanes_q <= {src};  // read only with in_wr_q")
    stream = {INPUT: ("in_claim_q", "in_wr_q", "in_lanes_q")}  # claim, write strobes, lanes
    for k, layer in enumerate(ir.layers):
        n, lp = layer.name, plan[layer.name]
        ports = output_ports(layer, lp)
        lane_bits = sum(p.lanes for p in ports) * layer.out_fmt.bits
        own = [can_claim(r, slot) for r, slot in readers[n] if r != len(ir.layers)]
        ins = ir.inputs_of(k)
        slots = (["in"] if len(ins) == 1 else [f"in{j}" for j in range(len(ins))])
        connect = "".join(f"        .{pre}_can_claim({can_claim(k, j)}), .{pre}_claim({stream[src_][0]}), "
                          f".{pre}_wr({stream[src_][1]}), .{pre}_lanes({stream[src_][2]}),\n"
                          for j, (pre, src_) in enumerate(zip(slots, ins)))
        lines += [f"    // ---- layer {n} (reads {', '.join(ins)}) ----",
                  f"    wire {n}_claim;", f"    wire [{len(ports)}-1:0] {n}_wr;",
                  f"    wire [{lane_bits}-1:0] {n}_lanes;"]
        if own:
            lines.append("    wire " + ", ".join(own) + ";")
        lines += [f"    {layer_module(n)} {n} (\n        .clk(ap_clk), .rst_n(ap_rst_n),\n" + connect
                  + f"        .out_can_claim({free(n)}), .out_claim({n}_claim), .out_wr({n}_wr), "
                  f".out_lanes({n}_lanes));"]
        stream[n] = (f"{n}_claim", f"{n}_wr", f"{n}_lanes")
    claim, wr, lanes = stream[ir.layers[-1].name]
    pad = out_tw - plan.out_width * out_bits
    tdata = "out_word" if not pad else f"{{{pad}'d0, out_word}}"
    lines += [f"    // ---- the last layer's output buffers -> output stream ({plan.out_width} elements per beat) ----",
              "    wire out_full, out_next_full, out_release;",
              f"    wire [{plan.out_width * out_bits}-1:0] out_word;",
              f"    reg  [{ob}-1:0] out_beat;",
              f"    msq_fbuf_out out_buffer (\n        .clk(ap_clk), .rst_n(ap_rst_n), .can_claim(out_can_claim), "
              f".claim({claim}), .wr({wr}), .lanes({lanes}),\n"
              "        .rd_full(out_full), .rd_next_full(out_next_full), .rd_release(out_release),\n"
              "        .rd_addr(out_beat), .rd_word(out_word));",
              "    /* verilator lint_off UNUSEDSIGNAL */ // the stream reads one frame at a time",
              "    wire unused_next = out_next_full;",
              "    /* verilator lint_on UNUSEDSIGNAL */",
              "    assign y_out_TVALID = out_full;",
              f"    assign y_out_TDATA  = {tdata};",
              f"    assign y_out_TKEEP  = {{{out_tw // 8}{{1'b1}}}};",
              f"    assign y_out_TSTRB  = {{{out_tw // 8}{{1'b1}}}};",
              f"    assign y_out_TLAST  = (out_beat == {_ulit(out_beats - 1, ob)});  // the frame's last beat",
              "    assign out_release  = y_out_TVALID && y_out_TREADY && y_out_TLAST;",
              "    always @(posedge ap_clk) begin",
              f"        if (!ap_rst_n) out_beat <= {{{ob}{{1'b0}}}};",
              "        else if (y_out_TVALID && y_out_TREADY)",
              f"            out_beat <= out_release ? {{{ob}{{1'b0}}}} : out_beat + 1'b1;",
              "    end"]
    return _template("top.v.tmpl").substitute(
        header=header, in_width=plan.in_width, out_width=plan.out_width, in_bits=in_bits, out_bits=out_bits,
        in_shape=list(ir.input_shape), in_fmt=_fmt(ir.input_fmt), out_shape=list(ir.output_shape),
        out_fmt=_fmt(ir.output_fmt), in_beats=in_beats, out_beats=out_beats,
        interval=cycles.inference_interval(ir, plan), latency=cycles.latency(ir, plan),
        in_tw=in_tw, out_tw=out_tw, in_kw=in_tw // 8, out_kw=out_tw // 8, body="\n".join(lines))
