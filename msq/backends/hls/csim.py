"""Bit-exact C simulation of a generated project with g++ and the open ``ap_types`` headers.

The headers ship inside the installed hls4ml package; they are found at run time, passed with
``-isystem`` and never copied (nor put on a synthesis include path: they ``#error`` under
``__SYNTHESIS__``). The testbench is built with ``-DMSQ_TRACE``, so every layer's output is
traced; the final outputs are compared, every element, with ``tb_data/expected.txt``, and the
trace with the integer reference run on the project's own IR copy, so a mismatch names the first
layer that diverges. Results go to ``csim/`` inside the project.
"""
from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from msq import atomic
from msq import ref
from msq.backends.hls import sources
from msq.backends.hls.project import IR_DIR, read_project
from msq.errors import MSQError
from msq.ir import load_ir
from msq.ir.model import IRModel

CXXFLAGS = ("-std=c++14", "-Wall", "-Wno-unknown-pragmas", "-DMSQ_TRACE")
CSIM_DIR = "csim"
MISMATCHES_JSON = "mismatches.json"


@dataclass
class CsimResult:
    """Outcome of one C simulation."""

    samples: int
    mismatches: int
    report: Path
    compile_seconds: float
    run_seconds: float
    warnings: str


def ap_types_dir() -> Path:
    """The ``ap_types`` headers inside the installed hls4ml package."""
    try:
        import hls4ml
    except ImportError as exc:
        raise MSQError("C simulation needs the hls4ml package for its ap_types headers: "
                       "pip install 'msq[hw]'") from exc
    path = Path(hls4ml.__file__).resolve().parent / "templates" / "vivado" / "ap_types"
    if not (path / "ap_int.h").is_file():
        raise MSQError(f"hls4ml is installed but {path}/ap_int.h is missing")
    return path


def compile_testbench(project: Path, binary: Path, opt: str = "-O0") -> tuple[float, str]:
    """Build the testbench; returns (seconds, compiler warnings). ``-O0``: ap_types draws false
    ``-Wmaybe-uninitialized`` warnings from GCC at higher levels, and compiles fastest."""
    cxx = shutil.which("g++")
    if cxx is None:
        raise MSQError("C simulation needs g++ on PATH (e.g. apt-get install g++)")
    cmd = [cxx, *CXXFLAGS, opt, "-isystem", str(ap_types_dir()), "-I", str(project),
           str(project / sources.TOP_CPP), str(project / sources.TESTBENCH), "-o", str(binary)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise MSQError(f"g++ failed to compile {project}:\n{proc.stderr.strip()}")
    return seconds, proc.stderr.strip()


def _read_vectors(path: Path, width: int) -> np.ndarray:
    rows = [line.split() for line in path.read_text().splitlines()]
    if any(len(r) != width for r in rows):
        raise MSQError(f"{path}: every line must hold {width} integers")
    return np.array(rows, dtype=np.int64).reshape(len(rows), width)


def _read_trace(path: Path, ir: IRModel, samples: int) -> list[np.ndarray | None]:
    """Per layer, its traced outputs (samples, elements), or None when the trace is incomplete."""
    raw = np.array(path.read_text().split(), dtype=np.int64).reshape(-1, 2)
    out: list[np.ndarray | None] = []
    for i, layer in enumerate(ir.layers):
        values = raw[raw[:, 0] == i, 1]
        size = int(np.prod(layer.out_shape))
        out.append(values.reshape(samples, size) if len(values) == samples * size else None)
    return out


def _mismatch_list(layer: str, want: np.ndarray, got: np.ndarray) -> list[dict]:
    sample, index = np.nonzero(want != got)
    return [{"layer": layer, "sample": int(s), "index": int(i), "expected": int(want[s, i]), "got": int(got[s, i])}
            for s, i in zip(sample, index)]


def compare(ir: IRModel, x: np.ndarray, expected: np.ndarray, got: np.ndarray,
            trace: list[np.ndarray | None]) -> dict:
    """The mismatch report: every differing output element (against the expected file) and, per
    layer, every traced element that differs from the integer reference."""
    outputs = _mismatch_list(ir.layers[-1].name, expected, got)
    per_layer = ref.infer(ir, x, keep=True)
    layers, layer_mismatches, first = {}, [], None
    for layer, want, have in zip(ir.layers, per_layer, trace):
        if have is None:
            layers[layer.name] = {"traced": False}
            continue
        found = _mismatch_list(layer.name, want.reshape(len(x), -1), have)
        layers[layer.name] = {"traced": True, "mismatches": len(found)}
        layer_mismatches += found
        if found and first is None:
            first = layer.name
    return {"samples": int(len(x)), "elements": int(expected.size), "mismatches": len(outputs),
            "first_divergent_layer": first, "layers": layers, "output_mismatches": outputs,
            "layer_mismatches": layer_mismatches}


def c_simulate(project: str | Path, opt: str = "-O0") -> CsimResult:
    """Compile and run the project's testbench, compare every element; write ``csim/mismatches.json``."""
    project = Path(project).resolve()
    meta = read_project(project)
    ir = load_ir(project / IR_DIR)
    work = project / CSIM_DIR
    work.mkdir(exist_ok=True)
    binary = work / "tb_msq"
    compile_s, warnings = compile_testbench(project, binary, opt)
    n_in, n_out = int(np.prod(meta["input_shape"])), int(np.prod(meta["output_shape"]))
    outputs, trace = work / "outputs.txt", work / "trace.txt"
    start = time.perf_counter()
    proc = subprocess.run([str(binary), str(project / sources.TB_INPUTS), str(project / sources.TB_EXPECTED),
                           str(outputs), str(trace)], capture_output=True, text=True, cwd=project)
    run_s = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        raise MSQError(f"the C testbench of {project} failed (exit {proc.returncode}):\n"
                       f"{(proc.stderr or proc.stdout).strip()}")
    x = _read_vectors(project / sources.TB_INPUTS, n_in)
    expected = _read_vectors(project / sources.TB_EXPECTED, n_out)
    got = _read_vectors(outputs, n_out)
    if len(got) != len(x) or len(expected) != len(x):
        raise MSQError(f"{project}: {len(x)} inputs, {len(expected)} expected and {len(got)} simulated outputs")
    report = compare(ir, x.reshape((len(x),) + tuple(ir.input_shape)), expected, got,
                     _read_trace(trace, ir, len(x)))
    report.update(compile_seconds=round(compile_s, 3), run_seconds=round(run_s, 3), compiler_warnings=warnings)
    path = work / MISMATCHES_JSON
    atomic.write_json(path, report)
    return CsimResult(samples=len(x), mismatches=report["mismatches"], report=path,
                      compile_seconds=compile_s, run_seconds=run_s, warnings=warnings)
