"""The IR: export, the NumPy reference, the torch integer path, save/load and validation."""
import json
import shutil

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from msq import ref as reference
from msq.backends.torch_int import IntegerModel
from msq.errors import MSQError
from msq.frontend.data import load_digits
from msq.ir import arith, load_ir, save_ir
from random_models import extreme_inputs, random_ir, random_model

from msq.frontend.export import export_model


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1))
def test_frozen_torch_equals_reference_on_random_models(seed):
    ir = random_ir(seed)
    x = extreme_inputs(ir, n_random=16, seed=seed)
    ref = reference.infer(ir, x)
    got = IntegerModel(ir)(x)
    assert got.dtype == np.int64 and ref.dtype == np.int64
    assert np.array_equal(got, ref)
    assert ref.min() >= ir.output_fmt.lo and ref.max() <= ir.output_fmt.hi


@settings(max_examples=25, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**31 - 1))
def test_accumulators_never_exceed_their_declared_width(seed):
    ir = random_ir(seed)
    x = extreme_inputs(ir, n_random=16, seed=seed)
    for layer, inp in zip(ir.layers, [x] + reference.infer(ir, x, keep=True)[:-1]):
        if layer.kind in ("dense", "conv"):
            acc = reference.accumulate(layer, inp)
            bound = 2 ** (layer.acc_bits - 1)
            assert -bound <= acc.min() and acc.max() < bound, layer.name
            total = acc.astype(object) * layer.mult.astype(object) + layer.bias.astype(object)
            bound = 2 ** (layer.requant_bits - 1)
            assert all(-bound <= int(v) < bound for v in total.ravel()), layer.name


def test_reference_matches_fake_quant_model_closely(cnn_demo):
    """Integer inference agrees with the Brevitas fake-quant model on nearly every digit."""
    run, ir = cnn_demo
    from msq.frontend.train import load_run

    model, _ = load_run(run)
    data = load_digits()
    with torch.no_grad():
        fake = model(torch.as_tensor(data.x_test)).argmax(1).numpy()
    deployed = reference.predict(ir, ir.quantize_input(data.x_test))
    assert np.mean(fake == deployed) >= 0.98


def test_frozen_torch_equals_reference_on_demo_models(mlp_demo, cnn_demo):
    from msq import ref

    data = load_digits()
    for _, ir in (mlp_demo, cnn_demo):
        x = np.concatenate([ir.quantize_input(data.x_test), extreme_inputs(ir)])
        assert np.array_equal(IntegerModel(ir)(x), ref.infer(ir, x))


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_save_load_round_trip_is_identical(tmp_path, seed):
    ir = random_ir(seed)
    save_ir(ir, tmp_path / "ir")
    back = load_ir(tmp_path / "ir")
    assert json.loads((tmp_path / "ir" / "manifest.json").read_text())["version"] == 1
    assert (back.name, back.input_shape, back.input_fmt) == (ir.name, ir.input_shape, ir.input_fmt)
    assert len(back.layers) == len(ir.layers)
    for a, b in zip(ir.layers, back.layers):
        for field, value in vars(a).items():
            other = getattr(b, field)
            if isinstance(value, np.ndarray):
                assert np.array_equal(value, other) and other.dtype == np.int64, field
            else:
                assert value == other, field
    save_ir(back, tmp_path / "again")
    assert (tmp_path / "ir" / "manifest.json").read_text() == (tmp_path / "again" / "manifest.json").read_text()


@pytest.fixture()
def saved(tmp_path, cnn_demo):
    path = tmp_path / "ir"
    shutil.copytree(cnn_demo[0] / "ir", path)
    return path


def _edit_manifest(path, edit):
    manifest = json.loads((path / "manifest.json").read_text())
    edit(manifest)
    (path / "manifest.json").write_text(json.dumps(manifest))


def _edit_array(path, key, edit):
    with np.load(path / "arrays.npz") as f:
        arrays = dict(f)
    arrays[key] = edit(arrays[key])
    np.savez(path / "arrays.npz", **arrays)


