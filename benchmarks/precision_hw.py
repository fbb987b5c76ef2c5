"""Hardware of the precision rows (issue 16): the models benchmarks/accuracy.py's precision rows
train (uniform 4-bit, layer-wise mixed precision with the first and last weight layer 8-bit, and
intra-layer mixed precision ``--high-bits 8 --high-fraction F`` at equal average bits and at
F = 0.1), planned for pynq-z2 by the product's planner (the call ``msq plan`` and ``msq flow`` make).

Per model and precision row (seed 0): average weight bits, fake-quant and deployed (integer
reference) accuracy, the plan's cycles per inference (the exact cycle model), its calibrated
estimate (LUT/FF/DSP/BRAM36), and the rows each engine kind computes (sp2, fixed on DSPs,
fixed_lut on LUT multipliers, fixed_hi: the high-precision rows' DSP engine). With ``--rtlsim N``
the Verilog of the plan runs N test images (plus the extreme inputs) in Verilator against the
integer reference (mismatches and the measured cycles per inference); with ``--synth`` it is
synthesized with Yosys for pynq-z2 (the flow's synthesis call): LUT/FF/DSP/BRAM36, logic depth,
and whether it fits 80 % of every resource.

    .venv/bin/python benchmarks/precision_hw.py [--out benchmarks/results] [--models mlp cnn]
        [--epochs 40] [--synth] [--rtlsim 8] [--keep DIR] [--precisions TEXT ..] [--update]

Writes OUT/precision_hw.json and OUT/precision_hw.md; the JSON is rewritten after every row, so a
long run that stops keeps the rows it finished.
"""
from __future__ import annotations

import argparse
import json
import re
import tempfile
import time
from pathlib import Path
from typing import Any

from msq import atomic
from msq.backends.rtl.generate import generate_rtl
from msq.backends.rtl.simulate import simulate
from msq.backends.synth.driver import synthesize
from msq.boards import Board, load_board
from msq.design import planner
from msq.design.estimate import Resources
from msq.frontend.data import Dataset, load_dataset
from msq.frontend.export import export_model
from msq.ir.model import IRModel
from msq.ir.plan import ENGINES, Plan, all_engine_rows
from msq.progress import Step
from accuracy import average_bits, deployed_accuracy, precision_variants, train_precision_row  # benchmarks/ is on the path of a script run from it

RESULTS = Path(__file__).resolve().parent / "results"
MODELS = ("mlp", "cnn")
BOARD = "pynq-z2"
DATASET = "digits"
SEED = 0
EXTREME_VECTORS = 2  # extreme and random inputs appended to the test images of a simulation


def design_name(model: str, label: str) -> str:
    """A label-safe name (msq.names) for a precision row's design: ``mlp-intra-layer-F-0.1``."""
    return f"{model}-" + re.sub(r"[^A-Za-z0-9.]+", "-", label).strip("-")


def engine_rows(ir: IRModel, plan: Plan) -> dict[str, int]:
    """Rows each engine kind computes, summed over the layers (the fixed rows split between the
    DSP and LUT engines as the plan's PEs decide)."""
    out = dict.fromkeys(ENGINES, 0)
    for layer in ir.compute_layers():
        for e in all_engine_rows(layer, plan[layer.name]):
            out[e.kind] += len(e.rows)
    return out


def fits_budget(counts: dict[str, float], board: Board) -> bool:
    """Whether measured (or estimated) ``lut``/``ff``/``dsp``/``bram36`` fit the planner's 80 % of ``board``."""
    return planner.fits(Resources(counts["lut"], counts["ff"], counts["dsp"], counts["bram36"]), board,
                        planner.HEADROOM)


def _print(report: str | Step) -> None:
    """Text lines of a tool's progress to the log (steps are too many to print)."""
    if isinstance(report, str):
        print(report, flush=True)


