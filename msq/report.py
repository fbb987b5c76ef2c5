"""``msq report``: a self-contained HTML report and a Markdown one for a flow's run directory.

Reads ``summary.json`` (written by ``msq flow``) and the IR; draws the per-layer weight
histograms split by scheme, the row-assignment map, resources against the board and cycles per
layer. The HTML embeds its figures (base64 PNG) so it can be mailed as one file; the Markdown
links the PNGs written beside it.
"""
from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from msq import __version__, atomic, numerics  # noqa: E402
from msq.numerics import RowScheme  # noqa: E402
from msq.ir.model import SCHEME_SP2, IRModel  # noqa: E402
from msq.rundir import RunDir  # noqa: E402

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


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.0f}" if value.is_integer() or abs(value) >= 1000 else f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return "—" if value is None else str(value)


def _tables(s: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    acc = s.get("accuracy", {})
    tables = [("Accuracy (test set, %)", ["float baseline", "fake-quant (PyTorch)", "deployed (integer)"],
               [[_fmt(acc.get("float")), _fmt(acc.get("fake_quant")), _fmt(acc.get("deployed"))]])]
    ladder = s.get("ladder", [])
    tables.append(("Verification ladder (bit-exact, every output element)", ["check", "samples", "mismatches"],
                   [[step["check"], _fmt(step["samples"]), _fmt(step["mismatches"])] for step in ladder]))
    plan, cycles = s.get("plan", {}), s.get("layer_cycles", {})
    if plan:
        tables.append(("Plan (planner, per layer)", ["layer", "SIMD", "SP2 PE", "fixed PE (DSP)", "fixed PE (LUT)",
                                                    "cycles / frame"],
                       [[name, _fmt(p["simd"]), _fmt(p["pe_sp2"]), _fmt(p["pe_fixed"]), _fmt(p.get("pe_fixed_lut", 0)),
                         _fmt(cycles.get(name))]
                        for name, p in plan["layers"].items()]))
    synth, estimate = s.get("synth", {}), s.get("estimate", {})
    if synth:
        util = synth.get("utilization", {})
        version = synth.get("version", "").split("(")[0].strip()
        tables.append((f"Resources ({synth.get('tool')}: {version})",
                       ["resource", "used", "planner estimate", "available", "%"],
                       [[k.upper(), _fmt(v["used"]), _fmt(estimate.get(k)), _fmt(v["available"]),
                         f"{v['percent']:.2f}"] for k, v in util.items()]
                       + [["CARRY", _fmt(synth.get("carry")), "", "", ""]]))
    rt = s.get("rtlsim", {})
    tables.append(("Throughput", ["cycles / inference", "latency (cycles)", "clock (MHz)", "inferences / s"],
                   [[_fmt(rt.get("cycles_per_inference")), _fmt(rt.get("latency_cycles")),
                     _fmt(s.get("clock_mhz")), _fmt(s.get("throughput_inferences_per_s"))]]))
    return tables


def _md_table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _html_table(head: list[str], rows: list[list[str]]) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    trs = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{th}</tr>{trs}</table>"


def write_report(run: RunDir) -> tuple[Path, Path]:
    """Write ``report/report.html`` and ``report/report.md`` (with PNGs) of a flow's run directory;
    return both paths."""
    s = atomic.read_json(run.summary_json, f"run 'msq flow --out {run}' first")
    ir = run.ir
    figures = {"weights.png": ("Weights per layer, by scheme", weight_histograms(ir)),
               "assignment.png": ("Row assignment", assignment_map(ir))}
    if s.get("synth"):
        figures["resources.png"] = ("Resources against the board", resource_bars(s["synth"]))
    if s.get("layer_cycles"):
        figures["cycles.png"] = ("Cycles per layer", cycle_bars(s["layer_cycles"]))
    out = run.report_dir
    title = f"MSQ report: {s.get('run', run.name)} ({s.get('model', '?')} on {s.get('board', '?')})"
    intro = (f"Generated by msq {__version__}. SP2 rows: {100 * s.get('sp2_fraction', 0):.1f} %. "
             f"Model {s.get('model')}, dataset {s.get('dataset')}, board {s.get('board')}.")
    md = [f"# {title}", "", intro, ""]
    body = [f"<h1>{html.escape(title)}</h1>", f"<p>{html.escape(intro)}</p>"]
    for caption, head, rows in _tables(s):
        md += [f"## {caption}", "", _md_table(head, rows), ""]
        body += [f"<h2>{html.escape(caption)}</h2>", _html_table(head, rows)]
    files: dict[str, bytes] = {}
    for name, (caption, png) in figures.items():
        files[name] = png
        md += [f"## {caption}", "", f"![{caption}]({name})", ""]
        b64 = base64.b64encode(png).decode()
        body += [f"<h2>{html.escape(caption)}</h2>", f'<img alt="{html.escape(caption)}" src="data:image/png;base64,{b64}">']
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
             "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #bbb;padding:.3em .7em;text-align:right}"
             "th{background:#eee}img{max-width:100%}")
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n")
    files.update({"report.html": page.encode(), "report.md": "\n".join(md).encode()})
    with atomic.atomic_dir(out) as tmp:  # the page and its figures swapped in together
        for name, data in files.items():
            (tmp / name).write_bytes(data)
    return out / "report.html", out / "report.md"
