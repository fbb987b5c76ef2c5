"""Verilog text of one design: a module per layer (from rtl_sim/templates) and the top level.

Weights become ROMs: one ``case`` function per engine lane, addressed by {pass, tap}; SP2 lanes
hold (sign, k1, k2) codes that drive shifts, fixed lanes hold signed integers that feed a DSP
multiply. Bias, requantization multiplier and shift are per-row ROMs.
"""
from __future__ import annotations

import math
from pathlib import Path
from string import Template

import numpy as np

from msq import numerics
from msq.assets import RTL_SIM_DIR
from msq.numerics import RowScheme
from msq.ir.plan import LayerPlan
from msq.backends.rtl import cycles
from msq.ir.arith import MULT_BITS, SHIFT_BITS, ActFormat, requant_datapath_bits
from msq.ir.model import ComputeLayer, IRModel, PoolLayer

KERNELS = RTL_SIM_DIR / "kernels"
TEMPLATES = RTL_SIM_DIR / "templates"
KERNEL_FILES = ("msq_pingpong_buffer.v", "msq_sp2_mac.v", "msq_fixed_mac.v", "msq_requant.v")


def kernels_used(ir: IRModel) -> list[str]:
    """The kernel files a design instantiates."""
    compute = ir.compute_layers()
    used = {"msq_pingpong_buffer.v": True,
            "msq_sp2_mac.v": any(len(layer.sp2_rows) for layer in compute),
            "msq_fixed_mac.v": any(len(layer.fixed_rows) for layer in compute),
            "msq_requant.v": bool(compute) or any(layer.kind == "avgpool" for layer in ir.layers)}
    return [name for name in KERNEL_FILES if used[name]]


def _template(name: str) -> Template:
    return Template((TEMPLATES / name).read_text())


def _bits(n: int) -> int:
    """Bits of an unsigned counter holding 0..n (at least 1)."""
    return max(1, int(n).bit_length())


def stream_width(fmt: ActFormat) -> int:
    """AXI-Stream TDATA width of an activation format: whole bytes."""
    return 8 * math.ceil(fmt.bits / 8)


def _slit(value: int, width: int) -> str:
    """A sized signed Verilog literal."""
    return f"{width}'sd{value}" if value >= 0 else f"-{width}'sd{-value}"


def _ulit(value: int, width: int) -> str:
    return f"{width}'d{value}"


def _extend(src: str, from_bits: int, to_bits: int, signed: bool) -> str:
    """Sign- or zero-extend ``src`` (``from_bits`` wide) to ``to_bits`` (> from_bits)."""
    fill = f"{src}[{from_bits - 1}]" if signed else "1'b0"
    return f"{{{{{to_bits - from_bits}{{{fill}}}}}, {src}}}"


def _cases(name: str, entries: list[tuple[int, str]], addr_bits: int, indent: str = "            ") -> str:
    return "\n".join(f"{indent}{_ulit(a, addr_bits)}: {name} = {v};" for a, v in entries)


def _saw(in_shape: tuple[int, ...], pad: tuple[int, int], extra: int) -> int:
    """Signed width for addresses, coordinates and counters of a layer."""
    h, w, c = in_shape
    bound = (h + 2 * pad[0] + 2) * (w + 2 * pad[1] + 2) * c + extra
    return bound.bit_length() + 1


def _geometry(layer: ComputeLayer) -> tuple[tuple[int, int, int], tuple[int, int], tuple[int, int], tuple[int, int],
                                            tuple[int, int]]:
    """(in HWC, kernel, stride, padding, out HW): dense layers are 1x1 convs on a 1x1xK image."""
    if layer.kind == "dense":
        return (1, 1, layer.fan_in), (1, 1), (1, 1), (0, 0), (1, 1)
    return (tuple(layer.in_shape), tuple(layer.kernel), tuple(layer.stride), tuple(layer.padding),
            tuple(layer.out_shape[:2]))


def _lane_rows(rows: np.ndarray, lanes: int, n_pass: int) -> list[list[int | None]]:
    """rows of each lane in each pass: lane l takes rows[p * lanes + l]."""
    return [[int(rows[p * lanes + l]) if p * lanes + l < len(rows) else None for p in range(n_pass)]
            for l in range(lanes)]


