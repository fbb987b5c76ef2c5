"""Human-readable per-layer summary of an IR (printed by ``msq export``)."""
from __future__ import annotations

from msq.ir.model import ComputeLayer, IRModel


def _fmt(fmt) -> str:
    return f"{'s' if fmt.signed else 'u'}{fmt.bits}.{fmt.frac}"


def summary_table(ir: IRModel) -> str:
    """One line per layer: kind, shapes, SP2/fixed rows, bit widths and accumulator width; a layer
    with high-precision rows shows them as ``+H`` rows and ``wbits/high_bits``.

    Formats read ``u4.2``: unsigned, 4 bits, 2 fraction bits (real = int * 2^-2).
    """
    head = f"{'layer':10s} {'kind':8s} {'in':>12s} {'out':>12s} {'SP2/fixed rows':>15s} {'wbits':>5s} " \
           f"{'in fmt':>7s} {'out fmt':>7s} {'acc':>4s}"
    lines = [f"IR '{ir.name}': input {list(ir.input_shape)} {_fmt(ir.input_fmt)}", head, "-" * len(head)]
    for layer in ir.layers:
        if isinstance(layer, ComputeLayer):
            rows = f"{len(layer.sp2_rows)}/{len(layer.fixed_rows)}"
            wbits, acc = str(layer.wbits), str(layer.acc_bits)
            if layer.high_bits:
                rows, wbits = f"{rows}+{len(layer.high_rows)}H", f"{wbits}/{layer.high_bits}"
        else:
            rows, wbits, acc = "-", "-", str(layer.acc_bits or "-")
        lines.append(f"{layer.name:10s} {layer.kind:8s} {str(list(layer.in_shape)):>12s} "
                     f"{str(list(layer.out_shape)):>12s} {rows:>15s} {wbits:>5s} {_fmt(layer.in_fmt):>7s} "
                     f"{_fmt(layer.out_fmt):>7s} {acc:>4s}")
    return "\n".join(lines)
