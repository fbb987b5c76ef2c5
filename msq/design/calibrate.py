"""``msq calibrate``: synthesize the project's own kernels with Yosys and write the cost table.

Every figure of the resource model (msq/design/cost_model.py, msq/design/estimate.py) comes from
this table. Each micro-design is a registered wrapper around one kernel from ``rtl_sim/kernels/``
(or a piece of generated-layer structure) with every operand on a port, so nothing is optimized
away, synthesized with ``synth_xilinx -family xc7``:

- ``sp2_lane`` / ``fixed_lane``: one engine lane, the MAC kernel and its accumulator register
  (``acc <= (first ? 0 : acc) + x*w``), at weight bits 2..8 x activation bits 2..8, with a
  ``ACC_REF``-bit accumulator; ``acc_slope`` adds the per-accumulator-bit cost (measured at two
  accumulator widths);
- ``requant``: ``msq_requant`` at two datapath widths (linear in the width);
- ``buffer``: ``msq_pingpong_buffer`` at several frame sizes (linear in the stored bits);
- ``rom``: a ``case`` ROM of random codes, as the generator writes weight ROMs (linear in bits);
- ``accfile``: the per-row accumulator memory a layer keeps (each row stored by one lane in one
  pass, read by the requantizer), linear in its bits;
- ``layer``: whole generated layer modules (msq.backends.rtl.verilog) of synthetic W4A4 dense,
  conv and max-pool layers with random weights; what the terms above do not explain (the
  controller's counters, address arithmetic and muxes, and the weight ROMs feeding the lanes,
  which map less densely than a bare ROM) is fitted against the layer's weight bits
  (``layer_lut_per_weight_bit``): the estimator's last term.
"""
from __future__ import annotations

import datetime
import random
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from msq import atomic
from msq.assets import CALIBRATION_JSON
from msq.ir.plan import LayerPlan
from msq.backends.rtl import verilog
from msq.backends.rtl.verilog import KERNELS
from msq.backends.synth import yosys
from msq.ir.arith import ActFormat, accumulator_bits
from msq.ir.model import SCHEME_FIXED, SCHEME_SP2, ComputeLayer, Layer, PoolLayer
from msq.numerics import sp2_exponent, sp2_split

COMMAND = "msq calibrate"
BITS = tuple(range(2, 9))
ACC_REF = 20  # accumulator width of the lane grid
FAMILY = "xc7"


def _sp2_lane(wbits: int, abits: int, accw: int) -> tuple[str, list[str]]:
    m1, m2 = sp2_split(wbits)
    m2 = max(m2, 1)
    xw = abits + 1
    cw = 1 + m1 + m2
    text = f"""module cal_top (input wire clk, input wire first, input wire signed [{xw - 1}:0] x,
    input wire [{cw - 1}:0] code, output reg signed [{accw - 1}:0] acc);
    wire signed [{accw - 1}:0] nxt;
    msq_sp2_mac #(.XW({xw}), .KW1({m1}), .KW2({m2}), .E({sp2_exponent(wbits)}), .ACCW({accw})) mac (
        .x(x), .sign(code[{cw - 1}]), .k1(code[{m1 + m2 - 1}:{m2}]), .k2(code[{m2 - 1}:0]),
        .acc_in(first ? {{{accw}{{1'b0}}}} : acc), .acc_out(nxt));
    always @(posedge clk) acc <= nxt;
endmodule
"""
    return text, ["msq_sp2_mac.v"]


def _fixed_lane(wbits: int, abits: int, accw: int) -> tuple[str, list[str]]:
    xw = abits + 1
    text = f"""module cal_top (input wire clk, input wire first, input wire signed [{xw - 1}:0] x,
    input wire signed [{wbits - 1}:0] w, output reg signed [{accw - 1}:0] acc);
    wire signed [{accw - 1}:0] nxt;
    msq_fixed_mac #(.XW({xw}), .WW({wbits}), .ACCW({accw})) mac (
        .x(x), .w(w), .acc_in(first ? {{{accw}{{1'b0}}}} : acc), .acc_out(nxt));
    always @(posedge clk) acc <= nxt;
endmodule
"""
    return text, ["msq_fixed_mac.v"]


