"""``msq rtl`` / ``msq sim``: a run directory (its IR and test set) → a Verilog project → simulation.

The glue between a training run and the Verilog backend: the backend reads only the IR; the test
set comes from the run's ``metrics.json`` (``settings.dataset``), quantized with the IR's input format.
"""
from __future__ import annotations

from pathlib import Path

from msq.backends.plan import load_plan
from msq.backends.rtl.generate import generate_rtl
from msq.errors import MSQError
from msq.frontend.data import load_dataset
from msq.hls_run import run_dataset
from msq.ir import load_ir


def build_rtl(run: str | Path, out: str | Path | None = None, plan: str | Path | None = None) -> Path:
    """Generate the Verilog project of ``run`` (default ``run/rtl``) with the test set as test vectors."""
    run = Path(run)
    if not (run / "ir").is_dir():
        raise MSQError(f"{run}/ir does not exist: run 'msq export {run}' first")
    ir = load_ir(run / "ir")
    inputs = ir.quantize_input(load_dataset(run_dataset(run)).x_test)
    return generate_rtl(ir, Path(out) if out else run / "rtl", inputs, plan=load_plan(ir, plan),
                        source=str(run / "ir"))
