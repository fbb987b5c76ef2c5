"""Test vectors every backend is checked on besides the dataset: extreme and random integer inputs."""
from __future__ import annotations

import numpy as np

from msq.ir.model import IRModel


def extreme_inputs(ir: IRModel, n_random: int = 8, seed: int = 0) -> np.ndarray:
    """All-zero, all-min, all-max, alternating min/max and random integer inputs for an IR."""
    lo, hi = ir.input_fmt.lo, ir.input_fmt.hi
    size = int(np.prod(ir.input_shape))
    alt = np.where(np.arange(size) % 2 == 0, lo, hi)
    rows = [np.zeros(size), np.full(size, lo), np.full(size, hi), alt, alt[::-1].copy()]
    rnd = np.random.default_rng(seed).integers(lo, hi + 1, size=(n_random, size))
    x = np.concatenate([np.stack(rows), rnd]).astype(np.int64)
    return x.reshape((len(x),) + tuple(ir.input_shape))
