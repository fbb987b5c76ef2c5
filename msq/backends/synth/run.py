"""``msq synth``: synthesize a generated RTL project and report its use of the board.

Vivado is used when ``--tool vivado``, or ``auto`` and ``vivado`` is on PATH; Yosys otherwise.
The Vivado Tcl is written in every case. Results go to ``<rtl>/synth/synth.json``.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from msq import atomic
from msq.backends.rtl.generate import HDL_DIR
from msq.backends.synth import vivado, yosys
from msq.boards import Board
from msq.errors import MSQError

TOP = "msq_top"
TOOLS = ("auto", "vivado", "yosys")
SYNTH_DIR = "synth"
SYNTH_JSON = "synth.json"


def rtl_sources(rtl_dir: Path) -> list[Path]:
    """The design's Verilog files: ``<rtl>/hdl/*.v`` as written by ``msq rtl``."""
    sources = sorted((rtl_dir / HDL_DIR).glob("*.v"))
    if not sources:
        raise MSQError(f"{rtl_dir}/{HDL_DIR} has no Verilog files: expected a directory written by 'msq rtl'")
    return sources


def utilization(counts: dict[str, Any], board: Board) -> dict[str, dict[str, float]]:
    """Used, available and percent for LUT, FF, DSP and BRAM."""
    out = {}
    for key in ("lut", "ff", "dsp", "bram36"):
        available = getattr(board, key)
        out[key] = {"used": counts[key], "available": available,
                    "percent": 100.0 * counts[key] / available if available else 0.0}
    return out


def synthesize(rtl_dir: str | Path, board: Board, tool: str = "auto", model: str = "") -> dict[str, Any]:
    """Run synthesis for ``board`` and write ``<rtl>/synth/synth.json``; returns its content."""
    if tool not in TOOLS:
        raise MSQError(f"unknown synthesis tool {tool!r}: expected one of {', '.join(TOOLS)}")
    rtl_dir = Path(rtl_dir)
    sources = rtl_sources(rtl_dir)
    workdir = rtl_dir / SYNTH_DIR
    workdir.mkdir(parents=True, exist_ok=True)
    rel = [str(Path("..") / s.relative_to(rtl_dir)) for s in sources]
    atomic.write_text(workdir / vivado.TCL_NAME, vivado.vivado_tcl(rel, TOP, board, model or rtl_dir.name))
    use_vivado = tool == "vivado" or (tool == "auto" and vivado.vivado_version() is not None)
    start = time.perf_counter()
    wns = None
    if use_vivado:
        counts, wns = vivado.run_vivado(workdir)
    else:
        counts = yosys.run_yosys(sources, TOP, board.family, workdir)
    result = {**counts.as_dict(), "board": board.name, "part": board.part, "family": board.family,
              "clock_mhz": board.clock_mhz, "wns_ns": wns, "seconds": round(time.perf_counter() - start, 1),
              "utilization": utilization(counts.as_dict(), board),
              "vivado_tcl": str(workdir / vivado.TCL_NAME)}
    atomic.write_json(workdir / SYNTH_JSON, result)
    return result
