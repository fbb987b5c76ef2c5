"""Average pooling that trains on what the hardware computes.

The integer model requantizes a window's sum back to its input's format (docs/ir.md § avgpool:
``y = clamp(round_half_up(sum · mult · 2^-shift), lo, hi)`` with ``(mult, shift) =
arith.multiplier(1 / area)``). A plain ``nn.AvgPool2d`` passes the exact mean on instead, with
two more fraction bits than the hardware keeps, so fake-quant accuracy was not the accuracy
deployed. :class:`IntegerAvgPool2d` computes the hardware's integers in the forward pass (float64,
exact) and passes the gradient of the plain mean (straight-through).

Its input format is the output format of the activation quantizer before it, read from that
quantizer's last output by a :class:`FormatTap` (a hook, so nothing is added to the state dict
and a checkpoint of a model with plain ``nn.AvgPool2d`` still loads).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from brevitas.nn import QuantIdentity, QuantReLU
from brevitas.quant_tensor import QuantTensor
from torch import nn

from msq.ir import arith

PASS_THROUGH = (nn.MaxPool2d, nn.AvgPool2d)  # layers that keep their input's format


class FormatTap:
    """Forward hook on an activation quantizer: remembers the (scale, bits, signed) of its last
    output (None while quantization is off). A callable object, not a closure, so a deep copy of
    the model copies it along with the modules it serves."""

    def __init__(self):
        self.fmt: tuple[float, int, bool] | None = None

    def __call__(self, module: nn.Module, inputs, output) -> None:
        if isinstance(output, QuantTensor):
            self.fmt = (float(output.scale.detach()), int(output.bit_width.detach()), bool(output.signed))
        else:
            self.fmt = None


class IntegerAvgPool2d(nn.AvgPool2d):
    """``nn.AvgPool2d`` whose forward gives the integer model's result (the mean rounded half up
    to the input's step and clamped); still an ``nn.AvgPool2d`` for export."""

    def __init__(self, pool: nn.AvgPool2d, tap: FormatTap):
        super().__init__(pool.kernel_size, pool.stride, pool.padding, pool.ceil_mode, pool.count_include_pad,
                         pool.divisor_override)
        self.tap = tap

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = super().forward(x)
        if self.tap.fmt is None:
            return mean
        scale, bits, signed = self.tap.fmt
        kh, kw = (self.kernel_size, self.kernel_size) if isinstance(self.kernel_size, int) else self.kernel_size
        mult, shift = arith.multiplier(1.0 / (kh * kw))
        lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
        with torch.no_grad():
            x_int = torch.round(x.detach().double() / scale)
            window_sum = F.avg_pool2d(x_int, self.kernel_size, self.stride, divisor_override=1)
            half = 2 ** (shift - 1) if shift > 0 else 0
            y_int = torch.floor((window_sum * mult + half) / 2.0**shift).clamp(lo, hi)
            exact = (y_int * scale).to(mean.dtype)
        return mean + (exact - mean).detach()


def integer_avgpools(model: nn.Module, graph_ops: list) -> None:
    """Replace each ``nn.AvgPool2d`` that follows an activation quantizer (through other pools) in
    the traced graph ``graph_ops`` (msq.frontend.trace.ops) with an :class:`IntegerAvgPool2d`
    reading that quantizer's format. A pool with no quantizer before it is left alone; export
    refuses it (and the model checks, before training)."""
    by_node = {op.node: op for op in graph_ops}
    for op in graph_ops:
        if type(op.module) is not nn.AvgPool2d:
            continue
        source = by_node.get(op.tensor_args()[0]) if op.tensor_args() else None
        while source is not None and isinstance(source.module, PASS_THROUGH):
            source = by_node.get(source.tensor_args()[0])
        if source is not None and isinstance(source.module, (QuantReLU, QuantIdentity)):
            tap = FormatTap()
            source.module.act_quant.register_forward_hook(tap)
            parent, _, attr = op.name.rpartition(".")
            setattr(model.get_submodule(parent), attr, IntegerAvgPool2d(op.module, tap))