@pytest.mark.parametrize("edit, message", [
    (lambda m: m.update(version=99), "unknown version 99"),
    (lambda m: m.update(schema="onnx"), "field 'schema'"),
    (lambda m: m["layers"][0].pop("acc_bits"), r"layer 0 'conv1': missing field 'acc_bits'"),
    (lambda m: m["layers"][0].update(wbits=4.5), r"layer 0 'conv1': field 'wbits' must be an integer"),
    (lambda m: m["layers"][0].update(out_shape=[8, 8, 9]), r"layer 0 'conv1': array 'conv1/scheme' has shape"),
    (lambda m: m["layers"][2].update(in_shape=[4, 4, 9]), r"layer 2 'conv2'"),
    (lambda m: m["layers"][0].update(acc_bits=3), r"'acc_bits'=3 can overflow"),
    (lambda m: m["layers"][1].update(kind="lstm"), r"unknown kind 'lstm'"),
    (lambda m: m["layers"][0]["in_fmt"].update(signed="yes"), r"field 'signed' must be true or false"),
])
def test_corrupted_manifest_gives_a_clear_error(saved, edit, message):
    _edit_manifest(saved, edit)
    with pytest.raises(MSQError, match=message):
        load_ir(saved)


@pytest.mark.parametrize("key, edit, message", [
    ("conv1/fixed", lambda a: a + 100, "outside the 4-bit range"),
    ("conv1/sp2_k1", lambda a: a + 7, "code outside"),
    ("conv1/bias", lambda a: a.astype(np.float64) + 0.5, "must be integer"),
    ("conv1/mult", lambda a: a[:-1], "has shape"),
    ("dense1/shift", lambda a: a - 100, "'shift' must lie in"),
    ("dense1/scheme", lambda a: a + 2, "0 \\(fixed\\) or 1 \\(SP2\\)"),
])
def test_corrupted_arrays_give_a_clear_error(saved, key, edit, message):
    _edit_array(saved, key, edit)
    with pytest.raises(MSQError, match=rf"IR .*'{key.split('/')[0]}'.*{message}"):
        load_ir(saved)


def test_missing_array_and_missing_ir_are_named(saved, tmp_path):
    with np.load(saved / "arrays.npz") as f:
        arrays = {k: v for k, v in f.items() if k != "conv2/bias"}
    np.savez(saved / "arrays.npz", **arrays)
    with pytest.raises(MSQError, match="missing array 'conv2/bias'"):
        load_ir(saved)
    with pytest.raises(MSQError, match="no manifest.json"):
        load_ir(tmp_path / "nothing")


def test_requantize_rounds_half_up_and_clamps():
    acc = np.array([-3, -2, -1, 0, 1, 2, 3, 1000, -1000])
    got = arith.requantize(acc, 1, 1, 0, -8, 7)  # acc / 2, ties toward +inf
    assert got.tolist() == [-1, -1, 0, 0, 1, 1, 2, 7, -8]
    assert arith.requantize(np.array([5]), 3, 0, 0, -100, 100).tolist() == [15]
    # the bias is added after the multiplier, in 2^-shift steps: (5*3 + 6) / 4 = 5.25 → 5
    assert arith.requantize(np.array([5]), 3, 2, 6, -100, 100).tolist() == [5]
    assert arith.requantize(np.array([5]), 3, 2, 7, -100, 100).tolist() == [6]  # 5.5 rounds up


@pytest.mark.parametrize("real", [1e-7, 0.013, 0.5, 1.0, 3.7, -0.25, 1234.5])
def test_multiplier_is_accurate_and_in_range(real):
    m, n = arith.multiplier(real)
    assert abs(m) < 2 ** (arith.MULT_BITS - 1) and 0 <= n <= arith.MAX_SHIFT
    assert abs(m * 2.0 ** -n - real) <= abs(real) * 2.0 ** -(arith.MULT_BITS - 2)


def test_export_names_the_layer_that_cannot_be_exported():
    model, shape = random_model(5, "cnn")
    model[1], model[2] = model[2], model[1]  # BatchNorm before its conv
    with pytest.raises(MSQError, match="BatchNorm"):
        export_model(model, shape)
