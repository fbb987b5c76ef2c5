"""The frozen model as a PyTorch integer network: torch's own conv/linear/pool kernels in torch's
native (N, C, H, W) layout, on integer values.

It is built from the IR only and must give exactly the reference's integers: it checks, with
independent kernels and the opposite tensor layout, that export's weight permutations, padding,
flatten order and requantization mean what the reference says they mean. Products and sums run in
float64, exact because every partial sum fits the accumulator (at most ``MAX_ACC_BITS`` < 53
bits); requantization runs in int64.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from msq.ir.model import INPUT, ComputeLayer, IRModel, Layer, MergeLayer, PoolLayer


def _requantize(acc: torch.Tensor, mult: torch.Tensor, shift: torch.Tensor, bias: torch.Tensor, lo: int,
                hi: int) -> torch.Tensor:
    total = acc.to(torch.int64) * mult + bias
    half = torch.where(shift > 0, torch.ones_like(shift) << (shift - 1).clamp(min=0), torch.zeros_like(shift))
    return torch.clamp((total + half) >> shift, lo, hi)


class IntegerLayer(nn.Module):
    """One IR layer computed with torch kernels on (N, C, H, W) or (N, F) integer tensors."""

    def __init__(self, layer: Layer):
        super().__init__()
        self.layer = layer
        if isinstance(layer, ComputeLayer):
            w = torch.as_tensor(layer.w_int, dtype=torch.float64)
            # stream order (rows, kh, kw, C) → torch order (rows, C, kh, kw)
            self.register_buffer("weight", w.permute(0, 3, 1, 2).contiguous() if layer.kind == "conv" else w)
            self.register_buffer("bias", torch.as_tensor(layer.bias, dtype=torch.int64))
            self.register_buffer("mult", torch.as_tensor(layer.mult, dtype=torch.int64))
            self.register_buffer("shift", torch.as_tensor(layer.shift, dtype=torch.int64))

    def forward(self, x: torch.Tensor, *more: torch.Tensor) -> torch.Tensor:
        layer = self.layer
        fmt = layer.out_fmt
        if isinstance(layer, MergeLayer):  # torch's layout: channels are dim 1
            aligned = [v * 2.0**a for v, a in zip((x, *more), layer.align)]
            total = torch.stack(aligned).sum(dim=0) if layer.kind == "add" else torch.cat(aligned, dim=1)
            return _requantize(total, torch.tensor(layer.mult), torch.tensor(layer.shift), torch.tensor(0),
                               fmt.lo, fmt.hi).to(torch.float64)
        if isinstance(layer, ComputeLayer):
            if layer.kind == "conv":
                acc = F.conv2d(x, self.weight, stride=layer.stride, padding=layer.padding)
                view = (1, -1, 1, 1)
            else:
                if x.dim() == 4:  # a flattened image: the IR's dense weights expect (H, W, C) order
                    x = x.permute(0, 2, 3, 1).reshape(len(x), -1)
                acc = F.linear(x, self.weight)
                view = (1, -1)
            y = _requantize(acc, self.mult.view(view), self.shift.view(view), self.bias.view(view), fmt.lo, fmt.hi)
            return y.to(torch.float64)
        assert isinstance(layer, PoolLayer)
        if layer.kind == "maxpool":
            return F.max_pool2d(x, layer.kernel, layer.stride)
        window_sum = F.avg_pool2d(x, layer.kernel, layer.stride, divisor_override=1)
        shift = torch.tensor(layer.shift)
        return _requantize(window_sum, torch.tensor(layer.mult), shift, torch.tensor(0), fmt.lo, fmt.hi).to(torch.float64)


class IntegerModel(nn.Module):
    """The whole IR as a torch module: integer stream tensors in, integer outputs out."""

    def __init__(self, ir: IRModel):
        super().__init__()
        self.ir = ir
        self.layers = nn.ModuleList(IntegerLayer(layer) for layer in ir.layers)

    @torch.no_grad()
    def forward(self, x_int: np.ndarray | torch.Tensor) -> np.ndarray:
        """Takes the reference's input layout ((N, H, W, C) or (N, F)); returns its output layout."""
        x = torch.as_tensor(np.asarray(x_int), dtype=torch.float64)
        x = x.reshape((len(x),) + tuple(self.ir.input_shape))
        if x.dim() == 4:
            x = x.permute(0, 3, 1, 2)
        values = {INPUT: x}
        for i, layer in enumerate(self.layers):
            x = layer(*(values[name] for name in self.ir.inputs_of(i)))
            values[self.ir.layers[i].name] = x
        if x.dim() == 4:
            x = x.permute(0, 2, 3, 1)
        return x.to(torch.int64).numpy()
