"""Intra-layer multi-precision in training: high-precision rows, their choice and the CLI."""
import json
import math

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from msq import numerics
from msq.cli import main
from msq.errors import MSQError
from msq.frontend.assignment import assign_schemes, quantization_error, row_sensitivity
from msq.frontend.models import QuantConfig, build_model
from msq.frontend.quantizer import msq_quantizers
from msq.frontend.train import TrainConfig, load_run


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