def _engine(layer: ComputeLayer, scheme: str, lanes: int, n_pass: int, kb: int, pb: int) -> str:
    """Verilog of one engine's lanes (SP2 or fixed)."""
    rows = layer.sp2_rows if scheme == RowScheme.SP2 else layer.fixed_rows
    if not lanes or not len(rows):
        return f"    // no {scheme} rows in this layer: no {scheme} engine\n"
    w = layer.w_int.reshape(layer.rows, -1)
    out = []
    for lane, lane_rows in enumerate(_lane_rows(rows, lanes, n_pass)):
        entries = []
        if scheme == RowScheme.SP2:
            m1, m2 = numerics.sp2_split(layer.wbits)
            m2 = max(m2, 1)  # 2-bit SP2 has no second term: a 1-bit k2 field that is always 0
            cw = 1 + m1 + m2
            sign, k1, k2 = (a.reshape(layer.rows, -1) for a in layer.sp2_codes())
            for p, r in enumerate(lane_rows):
                for t in range(w.shape[1]):
                    if r is not None and w[r, t] != 0:
                        code = (int(sign[r, t]) << (m1 + m2)) | (int(k1[r, t]) << m2) | int(k2[r, t])
                        entries.append(((p << kb) | t, _ulit(code, cw)))
            out.append(_template("sp2_lane.v.tmpl").substitute(
                lane=lane, code_cases=_cases(f"sp2_code_{lane}", entries, pb + kb),
                cw=cw, kw1=m1, kw2=m2, e=numerics.sp2_exponent(layer.wbits), k1_hi=m1 + m2 - 1, k2_hi=m2 - 1))
        else:
            ww = layer.wbits
            for p, r in enumerate(lane_rows):
                for t in range(w.shape[1]):
                    if r is not None and w[r, t] != 0:
                        entries.append(((p << kb) | t, _slit(int(w[r, t]), ww)))
            out.append(_template("fixed_lane.v.tmpl").substitute(
                lane=lane, code_cases=_cases(f"fixed_w_{lane}", entries, pb + kb), ww=ww))
    return "".join(out)


def _acc_store(layer: ComputeLayer, plan: LayerPlan, n_pass: int, pb: int) -> str:
    """One always block writing every lane's finished accumulator into its row's slot.

    Lane ``l`` computes row ``rows[p * lanes + l]`` in pass ``p``, so every row has exactly one
    source lane and one pass: the store is a ``case`` on the pass with constant row addresses
    (each row's register has a single data source and an enable; no address decoding).
    """
    by_pass: list[list[str]] = [[] for _ in range(n_pass)]
    for prefix, lanes, rows in (("s", plan.sp2_lanes, layer.sp2_rows), ("f", plan.fixed_lanes, layer.fixed_rows)):
        for lane, lane_rows in enumerate(_lane_rows(rows, lanes, n_pass) if len(rows) else []):
            for p, r in enumerate(lane_rows):
                if r is not None:
                    by_pass[p].append(f"acc_mem[{r}] <= {prefix}{lane}_next;")
    lines = ["    always @(posedge clk) begin", "        if (mac_store) begin", "            case (pass)"]
    for p, stores in enumerate(by_pass):
        if stores:
            lines.append(f"                {_ulit(p, pb)}: begin " + " ".join(stores) + " end")
    lines += ["                default: ;", "            endcase", "        end", "    end", ""]
    return "\n".join(lines)


