"""Number systems of MSQ: fixed point, SP2 and P2 level sets, integer encodings, projection.

One definition each (docs/ir.md gives the integer encodings). Level tables are built once in NumPy; the torch helpers
reuse the same tables, so training, export and every backend agree on every level.

Weight of a row: ``w = alpha * q`` with ``q`` a level of the row's scheme. Each scheme also
has an *integer weight* ``w_int = q * D`` with an exact integer denominator ``D``:

- fixed, m bits: ``q = k / (2^(m-1) - 1)``, ``D = 2^(m-1) - 1``, ``w_int = k``.
- SP2, m bits: ``q = ±(q1 + q2)``, ``q1 = 2^-k1`` (0 when ``k1 = 0``), same for ``q2``;
  ``D = 2^E`` with ``E = 2^m1 - 1``, so ``x * w_int = ±((x << (E-k1)) + (x << (E-k2)))``.
- P2, m bits (a training baseline): magnitudes ``{0} ∪ {2^-k : k = 0 … 2^(m-1) - 2}``.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

import numpy as np
import torch

from msq.errors import MSQError

MIN_BITS = 2
MAX_BITS = 8


class RowScheme(StrEnum):
    """The number system of one weight row: SP2 rows run on shift-adds in LUTs, fixed rows on
    multipliers in DSPs; P2 (one power of two) exists only as a training baseline."""

    FIXED = "fixed"
    SP2 = "sp2"
    P2 = "p2"



def check_bits(bits: int, what: str = "wbits") -> int:
    """Validate a bit width against the supported 2–8 range and return it."""
    if not isinstance(bits, (int, np.integer)) or isinstance(bits, bool):
        raise MSQError(f"{what} must be an integer, got {bits!r}")
    if not MIN_BITS <= bits <= MAX_BITS:
        raise MSQError(f"{what}={bits} is out of range: expected {MIN_BITS}..{MAX_BITS} bits")
    return int(bits)


def sp2_split(bits: int) -> tuple[int, int]:
    """(m1, m2): the index widths of the two power-of-two terms of an m-bit SP2 code."""
    check_bits(bits)
    return bits // 2, (bits - 1) // 2  # ceil((m-1)/2), floor((m-1)/2)


def sp2_exponent(bits: int) -> int:
    """E = 2^m1 - 1: SP2 levels times 2^E are exact integers."""
    m1, _ = sp2_split(bits)
    return 2**m1 - 1


def fixed_max(bits: int) -> int:
    """Largest fixed-point integer weight, 2^(m-1) - 1 (symmetric, narrow range)."""
    return 2 ** (check_bits(bits) - 1) - 1


def p2_exponent(bits: int) -> int:
    """Smallest P2 magnitude is 2^-(2^(m-1) - 2)."""
    return 2 ** (check_bits(bits) - 1) - 2


def denominator(scheme: str, bits: int) -> int:
    """D such that ``w_int = q * D`` is an exact integer for every level of the scheme."""
    if scheme == "fixed":
        return fixed_max(bits)
    if scheme == "sp2":
        return 2 ** sp2_exponent(bits)
    if scheme == "p2":
        return 2 ** p2_exponent(bits)
    raise MSQError(f"unknown scheme {scheme!r}: expected one of {', '.join(RowScheme)}")


@dataclass(frozen=True)
class SP2Code:
    """Hardware code of an SP2 weight: sign bit and the two power-of-two indices (0 = term off)."""

    sign: int
    k1: int
    k2: int


def _sp2_term_ints(index_bits: int, exponent: int) -> np.ndarray:
    """Integer value (times 2^E) of each index of one SP2 term: index 0 → 0, index k → 2^(E-k)."""
    n = 2**index_bits
    return np.array([0] + [2 ** (exponent - k) for k in range(1, n)], dtype=np.int64)


@lru_cache(maxsize=None)
def _sp2_tables(bits: int) -> tuple[np.ndarray, dict[int, tuple[int, int]]]:
    """Non-negative SP2 integer magnitudes and the canonical (k1, k2) of each.

    Canonical code: among the index pairs giving one magnitude, the one with the smallest k2,
    then the smallest k1 (so a single power of two always lives in the first term).
    """
    m1, m2 = sp2_split(bits)
    e = sp2_exponent(bits)
    t1, t2 = _sp2_term_ints(m1, e), _sp2_term_ints(m2, e)
    canon: dict[int, tuple[int, int]] = {}
    for k2 in range(len(t2)):
        for k1 in range(len(t1)):
            canon.setdefault(int(t1[k1] + t2[k2]), (k1, k2))
    mags = np.array(sorted(canon), dtype=np.int64)
    return mags, canon


@lru_cache(maxsize=None)
def integer_levels(scheme: str, bits: int) -> np.ndarray:
    """All integer weights ``w_int`` of a scheme, sorted ascending (symmetric around 0)."""
    check_bits(bits)
    if scheme == "fixed":
        k = fixed_max(bits)
        return np.arange(-k, k + 1, dtype=np.int64)
    if scheme == "sp2":
        mags = _sp2_tables(bits)[0]
    elif scheme == "p2":
        e = p2_exponent(bits)
        mags = np.array([0] + [2 ** (e - k) for k in range(e, -1, -1)], dtype=np.int64)
    else:
        raise MSQError(f"unknown scheme {scheme!r}: expected one of {', '.join(RowScheme)}")
    return np.unique(np.concatenate([-mags, mags]))


def levels(scheme: str, bits: int) -> np.ndarray:
    """Normalised levels ``q`` in [-1, 1] of a scheme, sorted ascending."""
    return integer_levels(scheme, bits) / float(denominator(scheme, bits))


def sp2_encode(w_int: int, bits: int) -> SP2Code:
    """Canonical (sign, k1, k2) of an SP2 integer weight; raises if it is not an SP2 level."""
    mags, canon = _sp2_tables(bits)
    pair = canon.get(abs(int(w_int)))
    if pair is None:
        raise MSQError(f"{w_int} is not a {bits}-bit SP2 integer weight (magnitudes {mags.tolist()})")
    return SP2Code(sign=int(w_int < 0), k1=pair[0], k2=pair[1])


def sp2_decode(code: SP2Code, bits: int) -> int:
    """Integer weight of an SP2 code: ±(2^(E-k1) + 2^(E-k2)), a zero index adding nothing."""
    m1, m2 = sp2_split(bits)
    e = sp2_exponent(bits)
    if not (code.sign in (0, 1) and 0 <= code.k1 < 2**m1 and 0 <= code.k2 < 2**m2):
        raise MSQError(f"invalid {bits}-bit SP2 code {code}")
    mag = int(_sp2_term_ints(m1, e)[code.k1] + _sp2_term_ints(m2, e)[code.k2])
    return -mag if code.sign else mag


def sp2_encode_array(w_int: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vectorised :func:`sp2_encode`: arrays (sign, k1, k2) with the shape of ``w_int``."""
    mags, canon = _sp2_tables(bits)
    flat = np.asarray(w_int, dtype=np.int64).ravel()
    bad = ~np.isin(np.abs(flat), mags)
    if bad.any():
        raise MSQError(f"{int(flat[bad][0])} is not a {bits}-bit SP2 integer weight")
    k1_of = {m: canon[m][0] for m in canon}
    k2_of = {m: canon[m][1] for m in canon}
    sign = (flat < 0).astype(np.int64)
    k1 = np.array([k1_of[abs(int(v))] for v in flat], dtype=np.int64)
    k2 = np.array([k2_of[abs(int(v))] for v in flat], dtype=np.int64)
    shape = np.shape(w_int)
    return sign.reshape(shape), k1.reshape(shape), k2.reshape(shape)


