"""The README's results, rendered from benchmarks/results/*.json so that no figure can drift.

Every measured figure of README.md sits in a block between ``<!-- results:NAME -->`` and
``<!-- /results:NAME -->``; this script renders each block from the JSON files the benchmarks
write and rewrites the blocks in place. Prose outside the blocks quotes no measured figure.

    python benchmarks/readme_tables.py           # rewrite README.md (the last step of `make bench`)
    python benchmarks/readme_tables.py --check   # exit 1 naming every stale block (tests/test_readme.py)
    python benchmarks/readme_tables.py --record-demo runs/demo   # refresh demo.json, then rewrite

Blocks and sources: ``demo`` (the lines `msq flow` prints at the end of `make demo`) from
demo.json; ``accuracy`` from accuracy.json (+ flow.json for the board's SP2 ratio); ``flow`` from
flow.json (+ demo.json, to say when the two disagree); ``headline`` from headline.json (+ flow.json
for the estimator's error); ``hls_csim``, ``rtl_sim`` and ``resnet8`` from their JSON files.

demo.json is the demo's own record: `make bench` does not run the demo (its run directory is the
user's), so after a change that moves the demo's figures refresh it from a real run with

    make demo && .venv/bin/python benchmarks/readme_tables.py --record-demo runs/demo
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import textwrap
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
README = ROOT / "README.md"
MAKEFILE = ROOT / "Makefile"
BLOCK = re.compile(r"<!-- results:([\w-]+) -->\n(.*?)<!-- /results:\1 -->", re.DOTALL)
# The summary fields the demo block prints (msq/cli.py `flow`), copied by --record-demo.
DEMO_FIELDS = ("model", "dataset", "board", "clock_mhz", "accuracy", "sp2_fraction", "ladder", "rtlsim",
               "throughput_inferences_per_s", "synth")
DEMO_SYNTH_FIELDS = ("tool", "lut", "ff", "dsp", "bram36", "board")
EXACT = 1e-9  # accuracies are means of float percentages: equal up to rounding noise
WIDTH = 100  # the README's prose line width


def _minus(text: str) -> str:
    return text.replace("-", "−")


def _pct(x: float) -> str:
    return _minus(f"{x:+.0f}") + " %"


def _seeds(seeds: list[int]) -> str:
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"seeds {seeds[0]}–{seeds[-1]}"
    return ("seed " if len(seeds) == 1 else "seeds ") + ", ".join(map(str, seeds))


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _source(name: str) -> str:
    return f"Source: [benchmarks/results/{name}.md](benchmarks/results/{name}.md)."


def load_results(results: Path = RESULTS) -> dict[str, Any]:
    """Every results file the README quotes, by stem."""
    return {p.stem: json.loads(p.read_text()) for p in sorted(results.glob("*.json"))}


def demo_out(makefile: Path = MAKEFILE) -> str:
    """The run directory `make demo` writes (the Makefile's DEMO), as `msq flow` prints it."""
    m = re.search(r"^DEMO\s*:=\s*(\S+)\s*$", makefile.read_text(), re.MULTILINE)
    if not m:
        raise SystemExit(f"{makefile}: no 'DEMO := ...' line")
    return m.group(1)


# --- blocks -------------------------------------------------------------------------------------

def demo_block(r: dict[str, Any], out: str) -> str:
    """The closing lines of `msq flow` (msq/cli.py), from the recorded demo summary."""
    s = r["demo"]
    acc, syn = s["accuracy"], s["synth"]
    lines = [f"summary ({out}/summary.json):",
             f"  accuracy: float {acc.get('float', float('nan')):.2f}%, fake-quant {acc['fake_quant']:.2f}%, "
             f"deployed {acc['deployed']:.2f}%; SP2 rows {100 * s['sp2_fraction']:.1f}%"]
    lines += [f"  {rung['check']}: mismatches: {rung['mismatches']} ({rung['samples']} inputs)" for rung in s["ladder"]]
    lines += [f"  {syn['tool']}: LUT {syn['lut']}, FF {syn['ff']}, DSP {syn['dsp']}, BRAM {syn['bram36']:g} "
              f"on {syn['board']}",
              f"  {s['rtlsim']['cycles_per_inference']:g} cycles/inference at {s['clock_mhz']:g} MHz: "
              f"{s['throughput_inferences_per_s']:,.0f} inferences/s",
              f"  report: {out}/report/report.html"]
    return "```\n" + "\n".join(lines) + "\n```"


def accuracy_block(r: dict[str, Any]) -> str:
    a = r["accuracy"]
    models = a["models"]
    schemes = list(next(iter(models.values())))
    lines = [f"**Accuracy** — digits test set, W{a['wbits']}A{a['abits']}, {a['epochs']} epochs, mean of "
             f"{_seeds(a['seeds'])}; `msq` takes the SP2 ratio planned for the {a['board']} board. "
             + _source("accuracy"), "",
             "| model | " + " | ".join(schemes) + " | msq − float | msq − fixed |",
             "|---|" + "---|" * (len(schemes) + 2)]
    for model, row in models.items():
        cells = [f"{row[s]['accuracy_mean']:.2f}" for s in schemes]
        d_float = row["msq"]["accuracy_mean"] - row["float"]["accuracy_mean"]
        d_fixed = row["msq"]["accuracy_mean"] - row["fixed"]["accuracy_mean"]
        lines.append(f"| {model} | " + " | ".join(cells) + f" | {_minus(f'{d_float:+.2f}')} | "
                     f"{_minus(f'{d_fixed:+.2f}')} |")
    planned = _and([f"{row['msq']['sp2_ratio']:.1f} ({m.upper()}: {100 * row['msq']['sp2_fraction']:.0f} % of "
                    "the rows after per-layer rounding up)" for m, row in models.items()])
    lines += ["", f"The planned SP2 ratios on {a['board']} (the fastest design of each topology, ties nearest "
                  f"the board's LUT/DSP balance {a['board_balance_ratio']:.3f}) are {planned}."]
    exported = [(m, s, e) for m, row in models.items() for s, e in row.items() if "deployed_mean" in e]
    names = _and(sorted({s for _, s, _ in exported}, key=schemes.index))
    gap = max(e["max_abs_gap"] for _, _, e in exported)
    if gap < EXACT:
        lines.append(f"Deployed (integer reference) accuracy **equals** fake-quant accuracy for every exported "
                     f"run ({names}; {_and(list(models))}; all seeds).")
    else:
        lines.append(f"Deployed (integer reference) accuracy differs from fake-quant accuracy by up to "
                     f"{gap:.2f} points over the exported runs ({names}; all seeds).")
    return "\n".join(lines)


def flow_block(r: dict[str, Any]) -> str:
    f = r["flow"]
    head = ("| model | float % | fake-quant % | deployed % | SP2 rows | C-sim / RTL mismatches | LUT | FF | DSP | "
            "BRAM36 | cycles / inference | inferences / s | flow wall time |")
    lines = [f"**End to end** — `msq flow` on the demo models, {f['board']}, {f['epochs']} epochs, seed 0. "
             + _source("flow"), "", head, "|" + "---|" * 13]
    for model, row in f["models"].items():
        s = row["summary"]
        a, syn = s["accuracy"], s["synth"]
        lines.append(
            f"| {model} | {a['float']:.2f} | {a['fake_quant']:.2f} | {a['deployed']:.2f} | "
            f"{100 * s['sp2_fraction']:.0f} % | {s['csim']['mismatches']} / {s['rtlsim']['mismatches']} | "
            f"{syn['lut']:,} | {syn['ff']:,} | {syn['dsp']} | {syn['bram36']:g} | "
            f"{s['rtlsim']['cycles_per_inference']:,} | {s['throughput_inferences_per_s']:,.0f} | "
            f"{row['wall_seconds']:.0f} s |")
    summaries = [row["summary"] for row in f["models"].values()]
    tools = {s["synth"]["tool"] for s in summaries}
    tool = "Yosys `synth_xilinx`" if tools == {"yosys"} else _and(sorted(tools))
    families = _and(sorted({s["synth"]["family"] for s in summaries}))
    measured = all(s["rtlsim"]["cycles_per_inference"] == s["cycles_model"]["interval"] for s in summaries)
    clocks = _and([f"{c:g} MHz" for c in sorted({s["clock_mhz"] for s in summaries})])
    lines += ["", f"Resources by {tool} ({families}) for the planner's design; cycles measured in RTL simulation"
                  + (" (equal to the cycle model)" if measured else " (they differ from the cycle model)")
                  + f"; throughput at the board's {clocks}."]
    demo, mlp = r.get("demo"), f["models"].get("mlp", {}).get("summary")
    if demo and mlp and demo["board"] == f["board"]:
        keys = (("fake-quant", lambda s: f"{s['accuracy']['fake_quant']:.2f} %"),
                ("deployed", lambda s: f"{s['accuracy']['deployed']:.2f} %"),
                ("LUT", lambda s: f"{s['synth']['lut']:,}"), ("FF", lambda s: f"{s['synth']['ff']:,}"),
                ("DSP", lambda s: f"{s['synth']['dsp']}"),
                ("cycles / inference", lambda s: f"{s['rtlsim']['cycles_per_inference']:,}"))
        diff = [f"{name} {get(demo)} vs {get(mlp)}" for name, get in keys if get(demo) != get(mlp)]
        if diff:
            lines.append(f"The demo output above comes from a separate run of the MLP row's configuration "
                         f"(benchmarks/results/demo.json) and differs from this row: {', '.join(diff)}; "
                         "`make bench` re-measures this table.")
    return "\n".join(lines)


def _network(net: str, rows: int) -> str:
    """'mlp-128x3' with 266 rows -> 'MLP 128-128-128-10'; 'demo-mlp' -> the digits demo topology."""
    if net == "demo-mlp":
        return "demo MLP 64-64-32-10"
    width, layers = map(int, re.fullmatch(r"mlp-(\d+)x(\d+)", net).groups())
    return "MLP " + "-".join([str(width)] * layers + [str(rows - width * (layers - 1))])


def _estimator_sentence(r: dict[str, Any]) -> str:
    """How far the calibrated estimate is from Yosys over every design synthesized by the benchmarks."""
    pairs = [(s["summary"]["estimate"], s["summary"]["synth"]) for s in r["flow"]["models"].values()
             if s["summary"]["synth"]["tool"] == "yosys"]
    # rows placed and routed (fmax_mhz) are ECP5 designs, counted in LUT4s; the estimate counts xc7 cells
    pairs += [(d["estimate"], d) for d in r["headline"]["results"] if d.get("synthesized") and not d.get("fmax_mhz")]
    if not pairs:
        return ""
    errors = [100 * (est[k] - syn[k]) / syn[k] for est, syn in pairs for k in ("lut", "ff")]
    dsp = "exact" if all(est["dsp"] == syn["dsp"] for est, syn in pairs) else "not exact"
    return (f"On the {len(pairs)} designs synthesized here (the end-to-end models and the headline designs marked "
            f"Yosys) the resource estimator's LUT and FF counts are {_pct(min(errors))} … {_pct(max(errors))} "
            f"off Yosys and its DSP counts are {dsp} (tolerances: [docs/synthesis.md](docs/synthesis.md)).")


def _resource(d: dict[str, Any], key: str) -> str:
    return f"{d[key]:,.0f}" + ("" if d["synthesized"] else " (est.)")


def row_clock_mhz(row: dict[str, Any]) -> float:
    """The clock a headline row's inferences/s use: the board's, or the lower Fmax nextpnr measured."""
    return min(row["clock_mhz"], row["fmax_mhz"]) if row.get("fmax_mhz") else row["clock_mhz"]


def clock_mhz(row: dict[str, Any]) -> str:
    """:func:`row_clock_mhz` for a table, with the Fmax where nextpnr measured one."""
    return f"{row_clock_mhz(row):g}" + (f" (nextpnr Fmax {row['fmax_mhz']:g})" if row.get("fmax_mhz") else "")


def design_label(row: dict[str, Any], headroom: float) -> str:
    """A headline row's design, marked when it measured over the budget or was planned with another
    headroom than the table's (a smaller margin after Yosys measured a plan over it; ECP5's)."""
    planned = row.get("plan_headroom", headroom)
    return row["design"] + ("" if row["fits"] else " (over budget)") + (
        f" (planned at {100 * planned:.0f} %)" if abs(planned - headroom) > 1e-9 else "")


def headline_block(r: dict[str, Any]) -> str:
    """Every board, network and design of headline.json, with MSQ's ratio to each baseline."""
    h = r["headline"]
    lines = ["**MSQ against its baselines at the same board budget** — on our own generated Verilog: "
             f"W{h['wbits']}A{h['abits']} MLPs (random weights, through the product path) as MSQ, dsp-only (every "
             "row fixed point, on DSPs), sp2-only (every row SP2, in LUTs) and lut-dsp-fixed (every row fixed point, "
             "on DSPs and on radix-4 Booth multipliers in the spare LUTs), each with the same folded dataflow, "
             f"DSP packing and planner within {100 * h['headroom']:.0f} % of the board; interval = the cycle "
             "model (equal to RTL simulation); peak = the board's resource-bound MAC/cycle; resources by Yosys "
             "where synthesized, else the calibrated estimate. " + _source("headline"), "",
             "| board | network | design | cycles / inference | clock MHz | inferences/s | of peak | LUT | FF | DSP | BRAM36 "
             "| MSQ vs it |", "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    msq = {(d["board"], d["network"]): d for d in h["results"] if d["design"] == "msq"}
    for d in h["results"]:
        net = _network(d["network"], d["rows"])
        if "interval" not in d:
            lines.append(f"| {d['board']} | {net} | {d['design']} | does not fit | | | | | | | | |")
        else:
            vs = msq.get((d["board"], d["network"]), {}).get(f"vs_{d['design']}")
            lines.append(f"| {d['board']} | {net} | {design_label(d, h['headroom'])} | "
                         f"{d['interval']:g} | {clock_mhz(d)} | {d['inferences_per_s']:,.0f} | {100 * d['peak_fraction']:.0f} % | "
                         f"{_resource(d, 'lut')} | {_resource(d, 'ff')} | {_resource(d, 'dsp')} | {d['bram']:g} | "
                         + (f"**{vs:.2f}×**" if vs else "") + " |")
    auto = [d["auto_of_explore_best"] for d in h["results"] if "auto_of_explore_best" in d]
    share = (f"{100 * min(auto):.0f} %" if auto and min(auto) == max(auto)
             else f"{100 * min(auto):.0f}–{100 * max(auto):.0f} %" if auto else "")
    sweep = (f"The SP2 ratio MSQ plans before training reaches {share} of the throughput of the best ratio an "
             "`msq explore` sweep of the trained model finds. " if auto else "")
    return "\n".join(lines + ["", sweep + _estimator_sentence(r)])


def _machine(text: str) -> str:
    """hls_csim.py's 'x86_64, 3.11.7, 2 cores': the middle item is the Python version."""
    parts = text.split(", ")
    return ", ".join([parts[0], f"Python {parts[1]}", *parts[2:]]) if len(parts) == 3 else text


def hls_csim_block(r: dict[str, Any]) -> str:
    c = r["hls_csim"]
    first = next(iter(c["models"].values()))
    test_set, extra = first["msq"]["test_set"], first["msq"]["samples"] - first["msq"]["test_set"]
    precision = _and(sorted({m["hls4ml"]["precision"] for m in c["models"].values()}))
    lines = [f"**Tool speed** — IR → finished C-sim of the digits test set ({test_set} images, plus {extra} "
             "extreme/random vectors for MSQ): MSQ generates, compiles, simulates and checks every element "
             f"against the integer reference; hls4ml runs `convert → compile → predict` (`{precision}`) on the same "
             f"topology; seconds, one run ({_machine(c['machine'])}). " + _source("hls_csim"), "",
             "| model | MSQ generate | MSQ compile | MSQ simulate | **MSQ total** | mismatches | hls4ml convert "
             "| hls4ml compile | hls4ml predict | **hls4ml total** |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for kind, row in c["models"].items():
        m, h = row["msq"], row["hls4ml"]
        lines.append(f"| {kind} | {m['generate_s']:.2f} | {m['compile_s']:.2f} | {m['simulate_s']:.2f} | "
                     f"**{m['total_s']:.1f}** | {m['mismatches']} | {h['convert_s']:.2f} | {h['compile_s']:.2f} | "
                     f"{h['predict_s']:.2f} | **{h['total_s']:.1f}** |")
    return "\n".join(lines)


def rtl_sim_block(r: dict[str, Any]) -> str:
    rows = r["rtl_sim"]["rows"]
    exact = all(x["cycles_per_inference"] == x["cycles_per_inference_model"] and
                x["latency_cycles"] == x["latency_model"] for x in rows)
    lines = ["RTL simulation through cocotb (the unplanned design: simd 1, one row per fold; no bubbles or "
             "back-pressure): inferences per wall-clock second; cycles measured in simulation, "
             + ("equal to the cycle model. " if exact else "which differ from the cycle model. ")
             + _source("rtl_sim"), "",
             "| model | simulator | inferences | inferences / s | simulated cycles / s | cycles / inference "
             "| latency (cycles) | build s |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for x in rows:
        lines.append(f"| {x['model']} | {x['simulator']} | {x['inferences']} | {x['inferences_per_second']:.1f} | "
                     f"{x['cycles_per_second']:,} | {x['cycles_per_inference']:,} | {x['latency_cycles']:,} | "
                     f"{x['build_seconds']:.1f} |")
    return "\n".join(lines)


def resnet8_block(r: dict[str, Any]) -> str:
    x = r["resnet8"]
    measured = x.get("resources") == "yosys"
    rtl = x["rtl_mismatches"] if x["rtl_mismatches"] is not None else "not run"
    rtl_vectors = f" ({x['rtl_vectors']} inputs)" if x.get("rtl_vectors") else ""
    est = "" if measured else " (est)"
    rate = f"{x['clock_mhz'] * 1e6 / x['cycles_per_inference']:,.0f}" if "clock_mhz" in x else "—"
    lines = [f"**ResNet-8** (MLPerf Tiny topology, 32×32×3, W4A4) on {x['board']}: trained {x['epochs']} epoch(s) on "
             f"the generated `{x['dataset']}` set (its accuracy says nothing about real images), planned, "
             "C-simulated and simulated in Verilator; resources "
             + ("measured by Yosys. " if measured else "estimated. ") + _source("resnet8"), "",
             "| C-sim mismatches | RTL mismatches | fits 80 % | cycles / inference | inferences / s | LUT | FF | DSP "
             "| BRAM36 |", "|---:|---|---|---:|---:|---:|---:|---:|---:|",
             f"| {x['csim_mismatches']} ({x['vectors']} inputs) | {rtl}{rtl_vectors} | {'yes' if x['fits'] else 'no'} | "
             f"{x['cycles_per_inference']:,.0f} | {rate} | {x['lut']:,}{est} | {x['ff']:,}{est} | {x['dsp']:,}{est} | "
             f"{x['bram']:g}{est} |"]
    return "\n".join(lines)


RENDERERS: dict[str, Callable[[dict[str, Any]], str]] = {
    "accuracy": accuracy_block, "flow": flow_block, "headline": headline_block,
    "hls_csim": hls_csim_block, "rtl_sim": rtl_sim_block, "resnet8": resnet8_block}


def _wrap(block: str) -> str:
    """Prose paragraphs wrapped at the README's line width; tables as they are."""
    paragraphs = block.split("\n\n")
    return "\n\n".join(p if p.startswith("|") else
                        textwrap.fill(" ".join(p.split("\n")), WIDTH, break_long_words=False, break_on_hyphens=False)
                        for p in paragraphs)


def render(results: dict[str, Any], out: str) -> dict[str, str]:
    """Every block's text, by name."""
    blocks = {name: _wrap(fn(results)) for name, fn in RENDERERS.items()}
    blocks["demo"] = demo_block(results, out)
    return blocks


# --- README -------------------------------------------------------------------------------------

def update(text: str, blocks: dict[str, str]) -> str:
    """``text`` with every marked block replaced by its rendering; every block must be marked once."""
    found = BLOCK.findall(text)
    names = [name for name, _ in found]
    unknown = sorted(set(names) - set(blocks))
    missing = sorted(set(blocks) - set(names))
    twice = sorted({n for n in names if names.count(n) > 1})
    if unknown or missing or twice:
        raise ValueError(f"README markers: unknown {unknown}, missing {missing}, repeated {twice}")
    return BLOCK.sub(lambda m: f"<!-- results:{m[1]} -->\n{blocks[m[1]]}\n<!-- /results:{m[1]} -->", text)


def stale(text: str, blocks: dict[str, str]) -> list[str]:
    """Names of the blocks whose text differs from their rendering."""
    current = dict(BLOCK.findall(update(text, blocks)))
    return [name for name, body in BLOCK.findall(text) if body != current[name]]


def record_demo(run: Path, results: Path = RESULTS) -> Path:
    """Copy what the demo block needs from RUN/summary.json into results/demo.json."""
    summary = json.loads((run / "summary.json").read_text())
    missing = [k for k in DEMO_FIELDS if k not in summary]
    if missing:
        raise SystemExit(f"{run}/summary.json: no {', '.join(missing)} (did the flow finish?)")
    demo = {k: summary[k] for k in DEMO_FIELDS}
    demo["synth"] = {k: summary["synth"][k] for k in DEMO_SYNTH_FIELDS}
    demo["rtlsim"] = {"cycles_per_inference": summary["rtlsim"]["cycles_per_inference"]}
    path = results / "demo.json"
    path.write_text(json.dumps(demo, indent=2, ensure_ascii=False) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if a block differs from its rendering")
    ap.add_argument("--record-demo", type=Path, metavar="RUN_DIR", help="copy RUN_DIR/summary.json into demo.json")
    ap.add_argument("--readme", type=Path, default=README)
    args = ap.parse_args(argv)
    if args.record_demo:
        print(f"wrote {record_demo(args.record_demo)}")
    text = args.readme.read_text()
    blocks = render(load_results(), demo_out())
    if args.check:
        names = stale(text, blocks)
        for name in names:
            print(f"{args.readme}: block '{name}' is stale; run benchmarks/readme_tables.py", file=sys.stderr)
        return 1 if names else 0
    new = update(text, blocks)
    if new != text:
        args.readme.write_text(new)
    print(f"{args.readme}: {len(blocks)} results blocks up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
