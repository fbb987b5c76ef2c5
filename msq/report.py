"""``msq report``: a self-contained HTML report and a Markdown one for a flow's run directory.

Reads files only (``summary.json`` written by ``msq flow``, the IR, ``plan.json``, the training
``metrics.json`` of the run and of its float baseline, the synthesis results and, when Vivado wrote
one, its timing summary) and never imports training code. Tables: accuracy, the verification
ladder, the IR, per layer (rows per scheme, engines, cycles, synthesized resources and logic
depth), resources, timing and throughput. Figures (``msq.report_figures``): training curves,
weights by scheme, the row assignment, resources per layer and against the board, cycles per
layer. The HTML embeds its figures (base64 PNG) so it can be mailed as one file; the Markdown
links the PNGs written beside it.
"""
from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any, NamedTuple

from msq import __version__, atomic, report_figures as figs
from msq.backends.synth import vivado
from msq.backends.rtl.generate import DESIGN_JSON, read_design
from msq.backends.synth.driver import SYNTH_JSON, TOP
from msq.backends.rtl.verilog import layer_module
from msq.errors import MSQError
from msq.ir.model import ComputeLayer, IRModel
from msq.ir.plan import Plan, all_engine_rows, load_plan
from msq.ir.summary import COLUMNS, fmt_text, requant_scales, summary_rows
from msq.rundir import RunDir

Table = tuple[str, list[str], list[list[str]]]  # caption, header, rows of text


class Figure(NamedTuple):
    name: str  # the PNG's file name beside report.md
    caption: str
    png: bytes

ENGINE_LABELS = {"sp2": "SP2 engine", "fixed": "fixed engine (DSP)", "fixed_lut": "fixed engine (LUT)",
                 "fixed_hi": "high-precision engine (DSP)"}
HISTORY_KEYS = ("epoch", "loss", "test_accuracy")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.0f}" if value.is_integer() or abs(value) >= 1000 else f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return "—" if value is None else str(value)


def _ns(value: float | None) -> str:
    """A slack in ns to the picosecond, as Vivado prints it."""
    return "—" if value is None else f"{value:.3f}"


def ir_table(ir: IRModel) -> Table:
    """The IR per layer (as ``msq export`` prints it) with each layer's range of requantization factors."""
    rows = []
    for layer, row in zip(ir.layers, summary_rows(ir)):
        lo, hi = requant_scales(layer)
        rows.append(row + [f"{lo:.3g}" if lo == hi else f"{lo:.3g} – {hi:.3g}"])
    return (f"IR '{ir.name}' (input {list(ir.input_shape)} {fmt_text(ir.input_fmt)}; formats: sign, bits, "
            "fraction bits)", [*COLUMNS, "requant mult·2^-shift"], rows)


def layer_table(ir: IRModel, plan: Plan | None, cycles: dict[str, int], instances: dict[str, dict]) -> Table:
    """Per layer: its engines (rows / PE of each), SIMD, cycles, and the Yosys counts and logic depth
    of its module; then the design's other instances (output buffer, the top's glue logic)."""
    res_keys = ("lut", "ff", "dsp", "bram36", "lut_levels")
    high = any(layer.high_bits for layer in ir.compute_layers())  # the high rows' column only where there are some
    labels = {k: v for k, v in ENGINE_LABELS.items() if high or k != "fixed_hi"}
    head = ["layer", "SIMD", *(f"{label} rows / PE" for label in labels.values()), "cycles / frame",
            "LUT", "FF", "DSP", "BRAM36", "LUT levels"]
    by_module = {v.get("module"): v for v in instances.values()}
    rows = []
    for layer in ir.layers:
        lp = plan.layers[layer.name] if plan else None
        engines = {e.kind: f"{len(e.rows)} / {e.pe}" if len(e.rows) else "—"
                   for e in all_engine_rows(layer, lp)} if lp and isinstance(layer, ComputeLayer) else {}
        synth = by_module.get(layer_module(layer.name), {})
        rows.append([layer.name, _fmt(lp.simd if lp else None), *(engines.get(k, "—") for k in labels),
                     _fmt(cycles.get(layer.name)), *(_fmt(synth.get(k)) for k in res_keys)])
    layer_modules = {layer_module(layer.name) for layer in ir.layers}
    for name, synth in instances.items():
        if synth.get("module") not in layer_modules:
            label = f"{name} (top-level logic)" if name == TOP else f"{name} ({synth.get('module')})"
            rows.append([label, "", *([""] * len(labels)), "", *(_fmt(synth.get(k)) for k in res_keys)])
    return "Per layer (plan, cycle model, Yosys per layer module)", head, rows


