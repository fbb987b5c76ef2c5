"""Intra-layer multi-precision in training: high-precision rows, their choice and the CLI."""
import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from msq import numerics
from msq import ref as reference
from msq.backends.torch_int import IntegerModel
from msq.cli import main
from msq.errors import MSQError
from msq.frontend.assignment import assign_schemes, quantization_error, row_sensitivity
from msq.frontend.models import QuantConfig, build_model
from msq.frontend.quantizer import msq_quantizers
from msq.frontend.export import export_model
from msq.frontend.train import TrainConfig, fit, load_run
from msq.ir import load_ir, save_ir
from msq.ir.model import ComputeLayer
from msq.ir.summary import summary_table
from random_models import extreme_inputs, random_ir

ROOT = Path(__file__).resolve().parent.parent


def _int_weights(tq, weight):
    view = (-1,) + (1,) * (weight.dim() - 1)
    with torch.no_grad():
        w = (tq.normalized_levels(weight) * tq.row_denominator().view(view)).numpy()
    assert np.allclose(w, np.round(w), atol=1e-4)
    return np.round(w).astype(int).reshape(len(w), -1)


@pytest.mark.parametrize("scheme", ["msq", "fixed"])
@pytest.mark.parametrize("fraction", [0.1, 0.5])
def test_high_rows_per_layer_and_their_levels(scheme, fraction):
    torch.manual_seed(0)
    model = build_model("cnn", (1, 8, 8), 10, QuantConfig(scheme=scheme, high_bits=8))
    sp2 = assign_schemes(model, 0.5, fraction, torch.rand(16, 1, 8, 8))
    for name, tq in msq_quantizers(model).items():
        rows, high = len(sp2[name]), tq.hi_mask.numpy()
        assert high.sum() == math.ceil(fraction * rows - 1e-9), name
        assert not (high & sp2[name]).any()  # a high row is never SP2
        low = rows - high.sum()
        assert sp2[name].sum() == (math.ceil(0.5 * low - 1e-9) if scheme == "msq" else 0)
        w = _int_weights(tq, model.get_submodule(name).weight)
        assert set(w[high].ravel()) <= set(numerics.integer_levels("fixed", 8).tolist())
        assert np.abs(w[high]).max() > numerics.fixed_max(4)  # really wider than the low rows
        for scheme_rows, kind in ((sp2[name], "sp2"), (~sp2[name] & ~high, "fixed")):
            assert set(w[scheme_rows].ravel()) <= set(numerics.integer_levels(kind, 4).tolist())


def test_sensitivity_weighs_errors_by_input_power():
    rng = np.random.default_rng(0)
    row = rng.uniform(-1, 1, size=16)
    err = np.abs(quantization_error(row[None, :], "fixed", 4)[0])
    worst, best = int(err.argmax()), int(err.argmin())
    swapped = row.copy()
    swapped[[worst, best]] = row[[best, worst]]  # the same weights: the large error on another input
    power = np.ones(16)
    power[worst] = 0.0  # that input is always zero
    score = row_sensitivity(np.stack([row, swapped]), ("fixed",), 4, power)
    assert score[1] > score[0]
    flat = row_sensitivity(np.stack([row, swapped]), ("fixed",), 4, np.ones(16))
    assert flat[0] == pytest.approx(flat[1])


def test_without_a_fraction_nothing_changes():
    torch.manual_seed(0)
    plain = build_model("mlp", (64,), 10, QuantConfig())
    assert TrainConfig().quant_config() == QuantConfig()
    assert not any("hi_mask" in k for k in plain.state_dict())
    assert all(tq.high_bits == 0 for tq in msq_quantizers(plain).values())


@pytest.mark.parametrize("cfg, message", [
    (dict(high_fraction=1.5), r"high-precision fraction must be a number in \[0, 1\]"),
    (dict(high_fraction=0.1, high_bits=4), "high_bits=4 must exceed the low weight precision wbits=4"),
    (dict(high_fraction=0.1, high_bits=9), r"high_bits=9 is out of range"),
    (dict(high_fraction=0.1, scheme="sp2"), "high-precision rows need --scheme msq or fixed"),
])
def test_bad_settings_are_refused(cfg, message):
    with pytest.raises(MSQError, match=message):
        TrainConfig(**cfg)