def planned_row(model: str, label: str, net: Any, metrics: dict, board: Board,
                data: Dataset) -> tuple[dict[str, Any], IRModel, Plan]:
    """One trained precision row exported, evaluated on the integer reference and planned for
    ``board`` (the estimate); also its IR and plan for :func:`measure`."""
    ir = export_model(net, data.in_shape, model_name=design_name(model, label))
    row: dict[str, Any] = {
        "model": model, "precision": label, "average_bits": round(average_bits(net), 3),
        "fake_quant": metrics["accuracy"]["test"],
        "deployed": deployed_accuracy(ir, data),
        "layer_bits": {layer.name: [layer.wbits, layer.high_bits] if layer.high_bits else [layer.wbits]
                       for layer in ir.compute_layers()}}
    res = planner.plan_search(ir, board)
    est = res.resources.as_dict()
    row.update(interval=res.interval, latency=res.latency, plan=res.plan.as_dict(), estimate=est,
               estimate_fits=fits_budget(est, board), engine_rows=engine_rows(ir, res.plan),
               inferences_per_s=round(board.clock_mhz * 1e6 / res.interval, 1), synthesized=False)
    return row, ir, res.plan


def measure(row: dict[str, Any], ir: IRModel, plan: Plan, board: Board, data: Dataset, work: Path,
            synth: bool, rtlsim: int) -> None:
    """Generate the Verilog of ``plan``; simulate ``rtlsim`` test images in Verilator and/or
    synthesize it with Yosys, adding the results to ``row``."""
    rtl = work / f"{ir.name}-{board.name}"
    x = ir.quantize_input(data.x_test[:rtlsim])
    generate_rtl(ir, rtl, x, plan=plan, n_extreme_random=EXTREME_VECTORS, family=board.family)
    if rtlsim:
        sim = simulate(rtl, simulator="verilator", progress=_print)
        row["rtlsim"] = {"simulator": "verilator", "samples": sim["samples"], "mismatches": len(sim["mismatches"]),
                         "cycles_per_inference": sim["cycles_per_inference"]}
    if synth:
        start = time.perf_counter()
        s = synthesize(rtl, board, "yosys", model=ir.name, progress=_print)
        measured = {k: s[k] for k in ("lut", "ff", "dsp", "bram36")}
        row.update(synthesized=True, synth={**measured, "lut_levels": s.get("lut_levels"),
                                            "seconds": round(time.perf_counter() - start, 1)},
                   fits=fits_budget(measured, board))


def markdown(data: dict) -> str:
    lines = ["# Precision rows in hardware (issue 16)", "",
             f"The models of benchmarks/accuracy.py's precision rows (digits, W4A4 fixed point unless named, seed "
             f"{data['seed']}, {data['epochs']} epochs), planned for {data['board']} by the product planner within "
             f"{100 * data['headroom']:.0f} % of every resource. Interval = cycles per inference from the exact "
             "cycle model; LUT/FF/DSP/BRAM36 measured by Yosys where synthesized, else the calibrated estimate "
             "(est); rows per engine: SP2 / fixed on DSPs / fixed on LUT multipliers / high-precision (8-bit) on "
             "DSPs.", "",
             "| model | precision | bits | deployed % | interval | inf/s | LUT | FF | DSP | BRAM36 | depth "
             "| fits 80 % | rows sp2/fixed/lut/hi | Verilator |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---|"]
    for r in data["results"]:
        got = r["synth"] if r["synthesized"] else r["estimate"]
        src = "" if r["synthesized"] else " (est)"
        fits = r["fits"] if r["synthesized"] else r["estimate_fits"]
        sim = r.get("rtlsim")
        sim_cell = f"{sim['mismatches']} mism. / {sim['samples']}, {sim['cycles_per_inference']:g} cyc" if sim else "-"
        depth = r["synth"].get("lut_levels") if r["synthesized"] else None
        lines.append(f"| {r['model']} | {r['precision']} | {r['average_bits']:.2f} | {r['deployed']:.2f} | "
                     f"{r['interval']:g} | {r['inferences_per_s']:,.0f} | {got['lut']:,}{src} | {got['ff']:,}{src} | "
                     f"{got['dsp']}{src} | {got['bram36']:g}{src} | {depth if depth is not None else '-'} | "
                     f"{'yes' if fits else 'no'}{src} | {'/'.join(str(r['engine_rows'][k]) for k in ENGINES)} | "
                     f"{sim_cell} |")
    lines += ["", f"Clock {data['clock_mhz']} MHz (the board's target) for inferences/s. Run time "
              f"{data['seconds']:.0f} s."]
    return "\n".join(lines) + "\n"