def timing_table(synth: dict[str, Any], vivado_timing: dict[str, Any] | None) -> Table | None:
    """What the run knows about timing: Vivado's timing summary, nextpnr's post-route Fmax (ECP5),
    Yosys' logic depth (AMD); None when it knows nothing."""
    head = ["source", "target clock (MHz)", "WNS (ns)", "TNS (ns)", "failing endpoints", "Fmax (MHz)", "LUT levels"]
    target = synth.get("clock_mhz")
    rows = []
    if vivado_timing:
        t = vivado_timing
        target = 1000.0 / t["period_ns"] if t.get("period_ns") else target
        rows.append([f"Vivado report_timing_summary, clock {t.get('clock') or '?'} (post-synthesis)", _fmt(target),
                     _ns(t.get("wns_ns")), _ns(t.get("tns_ns")), _fmt(t.get("failing_endpoints")),
                     _fmt(t.get("fmax_mhz")), ""])
    if synth.get("fmax_mhz") is not None:
        rows.append([f"{synth.get('tool')} (post-route)", _fmt(synth.get("clock_mhz")), _ns(synth.get("wns_ns")),
                     "", "", _fmt(synth.get("fmax_mhz")), ""])
    if synth.get("lut_levels") is not None:
        rows.append(["Yosys logic depth (register to register)", "", "", "", "", "", _fmt(synth["lut_levels"])])
    return ("Timing", head, rows) if rows else None


def training_history(path: Path) -> list[dict[str, Any]]:
    """The per-epoch ``history`` of a training ``metrics.json`` (empty when the file is absent:
    an imported run, a flow without baseline); a malformed one is an error naming the file."""
    if not path.is_file():
        return []
    history = atomic.read_json(path, "expected the metrics.json 'msq train' writes").get("history")
    if not isinstance(history, list) or not all(
            isinstance(h, dict) and all(isinstance(h.get(k), (int, float)) for k in HISTORY_KEYS) for h in history):
        raise MSQError(f"{path}: field 'history' must be a list of {{{', '.join(HISTORY_KEYS)}}} numbers per epoch")
    return history


def with_stage_files(run: RunDir, s: dict[str, Any]) -> dict[str, Any]:
    """The summary, with the synthesis results and cycles per layer read from the stages' own files
    when the summary has none (a flow stopped early, then ``msq rtl`` and ``msq synth`` by hand)."""
    s = dict(s)
    if not s.get("synth") and (run.synth_dir / SYNTH_JSON).is_file():
        s["synth"] = atomic.read_json(run.synth_dir / SYNTH_JSON, "expected the synth.json 'msq synth' writes")
    if not s.get("layer_cycles") and (run.rtl_dir / DESIGN_JSON).is_file():
        s["layer_cycles"] = read_design(run.rtl_dir)["cycles"]["layers"]
    return s


