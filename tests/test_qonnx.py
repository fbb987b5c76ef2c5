"""QONNX out (``msq export --format qonnx``) and in (``msq import``): QONNX's own executor must give
exactly the integer reference's outputs, SP2 rows included (docs/qonnx.md)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from brevitas.export import export_qonnx
from brevitas.inject.enum import FloatToIntImplType
from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear, QuantReLU
from brevitas.quant import (Int8ActPerTensorFixedPoint, Int8WeightPerTensorFixedPoint, Int16Bias,
                            Uint8ActPerTensorFixedPoint, Uint8ActPerTensorFloat)
from click.testing import CliRunner
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx
from qonnx.transformation.infer_shapes import InferShapes
from random_models import extreme_inputs, random_graph_ir, random_ir
from torch import nn

from msq import ref
from msq.backends.hls import csim
from msq.backends.qonnx_export import save_qonnx, to_qonnx
from msq.boards import load_board
from msq.cli import main
from msq.errors import MSQError
from msq.frontend.qonnx_import import import_qonnx
from msq.ir import save_ir
from msq.ir.model import SCHEME_SP2, IRModel
from msq.rundir import RunDir


def run_qonnx(path, x: np.ndarray) -> np.ndarray:
    """qonnx's executor on real inputs (shapes inferred first, as it needs); the model's single output."""
    model = ModelWrapper(str(path)).transform(InferShapes())
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
    schemes = ["".join("S" if s == SCHEME_SP2 else "F" for s in layer.scheme) for layer in ir.compute_layers()]
    assert [m["scheme"] for m in layers] == schemes
    assert {n.op_type for n in model.graph.node} >= {"Quant", "MatMul"}
    if seed == 4:  # conv1's 27-bit accumulator is split into convolutions exact in float32
        assert ir.layers[0].acc_bits > 25
        assert sum(n.op_type == "Conv" and n.name.startswith("conv1_") for n in model.graph.node) > 1


@pytest.mark.parametrize("kind, seed", [("resnet-tiny", 21), ("resnet-tiny", 3), ("concat", 0), ("concat", 3)])
def test_qonnx_export_of_a_graph_equals_the_reference(tmp_path, kind, seed):
    """Residual adds (identity and projection shortcuts), concats and a stream read twice, with
    merge inputs on different grids."""
    ir = random_graph_ir(seed, kind)
    merges = [layer for layer in ir.layers if layer.kind in ("add", "concat")]
    assert merges and all(m.kind == ("add" if kind == "resnet-tiny" else "concat") for m in merges)
    assert any(any(m.align) for m in merges)  # the inputs of a merge are on different grids
    x = real_inputs(ir, 200, seed)
    path = save_qonnx(ir, tmp_path / "model.onnx", batch=len(x))
    got = run_qonnx(path, x).astype(np.float64) / ir.output_fmt.scale
    np.testing.assert_array_equal(got, ref.infer(ir, ir.quantize_input(x)))
    ops = {n.op_type for n in ModelWrapper(str(path)).graph.node}
    assert ("Add" if kind == "resnet-tiny" else "Concat") in ops


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


# --- QONNX in --------------------------------------------------------------------------------

class _FloorUint(Uint8ActPerTensorFixedPoint):
    float_to_int_impl_type = FloatToIntImplType.FLOOR  # ties cannot differ: the IR floors exactly


class _FloorInt(Int8ActPerTensorFixedPoint):
    float_to_int_impl_type = FloatToIntImplType.FLOOR


def _brevitas(kind: str, relu_quant=_FloorUint, bias: bool = True) -> tuple[nn.Sequential, tuple[int, ...]]:
    """A small fixed-point Brevitas model (power-of-two weight, bias and activation scales),
    its activation scales set by a few training-mode passes."""
    torch.manual_seed(0)
    w = {"weight_quant": Int8WeightPerTensorFixedPoint, "weight_bit_width": 4, "bias": bias,
         "bias_quant": Int16Bias if bias else None, "return_quant_tensor": False}
    act = {"bit_width": 4, "return_quant_tensor": True}
    layers: list[nn.Module] = [QuantIdentity(act_quant=Int8ActPerTensorFixedPoint, **act)]
    if kind == "cnn":
        shape: tuple[int, ...] = (2, 8, 8)
        layers += [QuantConv2d(2, 4, 3, padding=1, **w), QuantReLU(act_quant=relu_quant, **act), nn.MaxPool2d(2),
                   nn.Flatten(), QuantLinear(4 * 4 * 4, 6, **w)]
    else:
        shape = (16,)
        layers += [QuantLinear(16, 12, **w), QuantReLU(act_quant=relu_quant, **act), QuantLinear(12, 6, **w)]
    model = nn.Sequential(*layers, QuantIdentity(act_quant=_FloorInt, bit_width=8))
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.rand(32, *shape) * 2 - 1)
    return model.eval(), shape


@pytest.mark.parametrize("kind, dynamo", [("cnn", True), ("mlp", False)])
def test_qonnx_import_equals_qonnx_execution(tmp_path, kind, dynamo):
    model, shape = _brevitas(kind, bias=kind == "cnn")  # the bias-free MLP exports Quant → Transpose → MatMul
    x = torch.rand(1000, *shape) * 2.4 - 1.2
    export_qonnx(model, x, str(tmp_path / "model.onnx"), dynamo=dynamo)
    ir = import_qonnx(tmp_path / "model.onnx")
    kinds = ["conv", "maxpool", "dense"] if kind == "cnn" else ["dense", "dense"]
    assert [layer.kind for layer in ir.layers] == kinds
    got = run_qonnx(tmp_path / "model.onnx", x.numpy()).astype(np.float64) / ir.output_fmt.scale
    want = ref.infer(ir, ir.quantize_input(x.numpy()))
    np.testing.assert_array_equal(got, want)
    assert len(np.unique(want)) > 20  # the outputs vary: the check is not vacuous


def test_msq_import_writes_a_run_that_hls_csim_serves(tmp_path):
    model, shape = _brevitas("mlp")
    export_qonnx(model, torch.rand(1, *shape), str(tmp_path / "mlp.onnx"), dynamo=False)
    res = CliRunner().invoke(main, ["import", str(tmp_path / "mlp.onnx"), "--out", str(tmp_path / "run")])
    assert res.exit_code == 0, res.output
    run = RunDir(tmp_path / "run")
    assert run.ir.source["qonnx"] == str(tmp_path / "mlp.onnx") and run.dataset is None
    project = run.write_hls(load_board("pynq-z2"))
    result = csim.c_simulate(project)
    assert result.samples > 0 and result.mismatches == 0
    res = CliRunner().invoke(main, ["export", str(run), "--format", "qonnx", "--batch", "50"])  # and back out
    assert res.exit_code == 0, res.output
    x = real_inputs(run.ir, 37, 1)
    got = run_qonnx(run.qonnx_onnx, x) / run.ir.output_fmt.scale
    np.testing.assert_array_equal(got, ref.infer(run.ir, run.ir.quantize_input(x)))


@pytest.mark.parametrize("case, message", [
    ("round", r"node '.*' \(Quant\): rounds ties half to even and row \d+ of layer 'dense1' can produce exact ties"),
    ("float_scale", r"node '.*' \(Quant\): activation scale .* is not a power of two"),
    ("sigmoid", r"node '.*' \(Sigmoid\) is not supported"),
])
def test_qonnx_import_names_the_node_that_cannot_map(tmp_path, case, message):
    relu = {"round": Uint8ActPerTensorFixedPoint, "float_scale": Uint8ActPerTensorFloat}.get(case, _FloorUint)
    model, shape = _brevitas("mlp", relu_quant=relu, bias=case != "sigmoid")  # a bias needs a quantized input
    if case == "sigmoid":
        model[2] = nn.Sigmoid()
    export_qonnx(model, torch.rand(1, *shape), str(tmp_path / "m.onnx"), dynamo=False)
    with pytest.raises(MSQError, match=message):
        import_qonnx(tmp_path / "m.onnx")
    res = CliRunner().invoke(main, ["import", str(tmp_path / "m.onnx"), "--out", str(tmp_path / "run")])
    assert res.exit_code == 2 and "m.onnx: node" in res.output
