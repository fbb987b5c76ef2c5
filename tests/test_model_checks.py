"""Model checks before training: each bad model fails before the first epoch, naming the layer and the fix."""
import pytest
from brevitas.nn import QuantIdentity, QuantLinear, QuantReLU
from torch import nn

from msq.errors import MSQError
from msq.frontend import models
from msq.frontend.models import QuantConfig
from msq.frontend.train import TrainConfig, fit

CFG = QuantConfig()
FIXED_POINT = "a power-of-two scale: msq.frontend.models.relu"


def _head(*layers):
    return lambda in_shape, classes, cfg, signed: nn.Sequential(models.input_quant(cfg, signed), *layers)


BAD = {
    "relu": (_head(nn.Flatten(), models.linear(CFG, 64, 10), nn.ReLU()),
             r"layer '3' \(ReLU\) is not supported: use brevitas.nn.QuantReLU\(act_quant=Uint8ActPerTensorFixedPoint"),
    "float_scale": (_head(nn.Flatten(), models.linear(CFG, 64, 10), QuantReLU()),
                    r"layer '3' \(QuantReLU\) uses activation quantizer Uint8ActPerTensorFloat, whose scale is FP, "
                    r"not a power of two .*" + FIXED_POINT),
    "float_input": (lambda s, k, cfg, signed: nn.Sequential(QuantIdentity(), nn.Flatten(), models.linear(CFG, 64, 10),
                                                            models.logits_quant(cfg)),
                    r"layer '0' \(QuantIdentity\) uses activation quantizer Int8ActPerTensorFloat"),
    "in_features": (_head(nn.Flatten(), models.linear(CFG, 60, 10), models.logits_quant(CFG)),
                    r"layer '2' \(QuantLinear\) cannot take its input, shaped \(64,\) per sample .*: set in_features=64"),
    "flatten": (_head(models.linear(CFG, 64, 10), models.logits_quant(CFG)),
                r"layer '1' \(QuantLinear\) cannot take its input, shaped \(1, 8, 8\) .*: put nn.Flatten\(\) before it"),
    "channels": (_head(models.conv(CFG, 3, 4), models.relu(CFG), nn.Flatten(), models.linear(CFG, 256, 10),
                       models.logits_quant(CFG)),
                 r"layer '1' \(QuantConv2d\) cannot take its input, shaped \(1, 8, 8\) .*: set in_channels=1"),
    "batchnorm": (_head(models.conv(CFG, 1, 4), nn.BatchNorm2d(5), models.relu(CFG), nn.Flatten(),
                        models.linear(CFG, 256, 10), models.logits_quant(CFG)),
                  r"layer '2' \(BatchNorm2d\) cannot take its input.*: set num_features=4"),
    "classes": (_head(nn.Flatten(), models.linear(CFG, 64, 7), models.logits_quant(CFG)),
                r"outputs \(7,\) per sample; the dataset has 10 classes: make the last layer's out_features 10"),
    "no_input_quant": (lambda s, k, cfg, signed: nn.Sequential(nn.Flatten(), models.linear(cfg, 64, 10),
                                                               models.logits_quant(cfg)),
                       r"layer '0' \(Flatten\) is the first layer: .*msq.frontend.models.input_quant"),
    "no_act_between": (_head(nn.Flatten(), models.linear(CFG, 64, 10), models.linear(CFG, 10, 10),
                             models.logits_quant(CFG)),
                       r"model check before training: layer '3' follows layer 'dense1' without an activation "
                       r"quantizer: put one between them"),
    "plain_linear": (_head(nn.Flatten(), nn.Linear(64, 10), models.logits_quant(CFG)),
                     r"layer '2' \(Linear\) is not supported: use brevitas.nn.QuantLinear with "
                     r"weight_quant=msq.frontend.quantizer.MSQWeightQuant"),
    "brevitas_weight_quant": (_head(nn.Flatten(), QuantLinear(64, 10, bias=True), models.logits_quant(CFG)),
                              r"layer '2' \(QuantLinear\) has no MSQ weight quantizer: pass "
                              r"weight_quant=msq.frontend.quantizer.MSQWeightQuant"),
    "dropout": (_head(nn.Dropout(), nn.Flatten(), models.linear(CFG, 64, 10), models.logits_quant(CFG)),
                r"layer '1' \(Dropout\) is not supported: remove it"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_model_fails_before_the_first_epoch(case):
    factory, message = BAD[case]
    epochs = []
    with pytest.raises(MSQError, match=message):
        fit(TrainConfig(epochs=1), progress=epochs.append, factory=factory)
    assert epochs == []


def test_float_baseline_skips_the_quantizer_checks():
    factory, _ = BAD["float_scale"]
    model, _, _, metrics = fit(TrainConfig(epochs=1, scheme="float"), factory=factory)
    assert metrics["accuracy"]["kind"] == "float"
