"""``msq synth``: synthesize a generated RTL project and report its use of the board.

AMD boards: Vivado is used when ``--tool vivado``, or ``auto`` and ``vivado`` is on PATH; Yosys
otherwise (with the logic depth, ``lut_levels``, as its only timing figure). The Vivado Tcl is
written in every case. Lattice ECP5 boards: Yosys ``synth_ecp5`` then nextpnr-ecp5 place and
route, which gives the post-route ``fmax_mhz``; a replay script ``ecp5_pnr.sh`` is written instead
of the Tcl. Results go to ``<rtl>/synth/synth.json``.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from msq import atomic
from msq.backends.rtl.generate import HDL_DIR
from msq.backends.synth import nextpnr, vivado, yosys
from msq.boards import Board
from msq.errors import MSQError
from msq.names import check_file_name, comment_text
from msq.progress import Progress, silent

TOP = "msq_top"
TOOLS = ("auto", "vivado", "yosys")
SYNTH_DIR = "synth"
SYNTH_JSON = "synth.json"


def rtl_sources(rtl_dir: Path) -> list[Path]:
    """The design's Verilog files: ``<rtl>/hdl/*.v`` as written by ``msq rtl``."""
    sources = sorted((rtl_dir / HDL_DIR).glob("*.v"))
    if not sources:
        raise MSQError(f"{rtl_dir}/{HDL_DIR} has no Verilog files: expected a directory written by 'msq rtl'")
    for source in sources:  # their names go into the Tcl and Yosys scripts
        check_file_name(source.name, f"{rtl_dir}/{HDL_DIR}: file name")
    return sources


def utilization(counts: dict[str, Any], board: Board) -> dict[str, dict[str, float]]:
    """Used, available and percent for LUT, FF, DSP and BRAM."""
    out = {}
    for key in ("lut", "ff", "dsp", "bram36"):
        available = getattr(board, key)
        out[key] = {"used": counts[key], "available": available,
                    "percent": 100.0 * counts[key] / available if available else 0.0}
    return out


def _ecp5(sources: list[Path], board: Board, workdir: Path, progress: Progress) -> dict[str, Any]:
    """Yosys synth_ecp5 then nextpnr-ecp5; counts are nextpnr's (LUT4s include carry cells)."""
    atomic.write_text(workdir / nextpnr.SCRIPT_NAME, nextpnr.replay_script(board, yosys.NETLIST_JSON))
    progress(f"Yosys synth_ecp5 (log: {workdir / 'yosys.log'}) ...")
    start = time.perf_counter()
    counts = yosys.synthesize(sources, TOP, "ecp5", workdir, progress=progress)
    yosys_s = round(time.perf_counter() - start, 1)
    progress(f"Yosys: {yosys_s:.0f} s; nextpnr-ecp5 place and route (log: {workdir / nextpnr.LOG_NAME}) ...")
    pnr = nextpnr.place_and_route(workdir, yosys.NETLIST_JSON, board, progress)
    clock = ", ".join(f"{name} {c['fmax_mhz']:g} MHz" for name, c in pnr.clocks.items())
    progress(f"nextpnr-ecp5: {pnr.seconds:.0f} s; Fmax {clock} (target {board.clock_mhz:g} MHz)")
    return {**counts.as_dict(), "tool": "yosys+nextpnr-ecp5", "version": f"{counts.version}; {pnr.version}",
            "lut": pnr.lut4, "ff": pnr.ff, "dsp": pnr.used("MULT18X18D"), "bram36": pnr.used("DP16KD") / 2,
            "bram18": pnr.used("DP16KD"), "fmax_mhz": pnr.fmax_mhz,
            # nextpnr's Fmax is 1 / critical-path delay, so the worst slack follows from it
            "wns_ns": round(1000.0 / board.clock_mhz - 1000.0 / pnr.fmax_mhz, 3),
            "nextpnr": {k: v for k, v in pnr.as_dict().items() if k != "fmax_mhz"},
            "yosys_seconds": yosys_s, "replay_script": str(workdir / nextpnr.SCRIPT_NAME), "vivado_tcl": None}


def synthesize(rtl_dir: str | Path, board: Board, tool: str = "auto", model: str = "",
               progress: Progress = silent) -> dict[str, Any]:
    """Run synthesis (and, for ECP5, place and route) for ``board``; write ``<rtl>/synth/synth.json``
    and return its content. ``progress`` receives Yosys' passes as steps and the ECP5 flow's phase
    and heartbeat lines."""
    if tool not in TOOLS:
        raise MSQError(f"unknown synthesis tool {tool!r}: expected one of {', '.join(TOOLS)}")
    if board.family == "ecp5" and tool == "vivado":
        raise MSQError(f"board {board.name} is a Lattice ECP5 ({board.part}): Vivado does not target it; "
                       "use --tool yosys (Yosys and nextpnr-ecp5)")
    rtl_dir = Path(rtl_dir)
    sources = rtl_sources(rtl_dir)
    workdir = rtl_dir / SYNTH_DIR
    workdir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    if board.family == "ecp5":
        fields = _ecp5(sources, board, workdir, progress)
    else:
        rel = [str(Path("..") / s.relative_to(rtl_dir)) for s in sources]
        atomic.write_text(workdir / vivado.TCL_NAME, vivado.vivado_tcl(rel, TOP, board, comment_text(model or rtl_dir.name)))
        use_vivado = tool == "vivado" or (tool == "auto" and vivado.vivado_version() is not None)
        timing = None
        if use_vivado:
            counts, timing = vivado.synthesize(workdir)
        else:
            counts = yosys.synthesize(sources, TOP, board.family, workdir, progress=progress)
        fields = {**counts.as_dict(), "wns_ns": timing and timing["wns_ns"], "vivado_timing": timing,
                  "vivado_tcl": str(workdir / vivado.TCL_NAME)}
    result = {**fields, "board": board.name, "part": board.part, "family": board.family,
              "clock_mhz": board.clock_mhz, "seconds": round(time.perf_counter() - start, 1)}
    result["utilization"] = utilization(result, board)
    atomic.write_json(workdir / SYNTH_JSON, result)
    return result
