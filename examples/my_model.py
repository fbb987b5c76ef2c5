"""Bring your own model: a factory MSQ calls as ``make_model(in_shape, classes, cfg, signed_input)``.

Run it end to end with:  msq flow --model examples/my_model.py:make_model --out runs/mine
Use the builders of msq.frontend.models (they attach MSQ's weight quantizer and Brevitas'
fixed-point activation quantizers) or Brevitas layers directly; any unsupported layer is named.
"""
from torch import nn

from msq.frontend import models
from msq.frontend.models import QuantConfig


def make_model(in_shape: tuple[int, ...], classes: int, cfg: QuantConfig, signed_input: bool) -> nn.Sequential:
    """A small conv net: one 3x3 conv with BatchNorm, average pooling, then two dense layers."""
    cin, h, w = in_shape
    return nn.Sequential(
        models.input_quant(cfg, signed_input),
        models.conv(cfg, cin, 6), nn.BatchNorm2d(6), models.relu(cfg), nn.AvgPool2d(2),
        nn.Flatten(),
        models.linear(cfg, 6 * (h // 2) * (w // 2), 24), models.relu(cfg),
        models.linear(cfg, 24, classes), models.logits_quant(cfg),
    )
