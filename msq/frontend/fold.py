"""Folding one row's real scale and offset into the integer requantizer (mult, shift, bias) so that
every accumulator the row can reach rounds as the real arithmetic (the fake-quant model) rounds.

``arith.multiplier`` keeps ``MULT_BITS`` significant bits of the real scale: a relative error up to
2^-15, about 2e-4 of an output step on a 4-bit output. An accumulator whose real value lies closer
than that to a rounding threshold rounds the other way in the integer model. Rows with fine
accumulator steps (8-bit weights: ~0.01 output steps per accumulator unit) put some accumulator that
close to a threshold often enough to flip a test image (the mnist5k CNN at F = 0.873, seed 0).

Between two thresholds the output is constant and the multiplier's error is linear in the
accumulator, so only the accumulators next to a threshold constrain the bias: it is moved into the
interval where they all round right (it has ``shift`` fraction bits to spare), trying the
multipliers next to the nearest one when that interval is empty.
"""
from __future__ import annotations

import math

from msq.ir import arith

SEARCH = 8  # multipliers tried on either side of the nearest one


def _rounded(value: float, rounding: str) -> int:
    """``value`` rounded to an integer the way the layer's activation quantizer rounds."""
    if rounding == "floor":
        return math.floor(value)
    if rounding == "ceil":
        return math.ceil(value)
    return math.floor(value + 0.5)


def _thresholds(lo: int, hi: int, rounding: str) -> list[float]:
    """Real values where the rounded output steps between two codes of ``[lo, hi]``."""
    if rounding == "half_up":
        return [k + 0.5 for k in range(lo, hi)]
    return [float(k) for k in range(lo + 1, hi + 1)] if rounding == "floor" else [float(k) for k in range(lo, hi)]


def _critical_accumulators(real: float, offset: float, acc_lo: int, acc_hi: int, lo: int, hi: int,
                           rounding: str) -> list[int]:
    """The reachable accumulators next to each threshold (one extra either side absorbs float error)."""
    accs = set()
    for t in _thresholds(lo, hi, rounding):
        x = (t - offset) / real
        if not math.isfinite(x):
            continue
        base = math.floor(x)
        accs.update(a for a in range(base - 1, base + 3) if acc_lo <= a <= acc_hi)
    return sorted(accs)


def _bias_interval(accs: list[int], targets: list[int], mult: int, shift: int, lo: int,
                   hi: int) -> tuple[float, float]:
    """[low, high] of the integer biases for which ``clamp((acc*mult + bias + 2^(shift-1)) >> shift)``
    equals each accumulator's target code (exact Python integers)."""
    half = 1 << (shift - 1) if shift > 0 else 0
    low, high = -math.inf, math.inf
    for acc, target in zip(accs, targets):
        t = min(max(target, lo), hi)
        if t > lo:
            low = max(low, (t << shift) - half - acc * mult)
        if t < hi:
            high = min(high, ((t + 1) << shift) - 1 - half - acc * mult)
    return low, high


def fold_row(real: float, offset: float, acc_lo: int, acc_hi: int, lo: int, hi: int,
             rounding: str = "half_up") -> tuple[int, int, int]:
    """(mult, shift, bias) for ``y = round(real * acc + offset)`` clamped to ``[lo, hi]``, ``acc`` in
    ``[acc_lo, acc_hi]``: the nearest multiplier and bias (docs/ir.md) unless a reachable
    accumulator would then round differently from the real value and another choice avoids that."""
    mult, shift = arith.multiplier(real)
    nearest_bias = int(round(offset * 2.0**shift)) + int(arith.rounding_offset(shift, rounding))
    if mult == 0:
        return mult, shift, nearest_bias
    accs = _critical_accumulators(real, offset, acc_lo, acc_hi, lo, hi, rounding)
    targets = [_rounded(real * a + offset, rounding) for a in accs]
    limit = 2 ** (arith.MULT_BITS - 1)
    for step in range(2 * SEARCH + 1):
        m = mult + (step + 1) // 2 * (-1 if step % 2 else 1)
        if m == 0 or abs(m) >= limit or (m > 0) != (mult > 0):
            continue
        low, high = _bias_interval(accs, targets, m, shift, lo, hi)
        if low <= high:
            return m, shift, int(min(max(nearest_bias, low), high))
    return mult, shift, nearest_bias
