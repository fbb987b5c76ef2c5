"""The integer arithmetic contract, defined once; docs/ir.md describes it.

- Activation format ``(bits, frac, signed)``: real value ``x = x_int * 2^-frac``;
  ``x_int`` in ``[0, 2^bits - 1]`` unsigned or ``[-2^(bits-1), 2^(bits-1) - 1]`` signed.
- Accumulation: ``acc = Σ x·w`` exactly. Every partial sum, in any order, lies within
  ``[Σ min(0, w·lo, w·hi), Σ max(0, w·lo, w·hi)]``; the accumulator is the signed width of that
  range (``acc_bits``).
- Requantization: ``y = clamp(round_half_up((acc * m + bias) * 2^-n), lo, hi)`` with
  ``round_half_up(v) = floor(v + 1/2)``; in integers, for ``n >= 1``:
  ``(acc * m + bias + 2^(n-1)) >> n`` (arithmetic shift, i.e. floor division), and
  ``acc * m + bias`` for ``n = 0``. ``m`` is a signed ``MULT_BITS``-bit integer,
  ``0 <= n <= MAX_SHIFT``. The bias is added *after* the multiplier, in units of ``2^-n`` output
  steps, so BatchNorm's shift and the float bias keep ~``n`` fraction bits instead of being
  rounded to a whole accumulator step (which moved ~1-5 % of 4-bit activations by one step).
  ``requant_bits`` is the signed width that holds ``acc * m``, ``acc * m + bias`` and
  ``acc * m + bias + 2^(n-1)`` for every accumulator in range (the DSP48 ``A*B+C`` shape).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MULT_BITS = 16  # signed requantization multiplier: |m| < 2^15
MAX_SHIFT = 62
SHIFT_BITS = MAX_SHIFT.bit_length()  # unsigned shift field of the requantizer (6)
MAX_ACC_BITS = 46  # partial sums must be exact in float64 (< 2^53) for the torch integer path
MAX_REQUANT_BITS = 62  # acc * m + bias + rounding must fit int64


@dataclass(frozen=True)
class ActFormat:
    """A fixed-point activation format with a power-of-two scale."""

    bits: int
    frac: int
    signed: bool

    @property
    def lo(self) -> int:
        return -(2 ** (self.bits - 1)) if self.signed else 0

    @property
    def hi(self) -> int:
        return 2 ** (self.bits - 1) - 1 if self.signed else 2**self.bits - 1

    @property
    def scale(self) -> float:
        return 2.0 ** -self.frac

    def as_dict(self) -> dict:
        return {"bits": self.bits, "frac": self.frac, "signed": self.signed}


def requant_datapath_bits(requant_bits: int, acc_bits: int, max_shift: int) -> int:
    """Width of a requantizer's datapath in hardware: ``requant_bits`` holds ``acc * m + bias +
    2^(n-1)``, but not necessarily the rounding term ``2^(n-1)`` or the sign-extended accumulator
    on their own, which a datapath builds first; one more bit keeps every step exact."""
    return max(requant_bits, acc_bits + 1, max_shift + 1) + 1


def signed_width(lo: int, hi: int) -> int:
    """Bits of the smallest two's-complement type holding every integer in [lo, hi]."""
    bits = 1
    while not (-(2 ** (bits - 1)) <= lo and hi <= 2 ** (bits - 1) - 1):
        bits += 1
    return bits


def requantize(acc: np.ndarray, mult: np.ndarray, shift: np.ndarray, bias: np.ndarray, lo: int,
               hi: int) -> np.ndarray:
    """``clamp(round_half_up((acc * m + bias) * 2^-n), lo, hi)`` in exact int64 (broadcast per row)."""
    acc = np.asarray(acc, dtype=np.int64)
    shift = np.asarray(shift, dtype=np.int64)
    total = acc * np.asarray(mult, dtype=np.int64) + np.asarray(bias, dtype=np.int64)
    return np.clip(np.right_shift(total + rounding_constant(shift), shift), lo, hi)


def rounding_constant(shift: np.ndarray) -> np.ndarray:
    """``2^(n-1)`` for ``n >= 1``, else 0: what makes the final shift round half up."""
    shift = np.asarray(shift, dtype=np.int64)
    return np.where(shift > 0, np.left_shift(np.int64(1), np.maximum(shift - 1, 0)), 0)


ROUNDINGS = ("half_up", "floor", "ceil")


