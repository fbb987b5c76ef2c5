"""Generate a self-contained Vitis HLS project from an IR (+ plan v2 + board + test inputs).

Layout of a project directory::

    msq_top.h, msq_top.cpp     top function (AXI-Stream ports, DATAFLOW of the layers)
    msq_layers.h, weights/*.h  per-layer configuration structs and constant tables
    msq_kernels.h              copy of the kernel library hls/msq_kernels.h
    tb_msq.cpp, tb_data/       C testbench, inputs.txt and expected.txt (integer reference)
    options.tcl, build.tcl     Vitis HLS flow (C-sim, C-synthesis, co-simulation, IP export)
    hls_config.cfg             the same for the Vitis unified flow (v++ -c --mode hls --config)
    vivado_ooc.tcl             Vivado out-of-context synthesis of the exported IP
    ir/                        the IR the project was generated from
    project.json               provenance, board, plan (v2) and test-vector counts

The whole directory is written beside the target and renamed into place, so a failure never
leaves a half-written project.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np

import msq
from msq import atomic
from msq.names import check_label, comment_text
from msq.assets import HLS_DIR
from msq import ref
from msq.ir import vectors
from msq.backends.hls import sources, tcl
from msq.ir.plan import Plan, check_plan, default_plan
from msq.boards import Board
from msq.ir import io as ir_io
from msq.ir.model import IRModel

KERNEL_LIBRARY = HLS_DIR / sources.KERNELS_H
PROJECT_JSON = "project.json"
IR_DIR = "ir"


def ir_digest(ir_dir: Path) -> str:
    """sha256 over an IR directory's manifest and array contents (not the zip container's timestamps)."""
    h = hashlib.sha256((ir_dir / ir_io.MANIFEST).read_bytes())
    with np.load(ir_dir / ir_io.ARRAYS, allow_pickle=False) as npz:
        for key in sorted(npz.files):
            h.update(key.encode())
            h.update(np.ascontiguousarray(npz[key], dtype=np.int64).tobytes())
    return h.hexdigest()


def _vector_lines(x: np.ndarray) -> str:
    return "".join(" ".join(map(str, row)) + "\n" for row in x.reshape(len(x), -1).tolist())


def generate_project(ir: IRModel, out: str | Path, board: Board, inputs: np.ndarray,
                     plan: Plan | None = None, source: str = "in-memory IR",
                     steps: tuple[str, ...] = tcl.STEPS) -> Path:
    """Write the project for ``ir`` to ``out``.

    ``inputs`` are integer stream tensors (N, *input_shape), e.g. the quantized test set; the
    extreme and random vectors of :func:`msq.ir.vectors.extreme_inputs` are appended. The
    expected outputs are the integer reference's. ``plan`` (default :func:`default_plan`) sets
    the stream widths and every layer's SIMD and PE lanes. ``steps`` go into ``options.tcl``.
    """
    out = Path(out)
    ir.check_names()
    check_label(board.name, "board field 'name'")
    check_label(board.part, f"board {board.name}: field 'part'")
    plan = check_plan(ir, plan if plan is not None else default_plan(ir))
    inputs = np.asarray(inputs, dtype=np.int64).reshape((-1,) + tuple(ir.input_shape))
    extreme = vectors.extreme_inputs(ir)
    x = np.concatenate([inputs, extreme])
    expected = ref.infer(ir, x)
    with atomic.atomic_dir(out) as tmp:
        ir_io.save_ir(ir, tmp / IR_DIR)
        provenance = {"msq_version": msq.__version__, "model": ir.name, "ir_sha256": ir_digest(tmp / IR_DIR),
                      "source": comment_text(source)}
        layers_h, weights = sources.layers_header(ir, plan, provenance)
        files = {sources.TOP_H: sources.top_header(ir, plan, provenance),
                 sources.TOP_CPP: sources.top_source(ir, plan, provenance),
                 sources.LAYERS_H: layers_h, sources.WIDTHS_H: sources.widths_header(ir, plan, provenance), sources.TESTBENCH: sources.testbench(provenance),
                 "options.tcl": tcl.options(board, steps, provenance), "build.tcl": tcl.build(provenance),
                 "vivado_ooc.tcl": tcl.vivado_ooc(provenance), "hls_config.cfg": tcl.vitis_config(board, provenance),
                 sources.TB_INPUTS: _vector_lines(x), sources.TB_EXPECTED: _vector_lines(expected), **weights}
        for rel, text in files.items():
            path = atomic.inside(tmp, rel)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        shutil.copyfile(KERNEL_LIBRARY, tmp / sources.KERNELS_H)
        meta = {**provenance, "board": board.name, "part": board.part, "clock_mhz": board.clock_mhz,
                "plan": plan.as_dict(),
                "samples": {"total": int(len(x)), "inputs": int(len(inputs)), "extreme": int(len(extreme))},
                "input_shape": list(ir.input_shape), "output_shape": list(ir.output_shape)}
        (tmp / PROJECT_JSON).write_text(json.dumps(meta, indent=2) + "\n")
    return out


def read_project(project: str | Path) -> dict:
    """``project.json`` of a generated project (MSQError when the directory is not one)."""
    return atomic.read_json(Path(project) / PROJECT_JSON,
                            f"{project} is not an MSQ HLS project: generate one with 'msq hls RUN'")
