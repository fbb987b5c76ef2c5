"""The Python API, for notebooks and scripts: each step of the pipeline is a function that returns
an object (a model, an IR, a project, a result), never a path to parse::

    import msq
    model = msq.train("mlp", epochs=10)                  # MSQ training on the digits dataset
    data = msq.load_dataset("digits")
    ir = msq.export(model, data.x_test[:1])              # the integer IR
    ir.predict(data.x_test)                              # its bit-exact integer reference
    msq.hls(ir, "pynq-z2").csim(data.x_test[:20])        # HLS C++ compiled with g++, run, compared
    design = msq.rtl(ir, msq.plan(ir, "pynq-z2"))        # Verilog for the planned lanes
    design.simulate(data.x_test[:20])                    # cocotb + Verilator, compared
    msq.synth(design, "pynq-z2")                         # Yosys (or Vivado): LUT/FF/DSP/BRAM

It sits on top of the library like msq/flow.py; the ``msq`` command line does the same on run
directories. Long steps take ``progress`` (see msq/progress.py); nothing here prints.
"""
from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from msq import ref
from msq.boards import Board, load_board
from msq.design import planner
from msq.design.cost_model import HEADROOM
from msq.ir import IRModel, load_ir, save_ir
from msq.ir.plan import Plan
from msq.ir.summary import summary_table
from msq.progress import Progress, silent


def _board(board: Board | str) -> Board:
    return board if isinstance(board, Board) else load_board(board)


@contextmanager
def _directory(path: str | Path | None) -> Iterator[Path]:
    """``path``, or a temporary directory removed afterwards."""
    if path is not None:
        yield Path(path)
        return
    with tempfile.TemporaryDirectory(prefix="msq-") as tmp:
        yield Path(tmp) / "project"


def _integer(ir: IR, inputs: np.ndarray | None) -> np.ndarray:
    """Real-valued inputs as integer stream tensors (none: an empty batch)."""
    return ir.quantize(inputs) if inputs is not None else np.zeros((0, *ir.model.input_shape), np.int64)


# --- training and the IR -----------------------------------------------------------------------

def train(model: str | Callable[..., Any] = "mlp", dataset: str = "digits", *, epochs: int = 30, wbits: int = 4,
          abits: int = 4, scheme: str = "msq", board: str = "pynq-z2", sp2_ratio: float | None = None,
          seed: int = 0, high_bits: int = 8, high_fraction: float = 0.0, out: str | Path | None = None,
          progress: Progress = silent) -> Any:
    """Quantization-aware training (the schedule of ``msq train``); returns the trained
    model (an ``nn.Module``). ``model``: 'mlp', 'cnn', 'resnet-tiny', 'resnet8',
    'path/to/file.py:function' or such a function, ``f(in_shape, classes, cfg, signed_input)`` (docs/user-guide.md); ``out``: also write a run
    directory (model.pt, assignment.json, metrics.json) that the CLI can continue from;
    ``high_fraction`` > 0: that fraction of each layer's rows at ``high_bits`` fixed point."""
    from msq.errors import MSQError
    from msq.frontend.train import TrainConfig, fit, save_run

    factory = model if callable(model) else None
    if factory is not None and out is not None:
        raise MSQError("train(out=...) needs a model the run directory can rebuild: "
                       "a built-in model name or 'path/to/file.py:function'")
    cfg = TrainConfig(model=getattr(factory, "__name__", "custom") if factory else model, dataset=dataset,
                      wbits=wbits, abits=abits, scheme=scheme, board=board, sp2_ratio=sp2_ratio, epochs=epochs,
                      seed=seed, high_bits=high_bits, high_fraction=high_fraction)
    net, data, qcfg, metrics = fit(cfg, progress, factory=factory)
    if out is not None:
        save_run(out, net, cfg, qcfg, data, metrics)
    net.msq_metrics = metrics  # accuracy, SP2 fractions, history: kept with the model
    return net


def load_dataset(name_or_path: str | Path = "digits") -> Any:
    """A dataset (``x_train``, ``y_train``, ``x_test``, ``y_test``): 'digits', 'mnist5k' or a .npz (docs/datasets.md)."""
    from msq.frontend.data import load_dataset as load

    return load(name_or_path)


