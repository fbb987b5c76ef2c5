"""A run directory (``runs/NAME``): the one place that knows its layout and what each stage left.

``msq train`` writes the checkpoint, ``msq export`` the IR, later stages their projects below it::

    runs/NAME/
      model.pt  assignment.json  metrics.json    training (msq train)
      float/                                     the float baseline of the same topology (msq flow)
      ir/                                        the integer IR (msq export, or msq import from QONNX)
      qonnx.onnx                                 the IR as a QONNX model (msq export --format qonnx)
      eval.json                                  deployed accuracy (msq eval)
      plan.json  explore/BOARD/                  the engine plan (msq plan), the sweep (msq explore)
      hls/                                       Vitis HLS project and its C-sim (msq hls, msq csim)
      rtl/   rtl/synth/                          Verilog, its simulation and synthesis (msq rtl/sim/synth)
      deploy/                                    block-design Tcl and PYNQ driver (msq deploy)
      summary.json  flow_state.json  report/     the flow's summary, resume state and report

A :class:`RunDir` loads what it needs once (the IR, the metrics) and hands objects on; a missing
stage is an :class:`MSQError` naming the command that makes it.
"""
from __future__ import annotations

import time
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from msq import atomic, ref
from msq.backends.rtl.simulate import SIM_DIR
from msq.backends.synth.driver import SYNTH_DIR
from msq.backends.torch_int import IntegerModel
from msq.boards import Board
from msq.design import explore, planner
from msq.design.cost_model import HEADROOM
from msq.errors import MSQError
from msq.frontend.data import load_dataset
from msq.frontend.train import ASSIGNMENT_JSON, METRICS_JSON, MODEL_PT
from msq.ir import IRModel, load_ir, vectors
from msq.ir.plan import LayerPlan, save_plan

Plan = dict[str, LayerPlan]
IMPORTED_VECTORS = 200  # random test inputs of an imported run without a dataset