def compute_layer(layer: ComputeLayer, plan: LayerPlan, module: str, header: str) -> str:
    """The Verilog module of a dense or conv layer."""
    (h, w, c), (kh, kw), (sh, sw), (pad_h, pad_w), (ho, wo) = _geometry(layer)
    k = layer.fan_in
    n_pass = cycles.passes(layer, plan)
    kb, pb, rb = _bits(k - 1), _bits(n_pass - 1), _bits(layer.rows - 1)
    in_elems = h * w * c
    saw = _saw((h, w, c), (pad_h, pad_w), k + layer.rows)
    xw, ow = layer.in_fmt.bits, layer.out_fmt.bits
    acc = layer.acc_bits
    pw = requant_datapath_bits(layer.requant_bits, acc, int(layer.shift.max()))
    row_roms = _template("row_roms.v.tmpl").substitute(
        bias_cases=_cases("bias_of", [(r, _slit(int(b), pw)) for r, b in enumerate(layer.bias)], rb),
        mult_cases=_cases("mult_of", [(r, _slit(int(m), MULT_BITS)) for r, m in enumerate(layer.mult)], rb),
        shift_cases=_cases("shift_of", [(r, _ulit(int(s), SHIFT_BITS)) for r, s in enumerate(layer.shift)], rb))
    engines = (_engine(layer, RowScheme.SP2, plan.sp2_lanes, n_pass, kb, pb)
               + _engine(layer, RowScheme.FIXED, plan.fixed_lanes, n_pass, kb, pb) + _acc_store(layer, plan, n_pass, pb))
    r_sp2, r_fix = len(layer.sp2_rows), len(layer.fixed_rows)
    return _template("compute_layer.v.tmpl").substitute(
        header=header, name=layer.name, kind=layer.kind, module=module, in_shape=list(layer.in_shape),
        out_shape=list(layer.out_shape), fan_in=k, rows=layer.rows, rows_m1=layer.rows - 1,
        r_sp2=r_sp2, r_fix=r_fix, ls=plan.sp2_lanes, lf=plan.fixed_lanes,
        p_sp2=math.ceil(r_sp2 / plan.sp2_lanes) if plan.sp2_lanes else 0,
        p_fix=math.ceil(r_fix / plan.fixed_lanes) if plan.fixed_lanes else 0,
        passes=n_pass, npos=ho * wo, cycles=cycles.layer_cycles(layer, plan),
        xw=xw, ow=ow, accw=acc, pw=pw, multw=MULT_BITS, shiftw=SHIFT_BITS, aw=_bits(in_elems - 1), saw=saw,
        kb=kb, pb=pb, rb=rb, in_elems=in_elems,
        k_last=_ulit(k - 1, kb), pass_last=_ulit(n_pass - 1, pb), row_last=_ulit(layer.rows - 1, rb),
        h=_slit(h, saw), w=_slit(w, saw), c_last=_slit(c - 1, saw), kw_last=_slit(kw - 1, saw),
        ho_last=_slit(ho - 1, saw), wo_last=_slit(wo - 1, saw), sh=_slit(sh, saw), sw=_slit(sw, saw),
        r0_first=_slit(-pad_h, saw), c0_first=_slit(-pad_w, saw), one=_slit(1, saw), zero=_slit(0, saw),
        pa_first=_slit((-pad_h * w - pad_w) * c, saw), tap_row=_slit((w - kw) * c + 1, saw),
        pos_col=_slit(sw * c, saw), pos_row=_slit(sh * w * c - (wo - 1) * sw * c, saw),
        x_extend=_extend("x_raw", xw, xw + 1, layer.in_fmt.signed),
        row_roms=row_roms, engines=engines, lo=_slit(layer.out_fmt.lo, pw), hi=_slit(layer.out_fmt.hi, pw))


def pool_layer(layer: PoolLayer, module: str, header: str) -> str:
    """The Verilog module of a max or average pooling layer."""
    h, w, c = layer.in_shape
    ho, wo, _ = layer.out_shape
    kh, kw = layer.kernel
    sh, sw = layer.stride
    xw, ow = layer.in_fmt.bits, layer.out_fmt.bits
    taps = kh * kw
    sumw = xw + 1 + (_bits(taps - 1) if layer.kind == "avgpool" else 0)
    saw = _saw((h, w, c), (0, 0), taps)
    if layer.kind == "maxpool":
        combine, op = "((x > acc) ? x : acc)", "maximum"
        result = ("    /* verilator lint_off UNUSEDSIGNAL */ // max pooling keeps the format: low bits only\n"
                  "    wire signed [SUMW-1:0] cur_out = cur;\n    /* verilator lint_on UNUSEDSIGNAL */\n"
                  "    assign y = cur_out[OW-1:0];")
    else:
        combine, op = "(acc + x)", "sum"
        pw = requant_datapath_bits(layer.requant_bits, sumw, layer.shift)
        result = (f"    msq_requant #(.ACCW(SUMW), .MULTW({MULT_BITS}), .SHIFTW({SHIFT_BITS}), .PW({pw}), .OW(OW), "
                  f".LO({_slit(layer.out_fmt.lo, pw)}), .HI({_slit(layer.out_fmt.hi, pw)})) requant (\n"
                  f"        .acc(cur), .mult({_slit(layer.mult, MULT_BITS)}), .bias({_slit(0, pw)}), "
                  f".shift({_ulit(layer.shift, SHIFT_BITS)}), .y(y));")
    return _template("pool_layer.v.tmpl").substitute(
        header=header, name=layer.name, kind=layer.kind, module=module, in_shape=list(layer.in_shape),
        out_shape=list(layer.out_shape), kernel=list(layer.kernel), stride=list(layer.stride), taps=taps,
        out_elems=int(np.prod(layer.out_shape)), cycles=cycles.layer_cycles(layer), xw=xw, ow=ow, sumw=sumw,
        aw=_bits(h * w * c - 1), saw=saw, in_elems=h * w * c, c_last=_slit(c - 1, saw),
        kh_last=_slit(kh - 1, saw), kw_last=_slit(kw - 1, saw), ho_last=_slit(ho - 1, saw),
        wo_last=_slit(wo - 1, saw), one=_slit(1, saw), zero=_slit(0, saw), tap_col=_slit(c, saw),
        tap_row=_slit((w - kw + 1) * c, saw), pos_col=_slit(sw * c, saw),
        pos_row=_slit(sh * w * c - (wo - 1) * sw * c, saw), op=op, combine=combine, result=result,
        x_extend=_extend("rd_data", xw, sumw, layer.in_fmt.signed))