def _requant(accw: int, pw: int) -> tuple[str, list[str]]:
    text = f"""module cal_top (input wire clk, input wire signed [{accw - 1}:0] acc, input wire signed [15:0] m,
    input wire signed [{pw - 1}:0] b, input wire [5:0] n, output reg [3:0] q);
    wire [3:0] y;
    msq_requant #(.ACCW({accw}), .PW({pw}), .OW(4), .LO(0), .HI(15)) rq (
        .acc(acc), .mult(m), .bias(b), .shift(n), .y(y));
    always @(posedge clk) q <= y;
endmodule
"""
    return text, ["msq_requant.v"]


def _buffer(width: int, depth: int) -> tuple[str, list[str]]:
    aw = max(1, (depth - 1).bit_length())
    text = f"""module cal_top (input wire clk, input wire rst_n, input wire in_valid, output wire in_ready,
    input wire [{width - 1}:0] in_data, output wire rd_full, input wire [{aw - 1}:0] rd_addr,
    output reg [{width - 1}:0] q, input wire rd_release);
    wire [{width - 1}:0] d;
    msq_pingpong_buffer #(.W({width}), .DEPTH({depth}), .AW({aw})) buf0 (
        .clk(clk), .rst_n(rst_n), .in_valid(in_valid), .in_ready(in_ready), .in_data(in_data),
        .rd_full(rd_full), .rd_addr(rd_addr), .rd_data(d), .rd_release(rd_release));
    always @(posedge clk) q <= d;
endmodule
"""
    return text, ["msq_pingpong_buffer.v"]


def _rom(depth: int, width: int) -> tuple[str, list[str]]:
    rng = random.Random(depth * 31 + width)
    ab = max(1, (depth - 1).bit_length())
    cases = "\n".join(f"            {ab}'d{a}: rom = {width}'d{rng.randrange(1, 1 << width)};" for a in range(depth))
    text = f"""module cal_top (input wire clk, input wire [{ab - 1}:0] a, output reg [{width - 1}:0] q);
    function automatic [{width - 1}:0] rom(input [{ab - 1}:0] addr);
        case (addr)
{cases}
            default: rom = {width}'d0;
        endcase
    endfunction
    always @(posedge clk) q <= rom(a);
endmodule
"""
    return text, []


