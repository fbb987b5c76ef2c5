"""Per-row scheme assignment: which rows get SP2, and how many.

Fit statistic (the *SP2 suitability*) of a row: the kurtosis of its weights,
``mean((w - mean)^4) / var^2`` (3 for a Gaussian, 6 for a Laplace, 1.8 for a uniform). SP2's
levels are dense near zero and sparse near the peak, so peaked, heavy-tailed rows lose little
under SP2 while flat rows lose more. Rows are ranked by suitability, highest first, and the best
``ceil(r * rows)`` get SP2. Kurtosis was chosen over the direct ratio of SP2 to fixed-point MSE
(each at its optimal scale): both rank bell-shaped rows above flat ones on average, but the MSE
ratio of a 64–128-weight row is dominated by its few largest weights and mis-ranks 15–30 % of
Gaussian-vs-uniform rows, where kurtosis mis-ranks under 3 % (tests/test_assignment.py).

Intra-layer multi-precision (``--high-bits B --high-fraction F``): first the ``ceil(F * rows)`` rows
with the highest *sensitivity* go to B-bit fixed point; the SP2 ratio then applies to the other
(low-precision) rows. Sensitivity of row r: ``sum_j e_rj^2 * E[x_j^2]``, with ``e_r`` the row's
quantization error at the low precision (MSE-optimal scale; in an 'msq' layer the smaller of the
SP2 and fixed errors, the best the row could do at low precision) and ``E[x_j^2]`` the mean square
of the layer's input j over a calibration batch (for a conv, of input channel j, shared by the
kernel taps). It is the expected squared error the row adds to its output when inputs are
uncorrelated: a row whose errors fall on large inputs matters more than one whose errors fall
on inputs that are usually zero.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from msq import numerics
from msq.errors import MSQError
from msq.frontend.quantizer import msq_quantizers
from msq.numerics import RowScheme


def check_ratio(ratio: float) -> float:
    """Validate an SP2 ratio: a number in [0, 1]."""
    if not isinstance(ratio, (int, float)) or isinstance(ratio, bool) or not 0.0 <= ratio <= 1.0:
        raise MSQError(f"SP2 ratio must be a number in [0, 1], got {ratio!r}")
    return float(ratio)


def sp2_suitability(rows: np.ndarray) -> np.ndarray:
    """The fit statistic: per-row kurtosis. Higher suits SP2 better; a constant row scores 0."""
    rows = np.asarray(rows, dtype=np.float64).reshape(len(rows), -1)
    centred = rows - rows.mean(axis=1, keepdims=True)
    var = (centred**2).mean(axis=1)
    fourth = (centred**4).mean(axis=1)
    return np.where(var > 0, fourth / np.where(var > 0, var, 1.0) ** 2, 0.0)


def sp2_row_count(rows: int, ratio: float) -> int:
    """Number of SP2 rows for a layer: ceil(r * rows), robust to float noise in r * rows."""
    return min(rows, math.ceil(round(check_ratio(ratio) * rows, 9)))


def choose_sp2_rows(suitability: np.ndarray, ratio: float) -> np.ndarray:
    """Boolean mask selecting the ``ceil(r * rows)`` most SP2-suited rows (ties: lower index)."""
    n = sp2_row_count(len(suitability), ratio)
    mask = np.zeros(len(suitability), dtype=bool)
    mask[np.argsort(-np.asarray(suitability), kind="stable")[:n]] = True
    return mask


def check_fraction(fraction: float) -> float:
    """Validate a high-precision row fraction: a number in [0, 1]."""
    if not isinstance(fraction, (int, float)) or isinstance(fraction, bool) or not 0.0 <= fraction <= 1.0:
        raise MSQError(f"high-precision fraction must be a number in [0, 1], got {fraction!r}")
    return float(fraction)


def high_row_count(rows: int, fraction: float) -> int:
    """Number of high-precision rows of a layer: ceil(F * rows), robust to float noise."""
    return min(rows, math.ceil(round(check_fraction(fraction) * rows, 9)))


def quantization_error(rows: np.ndarray, scheme: str, bits: int) -> np.ndarray:
    """Per weight, the error ``w - alpha * project(w / alpha)`` at the row's MSE-optimal scale."""
    alpha = numerics.mse_optimal_scale(rows, scheme, bits)[0][:, None]
    return rows - alpha * numerics.project_np(np.clip(rows / alpha, -1, 1), scheme, bits)


