"""The figures of ``msq report``: PNG bytes drawn with matplotlib's Agg backend (no display),
from the IR and the run's JSON files only.
"""
from __future__ import annotations

import io
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from msq import numerics  # noqa: E402
from msq.ir.model import SCHEME_SP2, IRModel  # noqa: E402
from msq.numerics import RowScheme  # noqa: E402

SP2_COLOR, FIXED_COLOR = "#d95f02", "#1b9e77"


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def weight_histograms(ir: IRModel) -> bytes:
    """Per compute layer: normalised weight levels q = w_int / D, SP2 rows vs fixed rows."""
    layers = ir.compute_layers()
    fig, axes = plt.subplots(1, len(layers), figsize=(3.6 * len(layers), 2.8), squeeze=False)
    for ax, layer in zip(axes[0], layers):
        rows = layer.w_int.reshape(layer.rows, -1)
        sp2 = layer.scheme == SCHEME_SP2
        bins = np.linspace(-1.05, 1.05, 43)
        for mask, scheme, color in ((~sp2, RowScheme.FIXED, FIXED_COLOR), (sp2, RowScheme.SP2, SP2_COLOR)):
            if mask.any():
                q = rows[mask].ravel() / numerics.denominator(scheme, layer.wbits)
                ax.hist(q, bins=bins, color=color, alpha=0.7, label=f"{scheme} ({int(mask.sum())} rows)")
        ax.set_title(f"{layer.name} ({layer.wbits}-bit)")
        ax.set_xlabel("weight level q = w_int / D")
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("weights")
    return _png(fig)


def assignment_map(ir: IRModel) -> bytes:
    """One strip per compute layer, one cell per row: SP2 or fixed."""
    layers = ir.compute_layers()
    width = max(layer.rows for layer in layers)
    fig, ax = plt.subplots(figsize=(min(14, 2 + width * 0.12), 0.5 + 0.45 * len(layers)))
    for i, layer in enumerate(layers):
        for r, s in enumerate(layer.scheme):
            ax.add_patch(plt.Rectangle((r, i), 0.9, 0.8, color=SP2_COLOR if s == SCHEME_SP2 else FIXED_COLOR))
    ax.set_xlim(0, width)
    ax.set_ylim(len(layers), -0.2)
    ax.set_yticks([i + 0.4 for i in range(len(layers))], [layer.name for layer in layers])
    ax.set_xlabel("row (output neuron / filter)")
    ax.set_title("row assignment: SP2 (orange, LUTs) vs fixed (green, DSPs)")
    return _png(fig)


def resource_bars(synth: dict[str, Any]) -> bytes:
    """Used share of the board's LUT, FF, DSP and BRAM."""
    util = synth["utilization"]
    keys = [k for k in ("lut", "ff", "dsp", "bram36") if k in util]
    pct = [util[k]["percent"] for k in keys]
    fig, ax = plt.subplots(figsize=(6, 2.4))
    ax.barh(keys, pct, color=["#7570b3", "#66a61e", FIXED_COLOR, "#e6ab02"][:len(keys)])
    for y, k in enumerate(keys):
        ax.text(pct[y], y, f" {util[k]['used']:g} / {util[k]['available']:g}", va="center", fontsize=8)
    ax.set_xlim(0, max(100.0, max(pct) * 1.3))
    ax.set_xlabel(f"% of {synth['board']} ({synth['part']}), {synth['tool']}")
    ax.invert_yaxis()
    return _png(fig)


def cycle_bars(cycles: dict[str, int]) -> bytes:
    """Cycles each layer's engine spends per inference: the largest sets the throughput."""
    fig, ax = plt.subplots(figsize=(6, 0.6 + 0.35 * len(cycles)))
    names = list(cycles)
    ax.barh(names, [cycles[n] for n in names], color="#7570b3")
    ax.set_xlabel("cycles per inference (engine busy)")
    ax.invert_yaxis()
    return _png(fig)


def training_curves(histories: dict[str, list[dict[str, Any]]]) -> bytes:
    """Training loss and test accuracy per epoch, one line per trained model (MSQ, float baseline)."""
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(9, 3))
    for label, history in histories.items():
        epochs = [h["epoch"] for h in history]
        loss_ax.plot(epochs, [h["loss"] for h in history], marker=".", label=label)
        acc_ax.plot(epochs, [h["test_accuracy"] for h in history], marker=".", label=label)
    loss_ax.set(xlabel="epoch", ylabel="training loss", title="loss")
    loss_ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    acc_ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    acc_ax.set(xlabel="epoch", ylabel="test accuracy (%)", title="accuracy")
    for ax in (loss_ax, acc_ax):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _png(fig)


def instance_bars(instances: dict[str, dict[str, Any]]) -> bytes:
    """LUT, FF, DSP and BRAM of each layer (and the top's own logic), one panel per resource."""
    names = list(instances)
    keys = ("lut", "ff", "dsp", "bram36")
    fig, axes = plt.subplots(1, len(keys), figsize=(10, 0.8 + 0.32 * len(names)), sharey=True)
    for ax, key, color in zip(axes, keys, ("#7570b3", "#66a61e", FIXED_COLOR, "#e6ab02")):
        values = [instances[n][key] for n in names]
        ax.barh(names, values, color=color)
        ax.set_xlim(0, max(1, max(values) * 1.05))  # a resource no layer uses: an empty axis from 0
        ax.set_xlabel(key.upper())
    axes[0].invert_yaxis()
    fig.suptitle("synthesized resources per layer module", fontsize=10)
    return _png(fig)
