"""The MSQ weight quantizer, as a Brevitas weight quantizer.

A Brevitas user keeps their model and swaps the weight quantizer::

    from brevitas.nn import QuantLinear
    from msq.frontend.quantizer import MSQWeightQuant
    fc = QuantLinear(64, 10, bias=True, weight_quant=MSQWeightQuant, weight_bit_width=4)

Each output row (neuron or conv filter) carries its own scheme (``sp2_mask``: True = SP2, or P2
for the P2 baseline; False = fixed point) and its own learnable scale ``alpha_r``, initialised at
the MSE-optimal value for that row's scheme. The forward pass is
``w_q = alpha_r * project(clamp(w / alpha_r, -1, 1))`` with a straight-through projection, so
gradients reach both the weights (inside the clip range) and the scales (LSQ-style).

Intra-layer multi-precision (``high_bits`` > 0): a second mask ``hi_mask`` marks the rows that run
at ``high_bits`` fixed point instead of the layer's low precision (msq/frontend/assignment.py
chooses them); a high row is never SP2.
"""
from __future__ import annotations

import numpy as np
import torch
from brevitas.inject import ExtendedInjector
from brevitas.proxy import WeightQuantProxyFromInjector
from torch import nn

from msq import numerics
from msq.errors import MSQError
from msq.numerics import RowScheme

# Training schemes (``--scheme``): 'float' trains without quantization, 'fixed'/'sp2'/'p2' give every
# row that row scheme, 'msq' mixes SP2 and fixed rows per layer.
TRAINING_SCHEMES = ("float", "fixed", "p2", "sp2", "msq")
QUANTIZED_SCHEMES = TRAINING_SCHEMES[1:]
_MIN_SCALE = 1e-8


