"""The torch.fx front end: a model with its own forward() exports exactly as its nn.Sequential
equivalent, and an unsupported op is named with the model's source line and the alternative."""
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from msq.errors import MSQError
from msq.frontend import models
from msq.frontend.checks import check_model
from msq.frontend.export import export_model
from msq.frontend.models import QuantConfig
from msq.ir.io import save_ir
from random_models import random_model

CFG = QuantConfig()


class OwnForward(nn.Module):
    """The layers of an nn.Sequential called by a hand-written forward(); ``view`` replaces
    nn.Flatten and a plain ReLU may stand before each QuantReLU."""

    def __init__(self, seq: nn.Sequential, plain_relu: bool):
        super().__init__()
        self.body = nn.ModuleList(seq)
        self.plain_relu = plain_relu

    def forward(self, x):
        for layer in self.body:
            if isinstance(layer, nn.Flatten):
                x = x.view(x.size(0), -1)
                continue
            if self.plain_relu and type(layer).__name__ == "QuantReLU":
                x = F.relu(x)
            x = layer(x)
        return x


def _ir_files(ir, path):
    save_ir(ir, path)
    arrays = np.load(path / "arrays.npz")
    return json.loads((path / "manifest.json").read_text()), {k: arrays[k] for k in arrays.files}


@pytest.mark.parametrize("seed,kind,plain_relu", [(1, "cnn", False), (2, "mlp", True), (3, "cnn", True)])
def test_own_forward_exports_the_same_ir_as_sequential(tmp_path, seed, kind, plain_relu):
    seq, shape = random_model(seed, kind)
    manifest, arrays = _ir_files(export_model(seq, shape), tmp_path / "seq")
    own, own_arrays = _ir_files(export_model(OwnForward(seq, plain_relu), shape), tmp_path / "own")
    assert own == manifest
    assert sorted(own_arrays) == sorted(arrays) and all(np.array_equal(own_arrays[k], arrays[k]) for k in arrays)


class Doubles(nn.Module):
    def __init__(self):
        super().__init__()
        self.inp, self.fc, self.out = models.input_quant(CFG, False), models.linear(CFG, 64, 10), models.logits_quant(CFG)

    def forward(self, x):
        x = self.inp(x).flatten(1)
        return self.out(self.fc(x) * 2)


def test_unsupported_op_names_op_source_line_and_alternative():
    with pytest.raises(MSQError) as err:
        export_model(Doubles(), (1, 8, 8))
    msg = str(err.value)
    assert "'mul' (call_function mul) at test_trace.py:" in msg and "`return self.out(self.fc(x) * 2)`" in msg
    assert "is not supported: write the residual add as x + y" in msg


class PlainLinear(Doubles):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        return self.out(self.fc(self.inp(x).flatten(1)))


def test_unsupported_layer_in_own_forward_names_its_source_line():
    with pytest.raises(MSQError, match=r"layer 'fc' \(Linear\) at test_trace.py:\d+ `return self.out\(self.fc\(self.inp"
                                       r"\(x\).flatten\(1\)\)\)` is not supported: use brevitas.nn.QuantLinear"):
        check_model(PlainLinear(), (1, 8, 8), 10, CFG)


class LoneRelu(Doubles):
    def forward(self, x):
        return F.relu(self.out(self.fc(self.inp(x).flatten(1))))


def test_plain_relu_not_before_a_quantizer_is_refused_with_the_fix():
    with pytest.raises(MSQError, match=r"'relu' \(relu\) at test_trace.py:\d+ .* is not supported: use "
                                       r"brevitas.nn.QuantReLU"):
        check_model(LoneRelu(), (1, 8, 8), 10, CFG)


class Branchy(Doubles):
    def forward(self, x):
        x = self.inp(x).flatten(1)
        return self.out(self.fc(x) if x.sum() > 0 else self.fc(-x))


def test_untraceable_forward_is_an_msq_error():
    with pytest.raises(MSQError, match="cannot be traced by torch.fx .*must not branch on tensor values"):
        check_model(Branchy(), (1, 8, 8), 10, CFG)


def test_trained_like_own_forward_model_predicts_like_its_sequential():
    seq, shape = random_model(4, "cnn")
    own = OwnForward(seq, plain_relu=True).eval()
    x = torch.rand((5,) + shape)
    with torch.no_grad():
        assert torch.equal(own(x), seq.eval()(x))
