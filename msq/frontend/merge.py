"""Residual add and channel concat that train on what the hardware computes.

The integer model aligns a merge's inputs to a common fraction and requantizes the sum (or each
value) to the format of the activation quantizer after it, rounding half up (docs/ir.md § add
and concat). Brevitas' quantizer rounds half to even, and a sum of values on a fine grid lands
on ties of the coarser output grid often, so the float model and the integer model would
disagree image by image. :class:`HalfUp` is a forward hook on that quantizer: its forward gives
``clamp(floor(x / scale + 1/2), lo, hi) · scale`` (exact in floating point: the inputs are
multiples of powers of two and the scale is one) and passes the quantizer's gradient
(straight-through).
"""
from __future__ import annotations

import torch
from brevitas.nn import QuantIdentity, QuantReLU
from torch import nn

from msq.frontend.avgpool import FormatTap


class HalfUp:
    """Forward hook on an activation quantizer after an add/concat: round half up, not to even.
    A callable object (not a closure) so a deep copy of the model copies it."""

    def __init__(self, tap: FormatTap):
        self.tap = tap

    def __call__(self, module: nn.Module, inputs, output):
        if self.tap.fmt is None or not isinstance(output, torch.Tensor):
            return None
        scale, bits, signed = self.tap.fmt
        lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
        with torch.no_grad():
            exact = (torch.floor(inputs[0].detach().double() / scale + 0.5).clamp(lo, hi) * scale).to(output.dtype)
        return output + (exact - output).detach()


def exact_merges(graph_ops: list) -> None:
    """Hook :class:`HalfUp` onto the activation quantizer that closes each add/concat of the
    traced graph ``graph_ops`` (directly, or after a ReLU); export refuses any other."""
    by_node = {op.node: op for op in graph_ops}
    for op in graph_ops:
        if op.kind not in ("add", "concat"):
            continue
        users = list(op.node.users)
        quant = by_node[users[0]] if len(users) == 1 else None
        if quant is not None and quant.kind == "relu":
            users = list(quant.node.users)
            quant = by_node[users[0]] if len(users) == 1 else None
        if quant is not None and isinstance(quant.module, (QuantReLU, QuantIdentity)) \
                and not any(isinstance(h, HalfUp) for h in quant.module._forward_hooks.values()):
            tap = FormatTap()
            quant.module.act_quant.register_forward_hook(tap)
            quant.module.register_forward_hook(HalfUp(tap))