class MSQTensorQuant(nn.Module):
    """Brevitas ``tensor_quant``: per-row mixed-scheme weight fake quantization.

    Returns Brevitas' ``(value, scale, zero_point, bit_width)``: ``value / scale`` is the integer
    weight ``w_int`` of docs/ir.md (per-row ``scale = alpha_r / D_r``).
    """

    def __init__(self, tracked_parameter_list: list[torch.Tensor], bit_width: int, msq_scheme: str,
                 high_bits: int = 0):
        super().__init__()
        if msq_scheme not in QUANTIZED_SCHEMES:
            raise MSQError(f"unknown weight scheme {msq_scheme!r}: expected one of {', '.join(QUANTIZED_SCHEMES)}")
        weight = tracked_parameter_list[0]
        self.bits = numerics.check_bits(int(bit_width))
        self.scheme = msq_scheme
        self.alt_scheme = RowScheme.P2 if msq_scheme == RowScheme.P2 else RowScheme.SP2
        rows = weight.shape[0]
        self.register_buffer("sp2_mask", torch.full((rows,), msq_scheme in (RowScheme.SP2, RowScheme.P2), dtype=torch.bool))
        self.scale = nn.Parameter(torch.ones(rows))
        self.register_buffer("lv_fixed", numerics.level_tensor(RowScheme.FIXED, self.bits), persistent=False)
        self.register_buffer("lv_alt", numerics.level_tensor(self.alt_scheme, self.bits), persistent=False)
        self.d_fixed = float(numerics.denominator(RowScheme.FIXED, self.bits))
        self.d_alt = float(numerics.denominator(self.alt_scheme, self.bits))
        self.int_bits = max(self.bits, int(self.d_alt).bit_length() + 1)
        self.high_bits = check_high_bits(int(high_bits), self.bits)
        if self.high_bits:  # only then: a model without high rows keeps its state dict unchanged
            self.register_buffer("hi_mask", torch.zeros(rows, dtype=torch.bool))
            self.register_buffer("lv_hi", numerics.level_tensor(RowScheme.FIXED, self.high_bits), persistent=False)
            self.d_hi = float(numerics.denominator(RowScheme.FIXED, self.high_bits))
            self.int_bits = max(self.int_bits, self.high_bits)
        self.reset_scales(weight.detach())

    def high_rows(self) -> torch.Tensor:
        """Per row, True if it runs at ``high_bits`` (all False without intra-layer multi-precision)."""
        return self.hi_mask if self.high_bits else torch.zeros_like(self.sp2_mask)

    def row_bits(self) -> np.ndarray:
        """Per row, its weight bit width."""
        return np.where(self.high_rows().cpu().numpy(), self.high_bits, self.bits).astype(np.int64)

    @torch.no_grad()
    def reset_scales(self, weight: torch.Tensor, rows: torch.Tensor | None = None) -> None:
        """Set ``alpha_r`` to the MSE-optimal value for each row's scheme (all rows, or ``rows``)."""
        w = weight.detach().reshape(weight.shape[0], -1).cpu().numpy()
        mask = self.sp2_mask.cpu().numpy()
        high = self.high_rows().cpu().numpy()
        todo = np.ones_like(mask) if rows is None else rows.cpu().numpy().astype(bool)
        alpha = self.scale.detach().cpu().numpy().copy()
        for scheme, sel, bits in ((self.alt_scheme, mask & ~high, self.bits), (RowScheme.FIXED, ~mask & ~high, self.bits),
                                  (RowScheme.FIXED, high, self.high_bits)):
            pick = sel & todo
            if pick.any():
                alpha[pick] = numerics.mse_optimal_scale(w[pick], scheme, bits)[0]
        self.scale.copy_(torch.as_tensor(alpha, dtype=self.scale.dtype))

    def row_alpha(self) -> torch.Tensor:
        """The positive per-row scale alpha_r."""
        return self.scale.abs().clamp_min(_MIN_SCALE)

    def row_denominator(self) -> torch.Tensor:
        """Per-row D_r: integer weights are ``q * D_r``."""
        d = torch.where(self.sp2_mask, torch.tensor(self.d_alt), torch.tensor(self.d_fixed))
        return torch.where(self.hi_mask, torch.tensor(self.d_hi), d) if self.high_bits else d

    def normalized_levels(self, w: torch.Tensor) -> torch.Tensor:
        """Per weight, its level ``q`` in [-1, 1] (straight-through), row by row in its scheme."""
        view = (-1,) + (1,) * (w.dim() - 1)
        v = (w / self.row_alpha().view(view)).clamp(-1.0, 1.0)
        q = torch.where(self.sp2_mask.view(view),
                        numerics.ste_project(v, self.lv_alt),
                        numerics.ste_project(v, self.lv_fixed))
        return torch.where(self.hi_mask.view(view), numerics.ste_project(v, self.lv_hi), q) if self.high_bits else q

    def forward(self, w: torch.Tensor):
        view = (-1,) + (1,) * (w.dim() - 1)
        alpha = self.row_alpha().view(view)
        q = self.normalized_levels(w)
        int_scale = alpha / self.row_denominator().to(w.dtype).view(view)
        zero_point = torch.zeros((), dtype=w.dtype, device=w.device)
        bit_width = torch.tensor(float(self.int_bits), device=w.device)
        return q * alpha, int_scale, zero_point, bit_width


class MSQWeightQuant(ExtendedInjector):
    """Brevitas weight quantizer with per-row SP2/fixed schemes (see :class:`MSQTensorQuant`).

    Override ``msq_scheme`` ('msq', 'fixed', 'sp2', 'p2') and ``bit_width`` with
    ``weight_msq_scheme=…`` / ``weight_bit_width=…`` on the Brevitas layer; ``weight_high_bits=8``
    gives the layer high-precision fixed rows (0: none).
    """

    proxy_class = WeightQuantProxyFromInjector
    tensor_quant = MSQTensorQuant
    bit_width = 4
    msq_scheme = "msq"
    high_bits = 0
    signed = True
    narrow_range = True


def check_high_bits(high_bits: int, bits: int) -> int:
    """Validate the high-precision row width: 0 (none) or a bit width above the layer's ``bits``."""
    if high_bits == 0:
        return 0
    numerics.check_bits(high_bits, "high_bits")
    if high_bits <= bits:
        raise MSQError(f"high_bits={high_bits} must exceed the low weight precision wbits={bits}")
    return high_bits


def msq_quantizers(model: nn.Module) -> dict[str, MSQTensorQuant]:
    """Every MSQ weight quantizer of a model, keyed by its layer's qualified name."""
    found = {}
    for name, module in model.named_modules():
        proxy = getattr(module, "weight_quant", None)
        tq = getattr(proxy, "tensor_quant", None)
        if isinstance(tq, MSQTensorQuant):
            found[name] = tq
    return found