def booth_digits(bits: int) -> int:
    """Radix-4 Booth digits of a ``bits``-bit two's-complement integer."""
    check_bits(bits)
    return (bits + 1) // 2


def booth_encode_array(w_int: np.ndarray, bits: int) -> np.ndarray:
    """Radix-4 Booth digits of fixed-point integer weights, for products built from shifts and adds
    in LUTs: ``w = sum_j d_j * 4^j`` with ``d_j = -2 b(2j+1) + b(2j) + b(2j-1)`` in {0, +-1, +-2}
    (``b`` the weight's two's-complement bits, ``b(-1) = 0``). Returns the digits, a last axis of
    :func:`booth_digits` entries, lowest digit first."""
    w = np.asarray(w_int, dtype=np.int64)
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if w.size and (w.min() < lo or w.max() > hi):
        raise MSQError(f"a {bits}-bit fixed-point weight must be in [{lo}, {hi}]")
    nd = booth_digits(bits)
    b = [(w >> k) & 1 for k in range(2 * nd)]  # arithmetic shift: the sign extends
    digits = [-2 * b[2 * j + 1] + b[2 * j] + (b[2 * j - 1] if j else 0) for j in range(nd)]
    return np.stack(digits, axis=-1)


def sp2_decode_array(sign: np.ndarray, k1: np.ndarray, k2: np.ndarray, bits: int) -> np.ndarray:
    """Vectorised :func:`sp2_decode`."""
    m1, m2 = sp2_split(bits)
    e = sp2_exponent(bits)
    t1, t2 = _sp2_term_ints(m1, e), _sp2_term_ints(m2, e)
    mag = t1[np.asarray(k1)] + t2[np.asarray(k2)]
    return np.where(np.asarray(sign) == 1, -mag, mag).astype(np.int64)