def test_cli_trains_high_rows_and_the_run_reloads(tmp_path):
    out = tmp_path / "run"
    res = CliRunner().invoke(main, ["train", "--scheme", "fixed", "--epochs", "3", "--high-bits", "8",
                                    "--high-fraction", "0.1", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "7 at 8 bits" in res.output  # ceil(0.1 * 64) rows of the first layer
    assignment = json.loads((out / "assignment.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    for name, rows in assignment.items():
        assert set(rows) == {"F", "H"} and rows.count("H") == metrics["sp2_fraction"]["per_layer"][name]["high_rows"]
    model, _ = load_run(out)
    for name, tq in msq_quantizers(model).items():
        assert "".join("H" if h else "F" for h in tq.hi_mask.tolist()) == assignment[name]


# --- the IR -------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(8))
def test_random_mixed_width_irs_reference_equals_torch_integer_path(seed, tmp_path):
    ir = random_ir(seed, high=True)
    assert all(layer.high_bits > layer.wbits for layer in ir.compute_layers())
    save_ir(ir, tmp_path / "ir")
    back = load_ir(tmp_path / "ir")
    x = extreme_inputs(back, n_random=16, seed=seed)
    ref = reference.infer(back, x)
    assert np.array_equal(IntegerModel(back)(x), ref)
    assert np.array_equal(reference.infer(ir, x), ref)
    for layer, inp in zip(back.layers, [x] + reference.infer(back, x, keep=True)[:-1]):
        if isinstance(layer, ComputeLayer):
            assert np.array_equal(layer.row_bits, ir.layers[back.layers.index(layer)].row_bits)
            acc = reference.accumulate(layer, inp).reshape(-1, layer.rows)
            for rows in (layer.high_rows, np.flatnonzero(~layer.high_mask)):
                if len(rows):  # each row group fits the accumulator derived for it alone
                    bits = layer.acc_bits_of(rows)
                    assert bits <= layer.acc_bits
                    assert np.abs(acc[:, rows]).max(initial=0) <= 2 ** (bits - 1)


def test_trained_multiprecision_model_deploys_as_trained(tmp_path):
    # an explicit SP2 ratio: the board's calibrated one may leave no fixed rows to check
    model, data, _, metrics = fit(TrainConfig(model="mlp", epochs=2, seed=1, high_fraction=0.2, sp2_ratio=0.6))
    ir = export_model(model, data.in_shape)
    for layer in ir.compute_layers():
        assert layer.high_bits == 8 and len(layer.high_rows) == math.ceil(0.2 * layer.rows - 1e-9)
        assert np.abs(layer.w_int[layer.high_rows]).max() > numerics.fixed_max(4)
        assert np.abs(layer.w_int[layer.fixed_rows]).max() <= numerics.fixed_max(4)
    x = ir.quantize_input(data.x_test)
    deployed = 100 * float((reference.predict(ir, x) == data.y_test).mean())
    assert abs(deployed - metrics["accuracy"]["test"]) <= 0.3
    assert np.array_equal(IntegerModel(ir)(x), reference.infer(ir, x))


@pytest.fixture()
def mixed_ir(tmp_path):
    path = tmp_path / "ir"
    save_ir(random_ir(3, kind="mlp", high=True), path)
    return path


def _edit(path, manifest_edit=None, arrays_edit=None):
    if manifest_edit:
        manifest = json.loads((path / "manifest.json").read_text())
        manifest_edit(manifest["layers"][0])
        (path / "manifest.json").write_text(json.dumps(manifest))
    if arrays_edit:
        with np.load(path / "arrays.npz") as f:
            arrays = dict(f)
        name = json.loads((path / "manifest.json").read_text())["layers"][0]["name"]
        arrays_edit(name, arrays)
        np.savez(path / "arrays.npz", **arrays)


def _high_row_to_sp2(name, arrays):
    arrays[f"{name}/scheme"][arrays[f"{name}/row_bits"].argmax()] = 1


def _low_row_too_wide(name, arrays):
    low = int(arrays[f"{name}/row_bits"].argmin())
    arrays[f"{name}/scheme"][low] = 0
    for key in ("sp2_sign", "sp2_k1", "sp2_k2"):
        arrays[f"{name}/{key}"][low] = 0
    arrays[f"{name}/fixed"][low] = 0
    arrays[f"{name}/fixed"][low, 0] = 127


@pytest.mark.parametrize("manifest_edit, arrays_edit, message", [
    (lambda e: e.pop("high_bits"), None, "array 'row_bits' needs field 'high_bits'"),
    (lambda e: e.update(high_bits=e["wbits"]), None, r"field 'high_bits'=\d is out of range"),
    (None, lambda n, a: a.pop(f"{n}/row_bits"), r"missing array '\w+/row_bits'"),
    (None, lambda n, a: a[f"{n}/row_bits"].__setitem__(0, 1), r"array 'row_bits' must hold \d \(wbits\) or \d"),
    (None, _high_row_to_sp2, "high-precision row as SP2"),
    (None, _low_row_too_wide, r"array 'fixed' has a weight outside the \d-bit range .* on a \d-bit row"),
])
def test_corrupted_row_bits_give_a_clear_error(mixed_ir, manifest_edit, arrays_edit, message):
    _edit(mixed_ir, manifest_edit, arrays_edit)
    with pytest.raises(MSQError, match=message):
        load_ir(mixed_ir)


def test_uniform_layers_write_no_row_bits(tmp_path):
    save_ir(random_ir(3, kind="mlp"), tmp_path / "ir")
    manifest = json.loads((tmp_path / "ir" / "manifest.json").read_text())
    assert not any("high_bits" in layer for layer in manifest["layers"])
    with np.load(tmp_path / "ir" / "arrays.npz") as f:
        assert not any(k.endswith("/row_bits") for k in f)
    assert all(layer.row_bits is None and layer.high_bits == 0 for layer in load_ir(tmp_path / "ir").compute_layers())


def test_summary_shows_high_rows():
    ir = random_ir(3, kind="mlp", high=True)
    layer = ir.compute_layers()[0]
    assert f"+{len(layer.high_rows)}H" in summary_table(ir) and f"{layer.wbits}/{layer.high_bits}" in summary_table(ir)


@pytest.mark.parametrize("dataset, shape", [("digits", (64,)), ("mnist5k", (1, 28, 28))])
def test_accuracy_benchmark_compares_precisions_at_equal_average_bits(dataset, shape):
    spec = importlib.util.spec_from_file_location("accuracy_bench", ROOT / "benchmarks" / "accuracy.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    variants = bench.precision_variants("mlp", dataset)
    layerwise = variants[1][2](shape, 10, QuantConfig(scheme="fixed"), False)
    bits = [tq.bits for tq in msq_quantizers(layerwise).values()]
    assert bits == [8, 4, 8]  # first and last layer wide
    equal = next(over["high_fraction"] for label, over, _ in variants if "equal bits" in label)
    intra = build_model("mlp", shape, 10, QuantConfig(scheme="fixed", high_bits=8))
    assign_schemes(intra, 0.0, equal, torch.rand(8, *shape))
    assert bench.average_bits(intra) == pytest.approx(bench.average_bits(layerwise), abs=0.05)
