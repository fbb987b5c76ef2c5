"""Write a board deployment of a generated design: block-design Tcl, PYNQ driver, the core's sources.

Reads an RTL project (``msq rtl``) or an HLS project (``msq hls``): its IR copy, plan and sources,
never training code. Layout of the output directory (written atomically, with the output marker)::

    build_bitstream.tcl   vivado -mode batch -source build_bitstream.tcl -> msq.bit, msq.hwh
    msq_driver.py         PYNQ driver: pack_inputs / unpack_outputs (numpy), MSQOverlay.predict
    hdl/                  the core's Verilog (rtl route; the IP packager reads it)
    deploy.json           provenance and the stream format
"""
from __future__ import annotations

import pprint
import re
import shutil
from pathlib import Path

import numpy as np

import msq
from msq import atomic
from msq.backends.deploy import blockdesign
from msq.backends.hls import tcl as hls_tcl
from msq.backends.hls.project import IR_DIR, read_project
from msq.backends.rtl.generate import read_design
from msq.backends.rtl.verilog import tdata_width
from msq.boards import Board
from msq.errors import MSQError
from msq.ir import IRModel, load_ir
from msq.ir.plan import Plan, plan_from_dict
from msq.names import comment_text

SOURCES = ("rtl", "hls")
TCL = "build_bitstream.tcl"
DRIVER = "msq_driver.py"
DEPLOY_JSON = "deploy.json"
DRIVER_TEMPLATE = Path(__file__).with_name("pynq_driver.py")
DMA_STREAM_BITS = tuple(8 << k for k in range(8))  # AXI DMA stream widths: 8, 16, ..., 1024
_FORMAT_LINE = "FORMAT: dict = {}\n"


def stream_format(ir: IRModel, plan: Plan) -> dict:
    """What the driver and the DMA need to know about the core's two AXI-Stream ports."""
    fmt = {"model": ir.name, "input_shape": list(ir.input_shape), "output_shape": list(ir.output_shape)}
    for side, shape, width, act in (("in", ir.input_shape, plan.in_width, ir.input_fmt),
                                    ("out", ir.output_shape, plan.out_width, ir.output_fmt)):
        fmt.update({f"{side}_width": width, f"{side}_bits": act.bits, f"{side}_signed": act.signed,
                    f"{side}_tdata_bits": tdata_width(width, act), f"{side}_beats": int(np.prod(shape)) // width})
    return fmt


def _check_target(board: Board, fmt: dict) -> None:
    if not board.part.startswith("xc7z"):
        raise MSQError(f"msq deploy builds Zynq-7000 designs (PS7): board '{board.name}' has part {board.part}")
    if board.board_part is None:
        raise MSQError(f"board '{board.name}': field 'board_part' (the Vivado board files, e.g. "
                       "tul.com.tw:pynq-z2:part0:1.0) is needed for the PS7 preset")
    for side, port, plan_field in (("in", "x_in", "io.in_width"), ("out", "y_out", "io.out_width")):
        bits = fmt[f"{side}_tdata_bits"]
        if bits not in DMA_STREAM_BITS:
            raise MSQError(f"{port} is {bits} bits wide ({fmt[f'{side}_width']} x {fmt[f'{side}_bits']}-bit elements); "
                           f"the AXI DMA streams {', '.join(map(str, DMA_STREAM_BITS))} bits: choose the plan's "
                           f"{plan_field} so that it is one of them")


def driver_source(fmt: dict, header: list[str]) -> str:
    """``msq_driver.py``: the driver module with this design's FORMAT."""
    text = DRIVER_TEMPLATE.read_text()
    if text.count(_FORMAT_LINE) != 1:
        raise MSQError(f"{DRIVER_TEMPLATE}: expected one line {_FORMAT_LINE.strip()!r} to fill in")
    body = pprint.pformat(fmt, sort_dicts=False)
    return "".join(f"# {line}\n" for line in header) + text.replace(_FORMAT_LINE, f"FORMAT: dict = {body}\n")


def _read_source(source: str, project: Path) -> tuple[IRModel, Plan, dict, Path | None]:
    """(IR, plan, metadata, exported HLS IP directory) of the project a deployment is made from."""
    if source == "rtl":
        meta = read_design(project)
        where = f"{project}/design.json: field 'plan'"
        ip_dir = None
    else:
        meta = read_project(project)
        where = f"{project}/project.json: field 'plan'"
        ip_dir = project.resolve() / hls_tcl.HLS_PROJECT / hls_tcl.SOLUTION / "impl" / "ip"
    ir = load_ir(project / IR_DIR)
    return ir, plan_from_dict(ir, meta.get("plan") if isinstance(meta, dict) else None, where), meta, ip_dir


def write_deploy(project: str | Path, board: Board, out: str | Path, source: str = "rtl") -> Path:
    """Write the deployment of ``project`` (an ``msq rtl`` or, with ``source='hls'``, an ``msq hls``
    project) for ``board`` to ``out``; returns ``out``."""
    if source not in SOURCES:
        raise MSQError(f"unknown deploy source {source!r}: expected one of {', '.join(SOURCES)}")
    project, out = Path(project), Path(out)
    ir, plan, meta, ip_dir = _read_source(source, project)
    fmt = stream_format(ir, plan)
    _check_target(board, fmt)
    if ip_dir is not None and not re.fullmatch(r"[A-Za-z0-9_./: -]+", str(ip_dir)):
        raise MSQError(f"{ip_dir}: the HLS project's path must be plain (letters, digits, _ . / - and spaces) "
                       "to be written into Tcl")
    header = [f"Generated by msq {msq.__version__} ('msq deploy --from {source}') from IR '{ir.name}' "
              f"({comment_text(str(project))}) for board {board.name}. Do not edit: regenerate instead."]
    tcl = blockdesign.build_tcl(board, fmt, source, header, str(ip_dir or ""))
    with atomic.atomic_dir(out) as tmp:
        (tmp / TCL).write_text(tcl)
        (tmp / DRIVER).write_text(driver_source(fmt, header))
        if source == "rtl":
            (tmp / "hdl").mkdir()
            for rel in meta["sources"]:
                src = atomic.inside(project, rel)
                shutil.copyfile(src, tmp / "hdl" / src.name)
        atomic.write_json(tmp / DEPLOY_JSON, {"msq_version": msq.__version__, "model": ir.name, "from": source,
                                              "project": str(project.resolve()), "board": board.name,
                                              "part": board.part, "board_part": board.board_part,
                                              "clock_mhz": board.clock_mhz, "stream": fmt})
    return out


def read_deploy(out: str | Path) -> dict:
    """``deploy.json`` of a deployment directory."""
    return atomic.read_json(Path(out) / DEPLOY_JSON, f"{out} is not an MSQ deployment: write one with 'msq deploy RUN'")