def row_sensitivity(rows: np.ndarray, schemes: tuple[str, ...], bits: int, input_power: np.ndarray) -> np.ndarray:
    """The module docstring's sensitivity: the input-power-weighted squared error of each row at
    low precision, under the best of ``schemes``."""
    rows = np.asarray(rows, dtype=np.float64).reshape(len(rows), -1)
    errors = [(quantization_error(rows, s, bits) ** 2 * input_power[None, :]).sum(axis=1) for s in schemes]
    return np.min(errors, axis=0)


@torch.no_grad()
def input_power(model: nn.Module, x: torch.Tensor) -> dict[str, np.ndarray]:
    """Per MSQ layer, ``E[x_j^2]`` of its inputs over the batch ``x``, one entry per weight column
    (a conv's channel value repeated for its kernel taps)."""
    found: dict[str, np.ndarray] = {}
    quantizers = msq_quantizers(model)

    def hook(name):
        def record(module, args):
            inp = args[0].detach().double()
            power = (inp**2).mean(dim=[d for d in range(inp.dim()) if d != 1]).numpy()
            taps = int(np.prod(module.weight.shape[2:]))
            found[name] = np.repeat(power, taps)
        return record

    handles = [model.get_submodule(n).register_forward_pre_hook(hook(n)) for n in quantizers]
    was_training = model.training
    model.eval()
    try:
        model(x)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return found


@torch.no_grad()
def assign_schemes(model: nn.Module, ratio: float, high_fraction: float = 0.0,
                   calibration: torch.Tensor | None = None) -> dict[str, np.ndarray]:
    """Re-rank every layer's rows: high-precision rows first (layers with ``high_bits``, by
    sensitivity on the ``calibration`` inputs), then the SP2 mask of 'msq' layers among the rest;
    rows that change scheme or precision get their scale re-initialised at the new MSE-optimum.
    Returns the SP2 masks per layer."""
    quantizers = msq_quantizers(model)
    power = input_power(model, calibration) if high_fraction and calibration is not None else {}
    if high_fraction and any(tq.high_bits for tq in quantizers.values()) and not power:
        raise MSQError("choosing high-precision rows needs calibration inputs")
    masks = {}
    for name, tq in quantizers.items():
        weight = model.get_submodule(name).weight.detach()
        rows = weight.reshape(weight.shape[0], -1).cpu().numpy()
        high = tq.high_rows().clone()
        if tq.high_bits:
            schemes = (RowScheme.FIXED, RowScheme.SP2) if tq.scheme == "msq" else (RowScheme.FIXED,)
            score = row_sensitivity(rows, schemes, tq.bits, power[name])
            high = torch.zeros_like(high)
            high[np.argsort(-score, kind="stable")[:high_row_count(len(rows), high_fraction)].copy()] = True
        sp2 = tq.sp2_mask.clone()
        if tq.scheme == "msq":
            low = ~high.numpy()
            sp2 = torch.zeros_like(sp2)
            if low.any():
                sp2[torch.as_tensor(low)] = torch.as_tensor(choose_sp2_rows(sp2_suitability(rows[low]), ratio))
        changed = (sp2 != tq.sp2_mask) | (high != tq.high_rows())
        tq.sp2_mask.copy_(sp2)
        if tq.high_bits:
            tq.hi_mask.copy_(high)
        tq.reset_scales(weight, rows=changed)
        masks[name] = tq.sp2_mask.cpu().numpy().copy()
    return masks