def layer_module(name: str) -> str:
    """Module name of a layer."""
    return f"msq_layer_{name}"


def _fmt(fmt: ActFormat) -> str:
    return f"{'s' if fmt.signed else 'u'}{fmt.bits}.{fmt.frac}"


def top(ir: IRModel, plan: dict[str, LayerPlan], header: str) -> str:
    """The ``msq_top`` module: the layers chained by valid/ready streams between the AXIS ports."""
    in_tw, out_tw = stream_width(ir.input_fmt), stream_width(ir.output_fmt)
    lines = []
    names = [layer.name for layer in ir.layers]
    for i, layer in enumerate(ir.layers):
        lines.append(f"    wire              {names[i]}_valid, {names[i]}_ready;")
        lines.append(f"    wire [{layer.out_fmt.bits}-1:0]  {names[i]}_data;")
    in_bits = ir.input_fmt.bits
    if in_tw > in_bits:
        lines.append("    /* verilator lint_off UNUSEDSIGNAL */ // TDATA is byte-wide: the value is in its low bits")
        lines.append(f"    wire [{in_tw}-1:0] x_in_data = x_in_TDATA;")
        lines.append("    /* verilator lint_on UNUSEDSIGNAL */")
        src_data = f"x_in_data[{in_bits}-1:0]"
    else:
        src_data = "x_in_TDATA"
    src_valid, src_ready = "x_in_TVALID", "x_in_TREADY"
    for i, layer in enumerate(ir.layers):
        n = names[i]
        lines.append(f"    {layer_module(n)} {n} (\n        .clk(ap_clk), .rst_n(ap_rst_n),\n"
                     f"        .in_valid({src_valid}), .in_ready({src_ready}), .in_data({src_data}),\n"
                     f"        .out_valid({n}_valid), .out_ready({n}_ready), .out_data({n}_data));")
        src_valid, src_ready, src_data = f"{n}_valid", f"{n}_ready", f"{n}_data"
    out_bits = ir.output_fmt.bits
    lines.append(f"    assign y_out_TVALID = {src_valid};")
    lines.append(f"    assign {src_ready} = y_out_TREADY;")
    if out_tw > out_bits:
        lines.append(f"    assign y_out_TDATA = {_extend(src_data, out_bits, out_tw, ir.output_fmt.signed)};")
    else:
        lines.append(f"    assign y_out_TDATA = {src_data};")
    return _template("top.v.tmpl").substitute(
        header=header, in_shape=list(ir.input_shape), in_fmt=_fmt(ir.input_fmt), out_shape=list(ir.output_shape),
        out_fmt=_fmt(ir.output_fmt), in_elems=int(np.prod(ir.input_shape)), out_elems=int(np.prod(ir.output_shape)),
        interval=cycles.inference_interval(ir, plan), latency=cycles.latency(ir, plan), in_tw=in_tw,
        out_tw=out_tw, body="\n".join(lines))
