"""QONNX out (``msq export --format qonnx``) and in (``msq import``): QONNX's own executor must give
exactly the integer reference's outputs, SP2 rows included (docs/qonnx.md)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx
from random_models import extreme_inputs, random_ir

from msq import ref
from msq.backends.qonnx_export import save_qonnx, to_qonnx
from msq.cli import main
from msq.errors import MSQError
from msq.ir import save_ir
from msq.ir.model import IRModel


def run_qonnx(path, x: np.ndarray) -> np.ndarray:
    """qonnx's executor on real inputs; the model's single output."""
    model = ModelWrapper(str(path))
    return execute_onnx(model, {model.graph.input[0].name: x.astype(np.float32)})[model.graph.output[0].name]


def real_inputs(ir: IRModel, n: int, seed: int) -> np.ndarray:
    """Off-grid real inputs in the dataset's layout, some beyond the input format's range, and the
    extreme integer inputs as reals."""
    rng = np.random.default_rng(seed)
    shape = ir.input_shape
    torch_shape = (shape[2], shape[0], shape[1]) if len(shape) == 3 else tuple(shape)
    span = (ir.input_fmt.hi - ir.input_fmt.lo) * ir.input_fmt.scale
    x = rng.uniform(-0.7 * span, 1.2 * span, size=(n,) + torch_shape)
    ext = extreme_inputs(ir) * ir.input_fmt.scale
    ext = ext.transpose(0, 3, 1, 2) if ext.ndim == 4 else ext
    return np.concatenate([x, ext]).astype(np.float32)


@pytest.mark.parametrize("kind, seed", [("mlp", 7), ("mlp", 9), ("cnn", 0), ("cnn", 9), (None, 4)])
def test_qonnx_export_equals_the_reference(tmp_path, kind, seed):
    ir = random_ir(seed, kind)
    x = real_inputs(ir, 300, seed)
    path = save_qonnx(ir, tmp_path / "model.onnx", batch=len(x))
    got = run_qonnx(path, x).astype(np.float64) / ir.output_fmt.scale
    want = ref.infer(ir, ir.quantize_input(x))
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    model = ModelWrapper(str(path))
    layers = json.loads(model.get_metadata_prop("msq.layers"))
    assert [m["scheme"] for m in layers] == ["".join("SF"[1 - s] for s in layer.scheme) for layer in ir.compute_layers()]
    assert {n.op_type for n in model.graph.node} >= {"Quant", "MatMul"}
    if seed == 4:  # conv1's 27-bit accumulator is split into convolutions exact in float32
        assert ir.layers[0].acc_bits > 25
        assert sum(n.op_type == "Conv" and n.name.startswith("conv1_") for n in model.graph.node) > 1


def test_qonnx_export_has_sp2_rows_on_the_grid_and_refuses_inexact_layers():
    ir = random_ir(7, "mlp")
    layer = ir.compute_layers()[0]
    assert len(layer.sp2_rows) and len(layer.fixed_rows)
    layer.requant_bits = 60
    with pytest.raises(MSQError, match="layer 'dense1': requant_bits 60 > 53"):
        to_qonnx(ir)


def test_cli_exports_a_runs_ir_as_qonnx(tmp_path):
    ir = random_ir(0, "cnn")
    save_ir(ir, tmp_path / "run" / "ir")
    res = CliRunner().invoke(main, ["export", str(tmp_path / "run"), "--format", "qonnx", "--batch", "13"])
    assert res.exit_code == 0, res.output
    x = real_inputs(ir, 0, 0)  # the 13 extreme inputs only
    got = run_qonnx(tmp_path / "run" / "qonnx.onnx", x) / ir.output_fmt.scale
    np.testing.assert_array_equal(got, ref.infer(ir, ir.quantize_input(x)))
    res = CliRunner().invoke(main, ["export", str(tmp_path / "none"), "--format", "qonnx"])
    assert res.exit_code == 2 and "run 'msq export" in res.output
