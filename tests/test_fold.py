"""Export's folding of the real scale and offset into (mult, shift, bias): every reachable
accumulator requantizes to the code the real arithmetic (the fake-quant model) rounds to."""
from fractions import Fraction

import numpy as np
import pytest

from msq import ref
from msq.frontend.export import PendingLayer, close_layer
from msq.frontend.fold import fold_row
from msq.ir import arith
from msq.ir.arith import ActFormat

# conv1, channel 2 of the mnist5k CNN at F = 0.873, seed 0 (8-bit rows, BatchNorm folded): the
# nearest 16-bit multiplier put accumulator 1558 (real value 12.50009) at 12.49987, one code below
# the fake-quant model's, and flipped one test image
REAL, OFFSET = 0.0085994241591664, -0.22445382978519698 / 0.25


def _real_codes(real: float, offset: float, accs: np.ndarray, lo: int, hi: int,
                rounding: str = "half_up") -> np.ndarray:
    """real * acc + offset rounded by ``rounding`` and clamped, in exact rational arithmetic."""
    r, o = Fraction(real), Fraction(offset)
    rounded = {"half_up": lambda v: (v + Fraction(1, 2)).__floor__(), "floor": lambda v: v.__floor__(),
               "ceil": lambda v: v.__ceil__()}[rounding]
    return np.array([min(max(rounded(r * int(a) + o), lo), hi) for a in accs])


def test_the_accumulator_next_to_a_tie_rounds_as_the_real_value():
    """A one-row dense layer whose inputs reach every accumulator 0..4095, as export builds it."""
    in_fmt, out_fmt = ActFormat(6, 0, False), ActFormat(4, 2, False)
    pending = PendingLayer("dense1", "dense", (2,), (1,), in_fmt, 8, np.zeros(1, dtype=np.int64),
                           np.array([[1, 64]]), np.array([REAL * out_fmt.scale]), np.array([OFFSET * out_fmt.scale]))
    layer = close_layer(pending, out_fmt, relu=True)
    x = np.stack(np.meshgrid(np.arange(64), np.arange(64), indexing="ij"), -1).reshape(-1, 2)
    accs = x @ np.array([1, 64])
    got = ref.infer_layer(layer, x)[:, 0]
    assert got[accs == 1558][0] == 13  # 12.50009 rounds up
    assert np.array_equal(got, _real_codes(REAL, OFFSET, accs, out_fmt.lo, out_fmt.hi))


@pytest.mark.parametrize("seed, rounding", [(0, "half_up"), (1, "half_up"), (2, "floor"), (3, "ceil")])
def test_folded_rows_of_8bit_weights_round_every_accumulator_as_the_real_value(seed, rounding):
    """4-bit outputs; the nearest multiplier and bias mis-round some accumulator in ~1 row of 10."""
    rng = np.random.default_rng(seed)
    for _ in range(50):
        real = float(np.exp(rng.uniform(np.log(0.003), np.log(0.2))) * rng.choice([-1, 1]))
        offset = float(rng.uniform(-4, 4))
        accs = np.arange(-20000, 20001)
        mult, shift, bias = fold_row(real, offset, -20000, 20000, 0, 15, rounding)
        assert abs(mult) < 2 ** (arith.MULT_BITS - 1)
        got = arith.requantize(accs, mult, shift, bias, 0, 15)
        assert np.array_equal(got, _real_codes(real, offset, accs, 0, 15, rounding)), (real, offset)
