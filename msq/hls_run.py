"""``msq hls``: a run directory (its IR and its test set) → a Vitis HLS project.

This is the glue between a training run and the HLS backend: the backend itself reads only the
IR; the test set comes from the run's ``metrics.json`` (``settings.dataset``) and is quantized with
the IR's own input format.
"""
from __future__ import annotations

import json
from pathlib import Path

from msq.backends.hls.project import generate_project
from msq.backends.plan import load_plan
from msq.boards import load_board
from msq.errors import MSQError
from msq.frontend.data import load_dataset
from msq.ir import load_ir


def run_dataset(run: Path) -> str:
    """``settings.dataset`` of a run's metrics.json."""
    path = run / "metrics.json"
    if not path.is_file():
        raise MSQError(f"{path} does not exist: expected a run directory written by 'msq train'")
    try:
        return json.loads(path.read_text())["settings"]["dataset"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise MSQError(f"{path}: cannot read field 'settings.dataset' ({exc})") from exc


def build_project(run: str | Path, out: str | Path | None = None, board: str = "pynq-z2",
                  plan: str | Path | None = None) -> Path:
    """Generate the HLS project of ``run`` (default ``run/hls``) with the test set as test vectors."""
    run = Path(run)
    if not (run / "ir").is_dir():
        raise MSQError(f"{run}/ir does not exist: run 'msq export {run}' first")
    ir = load_ir(run / "ir")
    data = load_dataset(run_dataset(run))
    inputs = ir.quantize_input(data.x_test)
    return generate_project(ir, Path(out) if out else run / "hls", load_board(board), inputs,
                            plan=load_plan(ir, plan), source=str(run / "ir"))