def _sections(run: RunDir, s: dict[str, Any]) -> list[Table | Figure]:
    """The report's tables and figures, in reading order: accuracy and training, verification,
    the IR, per layer, the whole design."""
    ir, s = run.ir, with_stage_files(run, s)
    acc, synth, estimate, rt = s.get("accuracy", {}), s.get("synth", {}), s.get("estimate", {}), s.get("rtlsim", {})
    out: list[Table | Figure] = [("Accuracy (test set, %)",
                                  ["float baseline", "fake-quant (PyTorch)", "deployed (integer)"],
                                  [[_fmt(acc.get("float")), _fmt(acc.get("fake_quant")), _fmt(acc.get("deployed"))]])]
    histories = {label: h for label, h in (("MSQ (fake-quant)", training_history(run.metrics_json)),
                                           ("float baseline", training_history(RunDir(run.float_dir).metrics_json)))
                 if h}
    if histories:
        out.append(Figure("training.png", "Training curves", figs.training_curves(histories)))
    out.append(("Verification ladder (bit-exact, every output element)", ["check", "samples", "mismatches"],
                [[step["check"], _fmt(step["samples"]), _fmt(step["mismatches"])] for step in s.get("ladder", [])]))
    out += [ir_table(ir), Figure("weights.png", "Weights per layer, by scheme", figs.weight_histograms(ir)),
            Figure("assignment.png", "Row assignment", figs.assignment_map(ir))]
    plan = load_plan(ir, run.plan_json) if run.plan_json.is_file() else None
    instances = synth.get("instances") or {}
    out.append(layer_table(ir, plan, s.get("layer_cycles", {}), instances))
    if instances:
        out.append(Figure("layer_resources.png", "Resources per layer module (Yosys)", figs.instance_bars(instances)))
    if s.get("layer_cycles"):
        out.append(Figure("cycles.png", "Cycles per layer", figs.cycle_bars(s["layer_cycles"])))
    if synth:
        util = synth.get("utilization", {})
        version = synth.get("version", "").split("(")[0].strip()
        out.append((f"Resources ({synth.get('tool')}: {version})",
                    ["resource", "used", "planner estimate", "available", "%"],
                    [[k.upper(), _fmt(v["used"]), _fmt(estimate.get(k)), _fmt(v["available"]), f"{v['percent']:.2f}"]
                     for k, v in util.items()] + [["CARRY", _fmt(synth.get("carry")), "", "", ""]]))
        out.append(Figure("resources.png", "Resources against the board", figs.resource_bars(synth)))
    timing = timing_table(synth, vivado.read_timing(run.synth_dir) or synth.get("vivado_timing"))
    if timing:
        out.append(timing)
    out.append(("Throughput", ["cycles / inference", "latency (cycles)", "clock (MHz)", "inferences / s"],
                [[_fmt(rt.get("cycles_per_inference")), _fmt(rt.get("latency_cycles")),
                  _fmt(s.get("clock_mhz")), _fmt(s.get("throughput_inferences_per_s"))]]))
    return out


def _md_table(head: list[str], rows: list[list[str]]) -> str:
    cell = lambda text: text.replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(map(cell, head)) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(map(cell, r)) + " |" for r in rows]
    return "\n".join(lines)


def _html_table(head: list[str], rows: list[list[str]]) -> str:
    """A table in a horizontally scrolling box: a wide one never pushes the page past the window."""
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    trs = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<div class='scroll'><table><tr>{th}</tr>{trs}</table></div>"


STYLE = ("*{box-sizing:border-box}body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;"
         "color:#222}.scroll{overflow-x:auto;max-width:100%}table{border-collapse:collapse;margin:.5em 0}"
         "td,th{border:1px solid #bbb;padding:.3em .7em;text-align:right}td:first-child,th:first-child{text-align:left}"
         "th{background:#eee}img{display:block;max-width:100%;height:auto}")


def write_report(run: RunDir) -> tuple[Path, Path]:
    """Write ``report/report.html`` and ``report/report.md`` (with PNGs) of a flow's run directory;
    return both paths."""
    s = atomic.read_json(run.summary_json, f"run 'msq flow --out {run}' first")
    out = run.report_dir
    title = f"MSQ report: {s.get('run', run.name)} ({s.get('model', '?')} on {s.get('board', '?')})"
    intro = (f"Generated by msq {__version__}. SP2 rows: {100 * s.get('sp2_fraction', 0):.1f} %. "
             f"Model {s.get('model')}, dataset {s.get('dataset')}, board {s.get('board')}.")
    md = [f"# {title}", "", intro, ""]
    body = [f"<h1>{html.escape(title)}</h1>", f"<p>{html.escape(intro)}</p>"]
    files: dict[str, bytes] = {}
    for section in _sections(run, s):
        if isinstance(section, Figure):
            files[section.name] = section.png
            md += [f"## {section.caption}", "", f"![{section.caption}]({section.name})", ""]
            b64 = base64.b64encode(section.png).decode()
            body += [f"<h2>{html.escape(section.caption)}</h2>",
                     f'<img alt="{html.escape(section.caption)}" src="data:image/png;base64,{b64}">']
        else:
            caption, head, rows = section
            md += [f"## {caption}", "", _md_table(head, rows), ""]
            body += [f"<h2>{html.escape(caption)}</h2>", _html_table(head, rows)]
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body>{''.join(body)}</body></html>\n")
    files.update({"report.html": page.encode(), "report.md": "\n".join(md).encode()})
    with atomic.atomic_dir(out) as tmp:  # the page and its figures swapped in together
        for name, data in files.items():
            (tmp / name).write_bytes(data)
    return out / "report.html", out / "report.md"
