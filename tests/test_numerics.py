"""Number systems: level sets, encodings, projection and the straight-through estimator."""
import numpy as np
import pytest
import torch

from msq import numerics
from msq.errors import MSQError

BITS = range(2, 9)


def test_sp2_4bit_has_exactly_13_levels():
    lv = numerics.levels("sp2", 4)
    assert len(lv) == 13
    assert sorted(np.abs(lv[lv >= 0]).tolist()) == [0, 1 / 8, 1 / 4, 1 / 2, 5 / 8, 3 / 4, 1]


def test_fixed_4bit_has_15_levels_and_p2_is_single_powers():
    assert len(numerics.levels("fixed", 4)) == 15
    p2 = numerics.levels("p2", 4)
    mags = p2[p2 > 0]
    assert np.all(np.log2(mags) == np.round(np.log2(mags)))
    assert mags.max() == 1 and mags.min() == 2.0 ** -6


@pytest.mark.parametrize("bits", BITS)
def test_sp2_encodings_round_trip(bits):
    m1, m2 = numerics.sp2_split(bits)
    assert 1 + m1 + m2 == bits
    seen = set()
    for w in numerics.integer_levels("sp2", bits):
        code = numerics.sp2_encode(int(w), bits)
        assert numerics.sp2_decode(code, bits) == w
        seen.add(code)
    # every code decodes to a level, and the canonical code of that level decodes the same
    for sign in (0, 1):
        for k1 in range(2 ** m1):
            for k2 in range(2 ** m2):
                w = numerics.sp2_decode(numerics.SP2Code(sign, k1, k2), bits)
                assert w in numerics.integer_levels("sp2", bits)
                assert numerics.sp2_decode(numerics.sp2_encode(w, bits), bits) == w
    w = numerics.integer_levels("sp2", bits)
    assert np.array_equal(numerics.sp2_decode_array(*numerics.sp2_encode_array(w, bits), bits), w)


@pytest.mark.parametrize("bits", BITS)
def test_sp2_product_is_two_shifts(bits):
    e = numerics.sp2_exponent(bits)
    for w in numerics.integer_levels("sp2", bits):
        c = numerics.sp2_encode(int(w), bits)
        for x in (-7, 0, 3, 13):
            t1 = (x << (e - c.k1)) if c.k1 else 0
            t2 = (x << (e - c.k2)) if c.k2 else 0
            assert (-(t1 + t2) if c.sign else t1 + t2) == x * w


@pytest.mark.parametrize("bits", BITS)
def test_fixed_encodings_round_trip(bits):
    levels = numerics.integer_levels("fixed", bits)
    assert len(levels) == 2 ** bits - 1
    for w in levels:
        code = numerics.fixed_encode(int(w), bits)
        assert 0 <= code < 2 ** bits
        assert numerics.fixed_decode(code, bits) == w


def test_bad_codes_and_bits_are_rejected():
    with pytest.raises(MSQError, match="not a 4-bit SP2"):
        numerics.sp2_encode(3, 4)
    with pytest.raises(MSQError, match="out of range"):
        numerics.levels("sp2", 9)
    with pytest.raises(MSQError, match="unknown scheme"):
        numerics.levels("ternary", 4)


@pytest.mark.parametrize("scheme", ["fixed", "sp2", "p2"])
def test_projection_is_nearest_level_in_numpy_and_torch(scheme):
    v = np.random.default_rng(0).uniform(-1, 1, 2000)
    lv = numerics.levels(scheme, 4)
    got = numerics.project_np(v, scheme, 4)
    brute = lv[np.abs(v[:, None] - lv[None, :]).argmin(1)]
    assert np.allclose(np.abs(got - v), np.abs(brute - v))
    t = numerics.project_torch(torch.as_tensor(v, dtype=torch.float32), numerics.level_tensor(scheme, 4))
    assert np.array_equal(t.numpy(), got.astype(np.float32))


def test_straight_through_estimator_passes_gradients():
    v = torch.linspace(-1, 1, 50, requires_grad=True)
    out = numerics.ste_project(v, numerics.level_tensor("sp2", 4))
    assert set(out.detach().numpy().round(6).tolist()) <= set(numerics.levels("sp2", 4).round(6).tolist())
    (out * torch.arange(50.0)).sum().backward()
    assert torch.equal(v.grad, torch.arange(50.0))


def test_mse_optimal_scale_beats_max_scaling():
    rows = np.random.default_rng(1).normal(size=(20, 64))
    alpha, mse = numerics.mse_optimal_scale(rows, "fixed", 4)
    peak = np.abs(rows).max(1, keepdims=True)
    naive = ((numerics.project_np(rows / peak, "fixed", 4) * peak - rows) ** 2).mean(1)
    assert np.all(mse <= naive + 1e-12) and np.mean(mse) < 0.9 * np.mean(naive)


@pytest.mark.parametrize("bits", range(2, 9))
def test_booth_digits_rebuild_every_fixed_weight(bits):
    """The LUT fixed-point engine's radix-4 Booth digits: each in {0, +-1, +-2}, ceil(bits/2) of
    them, and sum d_j 4^j gives back every two's-complement weight, the most negative included."""
    w = np.arange(-(1 << (bits - 1)), 1 << (bits - 1))
    digits = numerics.booth_encode_array(w.reshape(-1, 1), bits)
    assert digits.shape == (len(w), 1, numerics.booth_digits(bits)) == (len(w), 1, (bits + 1) // 2)
    assert set(np.unique(digits)) <= {-2, -1, 0, 1, 2}
    np.testing.assert_array_equal((digits * 4 ** np.arange(digits.shape[-1])).sum(-1)[:, 0], w)
    with pytest.raises(MSQError, match=f"{bits}-bit fixed-point weight"):
        numerics.booth_encode_array(np.array([1 << (bits - 1)]), bits)
