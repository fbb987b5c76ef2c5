"""The golden integer reference: the IR's arithmetic contract in NumPy int64, to the bit.

Inputs and outputs are integer stream tensors (channels-last): ``(N, H, W, C)`` or ``(N, F)``.
Every product and sum is exact int64; requantization is :func:`msq.ir.arith.requantize`::

    from msq import ref
    from msq.ir import load_ir
    ir = load_ir("runs/demo/ir")
    logits = ref.infer(ir, ir.quantize_input(x))     # every layer per docs/ir.md
"""
from __future__ import annotations

import math

import numpy as np

from msq.ir.arith import requantize
from msq.limits import check_memory
from msq.ir.model import INPUT, ComputeLayer, IRModel, Layer, MergeLayer, PoolLayer


def windows(x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int],
            padding: tuple[int, int] = (0, 0)) -> np.ndarray:
    """(N, H, W, C) → (N, Ho, Wo, kh, kw, C): every window, zero-padded, in stream order."""
    ph, pw = padding
    if ph or pw:
        x = np.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0)))
    kh, kw = kernel
    sh, sw = stride
    n, h, w, c = x.shape
    ho, wo = (h - kh) // sh + 1, (w - kw) // sw + 1
    s = x.strides
    return np.lib.stride_tricks.as_strided(
        x, shape=(n, ho, wo, kh, kw, c), strides=(s[0], s[1] * sh, s[2] * sw, s[1], s[2], s[3]), writeable=False)


def accumulate(layer: ComputeLayer, x: np.ndarray) -> np.ndarray:
    """Exact accumulators ``Σ x·w_int`` of a dense or conv layer (int64)."""
    w = layer.w_int.reshape(layer.rows, -1).T  # (K, rows)
    if layer.kind == "dense":
        cols = x.reshape(len(x), -1)
    else:
        cols = windows(x, layer.kernel, layer.stride, layer.padding)
        cols = cols.reshape(cols.shape[:3] + (-1,))
    return cols.astype(np.int64) @ w


def merge(layer: MergeLayer, xs: list[np.ndarray]) -> np.ndarray:
    """``add`` or ``concat`` (channels, the last axis): align each input by its left shift, sum or
    stack, requantize (docs/ir.md § add and concat)."""
    aligned = [np.left_shift(np.asarray(x, dtype=np.int64), a) for x, a in zip(xs, layer.align)]
    total = sum(aligned[1:], aligned[0]) if layer.kind == "add" else np.concatenate(aligned, axis=-1)
    return requantize(total, layer.mult, layer.shift, 0, layer.out_fmt.lo, layer.out_fmt.hi)


def infer_layer(layer: Layer, x: np.ndarray, *more: np.ndarray) -> np.ndarray:
    """One layer on a batch of integer tensors (a merge takes one batch per input)."""
    if isinstance(layer, MergeLayer):
        return merge(layer, [x, *more])
    if isinstance(layer, ComputeLayer):
        lo, hi = layer.out_fmt.lo, layer.out_fmt.hi
        return requantize(accumulate(layer, x), layer.mult, layer.shift, layer.bias, lo, hi)
    win = windows(x, layer.kernel, layer.stride)
    if layer.kind == "maxpool":
        return win.max(axis=(3, 4))
    assert isinstance(layer, PoolLayer)
    return requantize(win.sum(axis=(3, 4), dtype=np.int64), layer.mult, layer.shift, 0,
                      layer.out_fmt.lo, layer.out_fmt.hi)


def memory_bytes(ir: IRModel, samples: int) -> int:
    """What :func:`infer` allocates for ``samples`` inputs: every layer's output (kept for mismatch
    reports) plus the largest layer's padded input and window copy, all int64."""
    kept = math.prod(ir.input_shape) + sum(math.prod(layer.out_shape) for layer in ir.layers)
    temp = 0
    for layer in ir.layers:
        if len(layer.in_shape) == 3 and not isinstance(layer, MergeLayer):
            h, w, c = layer.in_shape
            pad = getattr(layer, "padding", (0, 0))
            padded = (h + 2 * pad[0]) * (w + 2 * pad[1]) * c
            temp = max(temp, padded + math.prod(layer.out_shape[:2]) * layer.kernel[0] * layer.kernel[1] * c)
    return 8 * samples * (kept + temp)


def infer(ir: IRModel, x_int: np.ndarray, keep: bool = False) -> np.ndarray | list[np.ndarray]:
    """The whole network on a batch of integer inputs; ``keep=True`` returns every layer's output (for mismatch reports)."""
    check_memory(memory_bytes(ir, len(x_int)), f"the integer reference of IR '{ir.name}' on {len(x_int)} inputs")
    values = {INPUT: np.asarray(x_int, dtype=np.int64).reshape((len(x_int),) + tuple(ir.input_shape))}
    outs = []
    for i, layer in enumerate(ir.layers):
        x = infer_layer(layer, *(values[name] for name in ir.inputs_of(i)))
        values[layer.name] = x
        outs.append(x)
    return outs if keep else x


def predict(ir: IRModel, x_int: np.ndarray) -> np.ndarray:
    """Class predictions: argmax of the integer logits (first maximum wins ties)."""
    return infer(ir, x_int).reshape(len(x_int), -1).argmax(axis=1)
