"""Human-readable per-layer summary of an IR (printed by ``msq export``, tabled by ``msq report``)."""
from __future__ import annotations

import numpy as np

from msq.ir.model import ComputeLayer, IRModel

COLUMNS = ("layer", "kind", "in", "out", "SP2/fixed rows", "wbits", "in fmt", "out fmt", "acc")
_WIDTHS = (-10, -8, 12, 12, 15, 5, 7, 7, 4)  # negative: left-aligned


def fmt_text(fmt) -> str:
    """``u4.2``: unsigned, 4 bits, 2 fraction bits (real = int * 2^-2)."""
    return f"{'s' if fmt.signed else 'u'}{fmt.bits}.{fmt.frac}"


def summary_rows(ir: IRModel) -> list[list[str]]:
    """One row per layer under :data:`COLUMNS`: kind, shapes, SP2/fixed rows, bit widths and the
    accumulator width (``-`` where a pooling layer has none)."""
    rows = []
    for layer in ir.layers:
        if isinstance(layer, ComputeLayer):
            counts = f"{len(layer.sp2_rows)}/{len(layer.fixed_rows)}"
            wbits, acc = str(layer.wbits), str(layer.acc_bits)
        else:
            counts, wbits, acc = "-", "-", str(layer.acc_bits or "-")
        rows.append([layer.name, layer.kind, str(list(layer.in_shape)), str(list(layer.out_shape)), counts, wbits,
                     fmt_text(layer.in_fmt), fmt_text(layer.out_fmt), acc])
    return rows


def requant_scales(layer) -> tuple[float, float]:
    """Smallest and largest requantization factor ``mult * 2^-shift`` of a layer's rows."""
    scale = np.asarray(layer.mult, dtype=np.float64) * np.exp2(-np.asarray(layer.shift, dtype=np.float64))
    return float(scale.min()), float(scale.max())


def summary_table(ir: IRModel) -> str:
    """:func:`summary_rows` as fixed-width text, under a line with the input's shape and format."""
    line = lambda cells: " ".join(f"{c:{'<' if w < 0 else '>'}{abs(w)}s}" for c, w in zip(cells, _WIDTHS))  # noqa: E731
    head = line(COLUMNS)
    return "\n".join([f"IR '{ir.name}': input {list(ir.input_shape)} {fmt_text(ir.input_fmt)}", head, "-" * len(head),
                      *(line(r) for r in summary_rows(ir))])