@dataclass
class IR:
    """The integer model (msq.ir.IRModel) with its golden reference: what every backend must match."""

    model: IRModel

    def __repr__(self) -> str:
        return f"IR({self.model.name!r}, {len(self.model.layers)} layers, input {tuple(self.model.input_shape)})"

    def summary(self) -> str:
        """One line per layer: kind, shapes, SP2/fixed rows, formats, accumulator width."""
        return summary_table(self.model)

    def quantize(self, x: np.ndarray) -> np.ndarray:
        """Real-valued inputs (the dataset's layout) → the integer stream tensors the hardware takes."""
        return self.model.quantize_input(x)

    def logits(self, x: np.ndarray) -> np.ndarray:
        """Integer outputs of the reference for real-valued inputs, (N, outputs)."""
        x_int = self.quantize(x)
        return ref.infer(self.model, x_int).reshape(len(x_int), -1)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Class predictions of the reference (argmax of the integer logits, first maximum wins)."""
        return ref.predict(self.model, self.quantize(x))

    def save(self, path: str | Path) -> Path:
        """Write the IR directory (manifest.json, arrays.npz; docs/ir.md)."""
        save_ir(self.model, path)
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> IR:
        """An IR directory written by :meth:`save` or ``msq export``."""
        return cls(load_ir(path))


def export(model: Any, example_input: np.ndarray | None = None, name: str = "model") -> IR:
    """Freeze a trained model into the integer IR. ``model``: an ``nn.Module`` (then
    ``example_input`` is a batch of inputs, for their shape) or a run directory of ``msq train``."""
    from msq.frontend.export import export_model, export_run

    if isinstance(model, (str, Path)):
        with tempfile.TemporaryDirectory(prefix="msq-ir-") as tmp:
            return IR(export_run(model, tmp)[0])
    if example_input is None:
        raise TypeError("export(model, example_input): a batch of inputs gives the input shape")
    return IR(export_model(model, tuple(np.shape(example_input)[1:]), model_name=name))


def predict(ir: IR, x: np.ndarray) -> np.ndarray:
    """``ir.predict(x)``: class predictions of the integer reference."""
    return ir.predict(x)


def plan(ir: IR, board: Board | str, headroom: float = HEADROOM) -> planner.PlanResult:
    """The planner's design for ``board``: lanes per layer (``.plan``), exact ``.interval`` and
    ``.latency`` in cycles, estimated ``.resources``."""
    return planner.plan_search(ir.model, _board(board), headroom)


def _plan_of(p: Plan | planner.PlanResult | None) -> Plan | None:
    return p.plan if isinstance(p, planner.PlanResult) else p


# --- verification results ------------------------------------------------------------------------

@dataclass(frozen=True)
class CSim:
    """A C simulation: the C++'s outputs for the given inputs, and the mismatches against the
    reference over those and the extreme/random vectors appended to them."""

    samples: int
    mismatches: int
    outputs: np.ndarray  # integer logits of the given inputs, (N, outputs)
    seconds: float
    report: dict = field(repr=False)

    @property
    def predictions(self) -> np.ndarray:
        return self.outputs.argmax(axis=1)


@dataclass(frozen=True)
class RTLSim:
    """A cocotb simulation of the Verilog with random bubbles and back-pressure: every output
    compared with the reference; the measured cycles."""

    samples: int
    mismatches: int
    cycles_per_inference: float | None
    latency_cycles: int | None
    seconds: float
    report: dict = field(repr=False)


@dataclass(frozen=True)
class Synthesis:
    """Synthesis results: used resources, the tool, and the timing figure it gives."""

    tool: str
    lut: int
    ff: int
    dsp: int
    bram36: float
    fmax_mhz: float | None
    lut_levels: int | None
    utilization: dict = field(repr=False)
    report: dict = field(repr=False)


# --- backends ------------------------------------------------------------------------------------

@dataclass
class HLSProject:
    """A Vitis HLS project for an IR (not yet written): ``write`` it, or ``csim`` inputs with g++."""

    ir: IR
    board: Board
    plan: Plan | None = None

    def write(self, out: str | Path, inputs: np.ndarray | None = None) -> Path:
        """Write the project to ``out``; ``inputs`` (real-valued) become its test vectors, beside
        the extreme and random ones."""
        from msq.backends.hls.project import generate_project

        return generate_project(self.ir.model, out, self.board, _integer(self.ir, inputs), plan=self.plan,
                                source="msq.api")

    def csim(self, x: np.ndarray, out: str | Path | None = None) -> CSim:
        """Write the project with ``x`` as test vectors (to ``out``, else a temporary directory),
        compile it with g++ and run it."""
        from msq.backends.hls.csim import CSIM_DIR, c_simulate

        with _directory(out) as path:
            self.write(path, x)
            res = c_simulate(path)
            outputs = np.loadtxt(path / CSIM_DIR / "outputs.txt", dtype=np.int64, ndmin=2)[:len(x)]
            report = json.loads(res.report.read_text())
        return CSim(samples=res.samples, mismatches=res.mismatches, outputs=outputs,
                    seconds=res.compile_seconds + res.run_seconds, report=report)


def hls(ir: IR, board: Board | str = "pynq-z2", plan: Plan | planner.PlanResult | None = None) -> HLSProject:
    """An HLS project for ``board`` (part, clock); ``plan``: lanes per layer (default: one each)."""
    return HLSProject(ir, _board(board), _plan_of(plan))


@dataclass
class RTLProject:
    """A Verilog design for an IR (not yet written): ``write`` it, or ``simulate`` inputs."""

    ir: IR
    plan: Plan | None = None
    path: Path | None = None  # where it was last written (synthesis reads it there)

    def write(self, out: str | Path, inputs: np.ndarray | None = None) -> Path:
        """Write the project to ``out``; ``inputs`` (real-valued) become its test vectors."""
        self.path = self._generate(out, inputs)
        return self.path

    def _generate(self, out: str | Path, inputs: np.ndarray | None) -> Path:
        from msq.backends.rtl.generate import generate_rtl

        return generate_rtl(self.ir.model, out, _integer(self.ir, inputs), plan=self.plan, source="msq.api")

    def simulate(self, x: np.ndarray, simulator: str = "verilator", out: str | Path | None = None,
                 seed: int = 0, progress: Progress = silent) -> RTLSim:
        """Write the design with ``x`` as test vectors (to ``out``, else a temporary directory) and
        simulate it with cocotb and ``simulator`` ('verilator' or 'icarus')."""
        from msq.backends.rtl.simulate import simulate

        with _directory(out) as path:
            self._generate(path, x)
            r = simulate(path, simulator=simulator, seed=seed, progress=progress)
        return RTLSim(samples=r["samples"], mismatches=len(r["mismatches"]),
                      cycles_per_inference=r["cycles_per_inference"], latency_cycles=r["latency_cycles"],
                      seconds=r["run_seconds"], report=r)


def rtl(ir: IR, plan: Plan | planner.PlanResult | None = None) -> RTLProject:
    """A Verilog design; ``plan``: lanes per layer (a :func:`plan` result or a Plan; default one each)."""
    return RTLProject(ir, _plan_of(plan))


def synth(design: RTLProject | str | Path, board: Board | str = "pynq-z2", tool: str = "auto",
          progress: Progress = silent) -> Synthesis:
    """Synthesize a Verilog design for ``board`` (an :class:`RTLProject`, written to a temporary
    directory unless it has been written, or a directory of ``msq rtl``)."""
    from msq.backends.synth.driver import synthesize

    b = _board(board)
    if isinstance(design, RTLProject) and design.path is None:
        with _directory(None) as path:
            design._generate(path, None)
            s = synthesize(path, b, tool, progress=progress)
    else:
        s = synthesize(design.path if isinstance(design, RTLProject) else design, b, tool, progress=progress)
    return Synthesis(tool=s["tool"], lut=s["lut"], ff=s["ff"], dsp=s["dsp"], bram36=s["bram36"],
                     fmax_mhz=s.get("fmax_mhz"), lut_levels=s.get("lut_levels"), utilization=s["utilization"],
                     report=s)


@dataclass(frozen=True)
class Deployment:
    """A board deployment (docs/deploy.md): ``vivado -mode batch -source`` the ``tcl`` in ``path``
    for msq.bit/.hwh; ``driver`` is the PYNQ driver; ``stream`` the DMA streams' format."""

    path: Path
    tcl: Path
    driver: Path
    stream: dict[str, Any]


def deploy(design: RTLProject | str | Path, out: str | Path, board: Board | str = "pynq-z2") -> Deployment:
    """Block-design Tcl (PS7 + AXI DMA + the core) and PYNQ driver for a Zynq-7000 board. ``design``:
    an :class:`RTLProject` (written to a temporary directory unless it has been written), or the
    directory of ``msq rtl`` or of ``msq hls`` (then the core is the IP Vitis HLS exports)."""
    from msq.backends.deploy.project import DRIVER, TCL, read_deploy, write_deploy
    from msq.backends.rtl.generate import DESIGN_JSON

    b = _board(board)
    if isinstance(design, RTLProject) and design.path is None:
        with _directory(None) as path:
            written = write_deploy(design._generate(path, None), b, out, "rtl")
    else:
        project = Path(design.path if isinstance(design, RTLProject) else design)
        written = write_deploy(project, b, out, "rtl" if (project / DESIGN_JSON).is_file() else "hls")
    return Deployment(path=written, tcl=written / TCL, driver=written / DRIVER, stream=read_deploy(written)["stream"])