class RunDir:
    """The files of one run directory, each stage's output found by name."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def __str__(self) -> str:
        return str(self.path)

    def __fspath__(self) -> str:
        return str(self.path)

    @property
    def name(self) -> str:
        return self.path.name

    # --- layout -------------------------------------------------------------------------------
    model_pt = property(lambda self: self.path / MODEL_PT)
    metrics_json = property(lambda self: self.path / METRICS_JSON)
    assignment_json = property(lambda self: self.path / ASSIGNMENT_JSON)
    float_dir = property(lambda self: self.path / "float")
    ir_dir = property(lambda self: self.path / "ir")
    qonnx_onnx = property(lambda self: self.path / "qonnx.onnx")
    eval_json = property(lambda self: self.path / "eval.json")
    plan_json = property(lambda self: self.path / "plan.json")
    hls_dir = property(lambda self: self.path / "hls")
    rtl_dir = property(lambda self: self.path / "rtl")
    rtl_sim_dir = property(lambda self: self.path / "rtl" / SIM_DIR)
    synth_dir = property(lambda self: self.path / "rtl" / SYNTH_DIR)
    deploy_dir = property(lambda self: self.path / "deploy")
    summary_json = property(lambda self: self.path / "summary.json")
    flow_state_json = property(lambda self: self.path / "flow_state.json")
    report_dir = property(lambda self: self.path / "report")

    def explore_dir(self, board: Board) -> Path:
        return self.path / "explore" / board.name

    def require(self, path: Path, command: str) -> Path:
        """``path`` if it exists, else an error naming the command that writes it."""
        if not path.exists():
            raise MSQError(f"{path} does not exist: run 'msq {command} {self.path}' first")
        return path

    # --- what earlier stages left, loaded once ------------------------------------------------
    @cached_property
    def ir(self) -> IRModel:
        return load_ir(self.require(self.ir_dir, "export"))

    @cached_property
    def metrics(self) -> dict[str, Any]:
        path = self.metrics_json
        if path.parent.is_dir():
            atomic.recover(path.parent)
        metrics = atomic.read_json(path, "expected a run directory written by 'msq train'")
        try:
            dataset, test = metrics["settings"]["dataset"], metrics["accuracy"]["test"]
        except (KeyError, TypeError) as exc:
            raise MSQError(f"{path}: cannot read fields 'settings.dataset' and 'accuracy.test' ({exc!r})") from exc
        if not isinstance(dataset, str) or not isinstance(test, (int, float)) or isinstance(test, bool):
            raise MSQError(f"{path}: field 'settings.dataset' must be a string and 'accuracy.test' a number")
        return metrics

    @property
    def imported(self) -> bool:
        """An IR from ``msq import`` (a QONNX model): no training, no metrics.json."""
        return not self.metrics_json.exists() and "qonnx" in self.ir.source

    @property
    def dataset(self) -> str | None:
        """The dataset the run was trained on (``settings.dataset`` of metrics.json); for an imported
        run, ``msq import --dataset``'s or None."""
        if self.imported:
            return self.ir.source.get("dataset")
        return self.metrics["settings"]["dataset"]

    @property
    def layout(self) -> str:
        """How the run's .npz dataset stores its images (``settings.layout``; 'nchw' before it existed)."""
        return "nchw" if self.imported else self.metrics["settings"].get("layout", "nchw")

    def test_inputs(self) -> np.ndarray:
        """The run's test set, quantized with the IR's input format (an imported run without a
        dataset: random in-range inputs, beside the extreme ones every project adds)."""
        if self.dataset is None:
            fmt, shape = self.ir.input_fmt, (IMPORTED_VECTORS, *self.ir.input_shape)
            return np.random.default_rng(0).integers(fmt.lo, fmt.hi + 1, size=shape, dtype=np.int64)
        return self.ir.quantize_input(load_dataset(self.dataset, self.layout).x_test)

    # --- stages on top of the IR -------------------------------------------------------------
    def evaluate(self) -> dict[str, Any]:
        """Deployed accuracy: the integer reference on the test set beside the fake-quant accuracy,
        and the first rung of the verification ladder (torch integer path ≡ reference); writes eval.json."""
        data = load_dataset(self.dataset, self.layout)
        x = self.ir.quantize_input(data.x_test)
        start = time.perf_counter()
        pred = ref.predict(self.ir, x)
        seconds = time.perf_counter() - start
        checked = np.concatenate([x, vectors.extreme_inputs(self.ir)])
        torch_mismatches = int(np.sum(IntegerModel(self.ir)(checked) != ref.infer(self.ir, checked)))
        result = {"deployed_accuracy": 100.0 * float(np.mean(pred == data.y_test)),
                  "fake_quant_accuracy": self.metrics["accuracy"]["test"],
                  "samples": int(len(x)), "reference_seconds": seconds,
                  "torch_int": {"samples": int(len(checked)), "mismatches": torch_mismatches}}
        atomic.write_json(self.eval_json, result)
        return result

    def plan(self, board: Board, headroom: float = HEADROOM,
             out: Path | None = None) -> tuple[planner.PlanResult, Path]:
        """Plan the design for ``board``; write the plan JSON (default plan.json)."""
        result = planner.plan_search(self.ir, board, headroom)
        path = out or self.plan_json
        save_plan(result.plan, path)
        return result, path

    def explore(self, board: Board, headroom: float = HEADROOM,
                out: Path | None = None) -> tuple[dict[str, Any], Path]:
        """Sweep the SP2 ratio on the IR for ``board``; writes explore.json and pareto.png."""
        path = out or self.explore_dir(board)
        return explore.write_explore(self.ir, board, path, headroom), path

    def write_hls(self, board: Board, plan: Plan | None = None, out: Path | None = None) -> Path:
        """The Vitis HLS project (default hls/) with the test set as test vectors."""
        from msq.backends.hls.project import generate_project

        atomic.check_replaceable(out or self.hls_dir)  # before the work, not after
        return generate_project(self.ir, out or self.hls_dir, board, self.test_inputs(), plan=plan,
                                source=str(self.ir_dir))

    def write_rtl(self, plan: Plan | None = None, out: Path | None = None, board: Board | None = None) -> Path:
        """The Verilog project (default rtl/) with the test set as test vectors, its pipeline tuned
        for ``board``'s family (AMD 7-series without one)."""
        from msq.backends.rtl.generate import generate_rtl

        atomic.check_replaceable(out or self.rtl_dir)  # before the work, not after
        return generate_rtl(self.ir, out or self.rtl_dir, self.test_inputs(), plan=plan, source=str(self.ir_dir),
                            **({"family": board.family} if board else {}))