def _accfile(rows: int, accw: int, lanes: int) -> tuple[str, list[str]]:
    """The per-row accumulator file as the generator writes it: in pass p lane l stores row
    p * lanes + l (constant addresses under a case on the pass); one row is read out."""
    rb = max(1, (rows - 1).bit_length())
    n_pass = -(-rows // lanes)
    pb = max(1, (n_pass - 1).bit_length())
    ports = ", ".join(f"input wire signed [{accw - 1}:0] d{l}" for l in range(lanes))
    arms = []
    for p in range(n_pass):
        stores = " ".join(f"mem[{p * lanes + l}] <= d{l};" for l in range(lanes) if p * lanes + l < rows)
        arms.append(f"            {pb}'d{p}: begin {stores} end")
    arms_text = "\n".join(arms)
    text = f"""module cal_top (input wire clk, input wire st, input wire [{pb - 1}:0] pass, {ports},
    input wire [{rb - 1}:0] rd, output reg signed [{accw - 1}:0] q);
    reg signed [{accw - 1}:0] mem [0:{rows - 1}];
    always @(posedge clk) begin
        if (st) begin
            case (pass)
{arms_text}
            default: ;
            endcase
        end
    end
    always @(posedge clk) q <= mem[rd];
endmodule
"""
    return text, []


SP2_W4 = np.array([1, 2, 4, 5, 6, 8])  # 4-bit SP2 integer magnitudes (docs/ir.md, E = 3)
LAYER_SPECS = (("dense", 32, 8, None), ("dense", 96, 24, None), ("dense", 64, 32, None), ("conv", 4, 8, (8, 8)),
               ("maxpool", 8, 8, (8, 8)))


def synthetic_layer(kind: str, cin: int, rows: int, hw: tuple[int, int] | None, seed: int = 0) -> Layer:
    """A W4A4 layer with random weights, half its rows SP2 (dense: fan-in ``cin``; conv 3x3 pad 1
    and 2x2 max-pool on an ``hw`` x ``cin`` image)."""
    rng = np.random.default_rng(seed)
    fmt = ActFormat(4, 2, False)
    if kind == "maxpool":
        h, w = hw
        return PoolLayer(name="pool", kind="maxpool", in_shape=(h, w, cin), out_shape=(h // 2, w // 2, cin),
                         in_fmt=fmt, out_fmt=fmt, kernel=(2, 2), stride=(2, 2))
    shape = (rows, cin) if kind == "dense" else (rows, 3, 3, cin)
    scheme = np.where(np.arange(rows) < rows // 2, SCHEME_SP2, SCHEME_FIXED).astype(np.int8)
    fixed = rng.integers(-7, 8, size=shape)
    sp2 = rng.choice(SP2_W4, size=shape) * rng.choice([-1, 1], size=shape)
    w_int = np.where(scheme.reshape((-1,) + (1,) * (len(shape) - 1)) == SCHEME_SP2, sp2, fixed).astype(np.int64)
    acc = accumulator_bits(w_int.reshape(rows, -1), fmt)
    geo = {} if kind == "dense" else {"kernel": (3, 3), "stride": (1, 1), "padding": (1, 1)}
    in_shape, out_shape = ((cin,), (rows,)) if kind == "dense" else ((*hw, cin), (*hw, rows))
    return ComputeLayer(name="layer", kind=kind, in_shape=in_shape, out_shape=out_shape, wbits=4, in_fmt=fmt,
                        out_fmt=fmt, relu=True, acc_bits=acc, requant_bits=acc + 17, scheme=scheme, w_int=w_int,
                        bias=rng.integers(-1000, 1000, size=rows), mult=rng.integers(1 << 13, 1 << 15, size=rows),
                        shift=rng.integers(10, 20, size=rows), **geo)


def _layer(layer: Layer) -> tuple[str, list[str]]:
    if isinstance(layer, ComputeLayer):
        plan = LayerPlan(2, 2)
        text = verilog.compute_layer(layer, plan, "cal_top", "calibration layer")
        return text, ["msq_pingpong_buffer.v", "msq_sp2_mac.v", "msq_fixed_mac.v", "msq_requant.v"]
    return verilog.pool_layer(layer, "cal_top", "calibration layer"), ["msq_pingpong_buffer.v"]


def synth_micro(build: tuple[str, list[str]], workdir: Path) -> dict[str, Any]:
    """Synthesize one micro-design (``cal_top`` plus the kernels it names) and return its counts."""
    text, kernels = build
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "cal_top.v").write_text(text)
    for name in kernels:
        shutil.copyfile(KERNELS / name, workdir / name)
    counts = yosys.synthesize([workdir / "cal_top.v"] + [workdir / k for k in kernels], "cal_top", FAMILY, workdir)
    return {"lut": counts.lut, "ff": counts.ff, "dsp": counts.dsp, "bram36": counts.bram36,
            "carry": counts.carry, "lutram": counts.lutram}


def _fit(points: list[tuple[float, dict[str, Any]]], key: str) -> dict[str, float]:
    """Least-squares line ``key = a + b * x`` through measured points (x, counts)."""
    xs = [float(x) for x, _ in points]
    ys = [float(c[key]) for _, c in points]
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx if sxx else 0.0
    return {"a": my - b * mx, "b": b}


def calibrate(out: str | Path = CALIBRATION_JSON, progress: Callable[[str], None] = lambda line: None) -> dict[str, Any]:
    """Run every micro-synthesis and write the calibration table to ``out``; returns it."""
    jobs: list[tuple[str, tuple, tuple[str, list[str]]]] = []
    grid = sorted({(w, 4) for w in BITS} | {(4, a) for a in BITS} | {(w, w) for w in BITS})
    for w, a in grid:
        jobs.append(("sp2_lane", (w, a, ACC_REF), _sp2_lane(w, a, ACC_REF)))
        jobs.append(("fixed_lane", (w, a, ACC_REF), _fixed_lane(w, a, ACC_REF)))
    for accw in (ACC_REF - 6, ACC_REF + 6):
        jobs.append(("sp2_lane", (4, 4, accw), _sp2_lane(4, 4, accw)))
        jobs.append(("fixed_lane", (4, 4, accw), _fixed_lane(4, 4, accw)))
    for accw, pw in ((14, 32), (20, 38), (26, 44)):
        jobs.append(("requant", (accw, pw), _requant(accw, pw)))
    for width, depth in ((4, 64), (4, 256), (8, 256), (4, 1024)):
        jobs.append(("buffer", (width, depth), _buffer(width, depth)))
    for depth, width in ((64, 4), (256, 4), (256, 8), (1024, 4)):
        jobs.append(("rom", (depth, width), _rom(depth, width)))
    for rows, accw, lanes in ((8, 16, 2), (16, 16, 4), (32, 20, 2), (64, 16, 8), (64, 16, 64)):
        jobs.append(("accfile", (rows, accw, lanes), _accfile(rows, accw, lanes)))
    for spec in LAYER_SPECS:
        jobs.append(("layer", spec, _layer(synthetic_layer(*spec))))
    measured: dict[str, list[dict[str, Any]]] = {}
    tmp = Path(tempfile.mkdtemp(prefix="msq-calibrate-"))
    try:
        for i, (kind, params, build) in enumerate(jobs):
            counts = synth_micro(build, tmp / f"{kind}_{'_'.join(map(str, params))}")
            measured.setdefault(kind, []).append({"params": _jsonable(params), **counts})
            progress(f"[{i + 1}/{len(jobs)}] {kind} {params}: LUT {counts['lut']}, FF {counts['ff']}, "
                     f"DSP {counts['dsp']}, CARRY {counts['carry']}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    table = {"yosys_version": yosys.yosys_version(), "family": FAMILY,
             "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
             "command": COMMAND, "acc_ref": ACC_REF,
             "params": {"sp2_lane": ["wbits", "abits", "accw"], "fixed_lane": ["wbits", "abits", "accw"],
                        "requant": ["accw", "pw"], "buffer": ["width", "depth"], "rom": ["depth", "width"],
                        "accfile": ["rows", "accw", "lanes"], "layer": ["kind", "cin", "rows", "hw"]},
             "measured": measured, "fits": _fits(measured)}
    table["fits"]["layer_lut_per_weight_bit"] = residual_fit(table)
    atomic.write_json(out, table)
    return table


def _jsonable(params: tuple) -> list:
    return [list(p) if isinstance(p, tuple) else p for p in params]


def _fits(measured: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Linear fits of the overhead terms and the lanes' per-accumulator-bit slope."""
    def pts(kind: str, x: Callable[[list[int]], float]) -> list[tuple[float, dict[str, Any]]]:
        return [(x(m["params"]), m) for m in measured[kind]]

    fits: dict[str, Any] = {}
    for key in ("lut", "ff"):
        fits[f"requant_{key}_per_pw"] = _fit(pts("requant", lambda p: p[1]), key)
        fits[f"buffer_{key}_per_bit"] = _fit(pts("buffer", lambda p: p[0] * p[1]), key)
        fits[f"rom_{key}_per_bit"] = _fit(pts("rom", lambda p: p[0] * p[1]), key)
        fits[f"accfile_{key}_per_bit"] = _fit(pts("accfile", lambda p: p[0] * p[1]), key)
        for lane in ("sp2_lane", "fixed_lane"):
            at44 = [(m["params"][2], m) for m in measured[lane] if m["params"][:2] == [4, 4]]
            fits[f"{lane}_{key}_per_acc_bit"] = _fit(at44, key)["b"]
    return fits


def residual_fit(table: dict[str, Any]) -> dict[str, float]:
    """The generated layers' measured LUTs minus every other estimator term
    (msq.design.estimate without the residual), fitted against the layer's weight bits."""
    from msq.design import estimate

    points = []
    for m in table["measured"]["layer"]:
        kind, cin, rows, hw = m["params"]
        layer = synthetic_layer(kind, cin, rows, tuple(hw) if hw else None)
        plan = LayerPlan(2, 2) if isinstance(layer, ComputeLayer) else None
        parts = estimate.layer_resources(layer, plan, table, residual=False)
        points.append((estimate.weight_bits(layer), {"lut": m["lut"] - parts.lut}))
    return _fit(points, "lut")