def save(out: Path, data: dict, start: float) -> None:
    """Write the JSON and the table as they stand, with the run time so far."""
    data["seconds"] = round(time.perf_counter() - start, 1)
    out.mkdir(parents=True, exist_ok=True)
    atomic.write_json(out / "precision_hw.json", data)
    atomic.write_text(out / "precision_hw.md", markdown(data))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(RESULTS))
    ap.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    ap.add_argument("--epochs", type=int, default=40, help="as accuracy.json's precision rows")
    ap.add_argument("--synth", action="store_true", help="synthesize every design with Yosys for pynq-z2")
    ap.add_argument("--rtlsim", type=int, default=0, metavar="N",
                    help="simulate every design in Verilator on N test images (0: no simulation)")
    ap.add_argument("--keep", default=None, help="keep the generated designs under this directory")
    ap.add_argument("--precisions", nargs="+", default=None, metavar="TEXT",
                    help="run only the precision rows whose label contains one of these (e.g. layer-wise 'equal bits')")
    ap.add_argument("--update", action="store_true",
                    help="keep the rows of OUT/precision_hw.json that are not run here")
    args = ap.parse_args()
    board, out, start = load_board(BOARD), Path(args.out), time.perf_counter()
    images = load_dataset(DATASET)
    variants = [(model, variant) for model in MODELS for variant in precision_variants(model)]
    rank = {(model, variant[0]): i for i, (model, variant) in enumerate(variants)}  # the table's row order
    runs = [(model, variant) for model, variant in variants if model in args.models
            and (args.precisions is None or any(text in variant[0] for text in args.precisions))]
    kept = []
    if args.update and (out / "precision_hw.json").is_file():
        ran = {(model, variant[0]) for model, variant in runs}
        kept = [r for r in json.loads((out / "precision_hw.json").read_text())["results"]
                if (r["model"], r["precision"]) not in ran]
    data = {"board": board.name, "clock_mhz": board.clock_mhz, "headroom": planner.HEADROOM, "seed": SEED,
            "epochs": args.epochs, "seconds": 0.0, "results": kept}
    designs = []  # every row planned first, so a long synthesis run that stops keeps every estimate
    for model, (label, overrides, factory) in runs:
        print(f"{model} {label}: training {args.epochs} epochs ...", flush=True)
        net, metrics = train_precision_row(model, DATASET, overrides, factory, args.epochs, SEED)
        row, ir, plan = planned_row(model, label, net, metrics, board, images)
        designs.append((row, ir, plan))
        data["results"] = sorted(data["results"] + [row], key=lambda r: rank.get((r["model"], r["precision"]), len(rank)))
        save(out, data, start)
    if args.synth or args.rtlsim:
        with tempfile.TemporaryDirectory(prefix="msq-precision-hw-") as tmp:
            for row, ir, plan in designs:
                print(f"{ir.name}: generating the Verilog ...", flush=True)
                measure(row, ir, plan, board, images, Path(args.keep) if args.keep else Path(tmp), args.synth, args.rtlsim)
                save(out, data, start)
    print(f"wrote {out / 'precision_hw.json'} and precision_hw.md in {data['seconds']:.0f} s")


if __name__ == "__main__":
    main()
