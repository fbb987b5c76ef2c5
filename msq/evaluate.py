"""Deployed accuracy: the integer reference on the run's test set, beside fake-quant accuracy,
and the first rung of the verification ladder: the torch integer path ≡ the reference."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from msq import atomic
from msq.backends import reference
from msq.backends.torch_int import IntegerModel
from msq.backends.vectors import extreme_inputs
from msq.errors import MSQError
from msq.frontend.data import load_dataset
from msq.frontend.train import read_metrics
from msq.ir import load_ir


def evaluate_run(run: str | Path) -> dict[str, Any]:
    """Run the reference on ``run/ir`` over the test set; write and return ``run/eval.json``."""
    run = Path(run)
    if not (run / "ir").is_dir():
        raise MSQError(f"{run}/ir does not exist: run 'msq export {run}' first")
    ir = load_ir(run / "ir")
    metrics = read_metrics(run)
    data = load_dataset(metrics["settings"]["dataset"])
    x = ir.quantize_input(data.x_test)
    start = time.perf_counter()
    pred = reference.predict(ir, x)
    seconds = time.perf_counter() - start
    vectors = np.concatenate([x, extreme_inputs(ir)])
    torch_mismatches = int(np.sum(IntegerModel(ir)(vectors) != reference.run(ir, vectors)))
    result = {"deployed_accuracy": 100.0 * float(np.mean(pred == data.y_test)),
              "fake_quant_accuracy": metrics["accuracy"]["test"],
              "samples": int(len(x)), "reference_seconds": seconds,
              "torch_int": {"samples": int(len(vectors)), "mismatches": torch_mismatches}}
    atomic.write_json(run / "eval.json", result)
    return result