def fixed_encode(w_int: int, bits: int) -> int:
    """m-bit two's-complement code of a fixed-point integer weight."""
    k = fixed_max(bits)
    if not -k <= w_int <= k:
        raise MSQError(f"{w_int} is outside the {bits}-bit fixed range [-{k}, {k}]")
    return int(w_int) & (2**bits - 1)


def fixed_decode(code: int, bits: int) -> int:
    """Inverse of :func:`fixed_encode`."""
    check_bits(bits)
    code = int(code) & (2**bits - 1)
    return code - 2**bits if code >= 2 ** (bits - 1) else code


def project_np(v: np.ndarray, scheme: str, bits: int) -> np.ndarray:
    """Nearest level of the scheme to each normalised value (ties go to the larger level)."""
    lv = levels(scheme, bits)
    mid = (lv[1:] + lv[:-1]) / 2
    return lv[np.searchsorted(mid, np.asarray(v, dtype=np.float64), side="right")]


def mse_optimal_scale(rows: np.ndarray, scheme: str, bits: int, grid: int = 96) -> tuple[np.ndarray, np.ndarray]:
    """Per-row scale minimising the quantisation MSE, and that MSE.

    A grid search over ``alpha = c * max|w|`` with ``c`` in [0.2, 1.2]: the error is not convex
    in alpha, and rows are short, so an exhaustive 1-D search is both exact enough and cheap.
    """
    rows = np.asarray(rows, dtype=np.float64).reshape(len(rows), -1)
    peak = np.abs(rows).max(axis=1)
    peak = np.where(peak > 0, peak, 1.0)
    cands = np.linspace(0.2, 1.2, grid)[None, :] * peak[:, None]  # (rows, grid)
    v = rows[:, None, :] / cands[:, :, None]
    err = ((project_np(np.clip(v, -1, 1), scheme, bits) * cands[:, :, None] - rows[:, None, :]) ** 2).mean(axis=2)
    best = err.argmin(axis=1)
    idx = np.arange(len(rows))
    return cands[idx, best], err[idx, best]


# --- torch --------------------------------------------------------------------------------------


def level_tensor(scheme: str, bits: int, device=None) -> torch.Tensor:
    """The levels of :func:`levels` as a float32 tensor (the same table)."""
    return torch.as_tensor(levels(scheme, bits), dtype=torch.float32, device=device)


def project_torch(v: torch.Tensor, lv: torch.Tensor) -> torch.Tensor:
    """Nearest level in the sorted table ``lv`` (ties go to the larger level, as in NumPy)."""
    mid = (lv[1:] + lv[:-1]) / 2
    return lv[torch.bucketize(v, mid, right=True)]


def ste_project(v: torch.Tensor, lv: torch.Tensor) -> torch.Tensor:
    """Projection with a straight-through gradient: forward rounds, backward is identity."""
    return v + (project_torch(v, lv) - v).detach()