def rounding_offset(shift: np.ndarray, mode: str) -> np.ndarray:
    """The bias offset that makes the half-up requantizer round by ``mode`` instead: ``-2^(n-1)``
    floors, ``2^n - 1 - 2^(n-1)`` ceils (``n = 0`` has nothing to round). Lets an imported model
    that floors or ceils its activations keep its exact integers without a new IR field."""
    shift = np.asarray(shift, dtype=np.int64)
    if mode == "half_up":
        return np.zeros_like(shift)
    if mode == "floor":
        return -rounding_constant(shift)
    if mode == "ceil":
        return np.left_shift(np.int64(1), shift) - 1 - rounding_constant(shift)
    raise ValueError(f"unknown rounding {mode!r}: expected one of {', '.join(ROUNDINGS)}")


def multiplier(real: float) -> tuple[int, int]:
    """(m, n) with ``m * 2^-n`` closest to ``real``, ``|m| < 2^(MULT_BITS-1)``, ``0 <= n <= MAX_SHIFT``.

    ``m`` is normalised to use its full width (most precision), then the shift is capped.
    """
    if not math.isfinite(real):
        raise ValueError(f"requantization multiplier {real} is not finite")
    if real == 0.0:
        return 0, 0
    limit = 2 ** (MULT_BITS - 1)
    n = MULT_BITS - 2 - math.floor(math.log2(abs(real)))
    n = min(max(n, 0), MAX_SHIFT)
    m = round(real * 2.0**n)
    while abs(m) >= limit and n > 0:
        n -= 1
        m = round(real * 2.0**n)
    if abs(m) >= limit:
        raise ValueError(f"requantization multiplier {real} exceeds {MULT_BITS}-bit range at shift 0")
    return int(m), int(n)


def accumulator_range(w_int: np.ndarray, fmt: ActFormat) -> tuple[np.ndarray, np.ndarray]:
    """Per-row (min, max) that bounds every partial sum (see the module docstring)."""
    w = np.asarray(w_int, dtype=np.int64).reshape(len(w_int), -1)
    p_lo, p_hi = w * fmt.lo, w * fmt.hi
    zero = np.zeros_like(w)
    lo = np.minimum(np.minimum(p_lo, p_hi), zero).sum(axis=1)
    hi = np.maximum(np.maximum(p_lo, p_hi), zero).sum(axis=1)
    return lo, hi


def accumulator_bits(w_int: np.ndarray, fmt: ActFormat) -> int:
    """Signed accumulator width of a layer: no input in range can overflow it."""
    lo, hi = accumulator_range(w_int, fmt)
    return signed_width(int(lo.min()), int(hi.max()))


def requant_bits(acc_lo: np.ndarray, acc_hi: np.ndarray, mult: np.ndarray, shift: np.ndarray,
                 bias: np.ndarray) -> int:
    """Signed width holding ``acc * m``, ``acc * m + bias`` and ``acc * m + bias + 2^(n-1)`` for
    every acc in [acc_lo, acc_hi] (exact Python integers, no int64 overflow)."""
    ends = [np.asarray(acc_lo, dtype=object) * np.asarray(mult, dtype=object),
            np.asarray(acc_hi, dtype=object) * np.asarray(mult, dtype=object)]
    bias = np.asarray(bias, dtype=object)
    half = rounding_constant(shift).astype(object)
    values = [int(v) for e in ends for term in (e, e + bias, e + bias + half) for v in np.atleast_1d(term)]
    return signed_width(min(values), max(values))


def merge_params(kind: str, in_fmts: list[ActFormat], out_fmt: ActFormat) -> tuple[tuple[int, ...], int, int, int, int]:
    """(align, mult, shift, acc_bits, requant_bits) of an ``add`` or ``concat`` (docs/ir.md): input
    ``i`` is shifted left by ``align[i]`` to the common fraction ``F = max(frac_i)``; the sum (add)
    or each aligned value (concat) is requantized by ``mult * 2^-shift = 2^(out.frac - F)``, which
    rounds half up to ``out_fmt`` exactly as :func:`requantize` rounds."""
    common = max(f.frac for f in in_fmts)
    align = tuple(common - f.frac for f in in_fmts)
    ranges = [(f.lo << a, f.hi << a) for f, a in zip(in_fmts, align)]
    if kind == "add":
        lo, hi = sum(r[0] for r in ranges), sum(r[1] for r in ranges)
    else:
        lo, hi = min(r[0] for r in ranges), max(r[1] for r in ranges)
    mult, shift = multiplier(2.0 ** (out_fmt.frac - common))
    acc, rq = signed_width(lo, hi), requant_bits(lo, hi, mult, shift, 0)
    if acc > MAX_ACC_BITS or rq > MAX_REQUANT_BITS:
        raise ValueError(f"the {kind} needs a {acc}-bit sum and {rq}-bit requantization (max {MAX_ACC_BITS} and "
                         f"{MAX_REQUANT_BITS}): its input formats' fractions are too far apart")
    return align, mult, shift, acc, rq
