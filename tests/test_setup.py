"""scripts/system-packages.sh: without apt-get it names every missing package, and fails only when
a needed one (g++, make, chromium, tcl, ccache) is missing; optional ones (Icarus Verilog) only warn."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "system-packages.sh"


def _run_with_only(tools: list[str], bin_dir: Path) -> subprocess.CompletedProcess:
    """Run the script with PATH holding just ``tools`` (and `id`): no apt-get, no sudo."""
    bin_dir.mkdir()
    for tool in ["id", *tools]:
        (bin_dir / tool).symlink_to(shutil.which(tool))
    return subprocess.run([shutil.which("bash"), str(SCRIPT)], capture_output=True, text=True,
                          env={"PATH": str(bin_dir)})


def test_missing_needed_tools_fail_with_their_package_names(tmp_path):
    proc = _run_with_only([], tmp_path / "bin")
    assert proc.returncode == 1
    assert "apt-get is not available" in proc.stderr
    for pkg in ("g++", "make", "chromium", "tcl", "ccache"):
        assert f"error: package {pkg} is missing" in proc.stderr
    assert "warning: package iverilog is missing (optional" in proc.stderr


def test_missing_optional_tools_only_warn(tmp_path):
    proc = _run_with_only(["g++", "make", "chromium", "tclsh", "ccache"], tmp_path / "bin")
    assert proc.returncode == 0, proc.stderr
    assert "warning: package iverilog is missing" in proc.stderr and "error" not in proc.stderr

