"""ResNet-8 (MLPerf Tiny topology) on 32x32x3 inputs through the hardware path.

Trains ``--model resnet8`` on the generated ``synthetic:32x32x3:10`` set (nothing may be
downloaded; docs/datasets.md), exports it, plans it for the board and records what each stage
gives today:

- C-sim: the HLS project of the planned design (or, when nothing fits, of the smallest design)
  compiled with g++ and run on ``--vectors`` inputs plus the extreme ones, every element compared
  with the integer reference;
- the plan: the fastest design whose estimate fits ``--headroom`` (76 %) of the board, four points
  under the 80 % budget the result is held to, for the estimate's error; its cycles per inference
  (the cycle model, equal to RTL simulation) and resources (the calibrated estimate); when nothing
  fits, the smallest design's estimate, so the gap is on record;
- RTL: simulated in Verilator only when a design fits (``rtl_mismatches`` is null otherwise, with
  the reason); with ``--synth`` also synthesized with Yosys for the board, beside the simulation
  (each takes a core), and ``lut, ff, dsp, bram`` (and ``fits``: within 80 % of each) are then
  Yosys's counts.

Writes OUT/resnet8.json (``vectors, csim_mismatches, rtl_mismatches, cycles_per_inference, fits,
lut, ff, dsp, bram`` and more) and OUT/resnet8.md.

    .venv/bin/python benchmarks/resnet8.py [--vectors 100] [--epochs 1] [--board pynq-z2] [--synth]
        [--headroom 0.76] [--out benchmarks/results]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from msq import atomic
from msq.backends.hls.csim import c_simulate
from msq.backends.hls.project import generate_project
from msq.backends.rtl import cycles
from msq.backends.rtl.generate import generate_rtl
from msq.backends.rtl.simulate import simulate
from msq.backends.synth.driver import synthesize
from msq.boards import Board, load_board
from msq.design import planner
from msq.design.estimate import estimate_design
from msq.errors import MSQError
from msq.frontend.export import export_model
from msq.frontend.train import TrainConfig, fit
from msq.progress import Progress, Step

RESULTS = Path(__file__).resolve().parent / "results"
DATASET = "synthetic:32x32x3:10"
PLAN_HEADROOM = 0.76  # the planner's budget: 4 points under the 80 % the result is held to, for the estimate's error
PLANNED = "planned within {:g} % of every resource by the estimate, held to 80 % as Yosys measures it"
CSIM_OPT = "-O2"  # ResNet-8 runs 12.5M MACs per inference: -O0 takes ~16 s each


def run(vectors: int, epochs: int, board_name: str, synth: bool = False, seed: int = 0,
        headroom: float = PLAN_HEADROOM, save: Callable[[dict], None] = lambda row: None) -> dict:
    """The benchmark's row; ``save`` receives it after each stage (C-sim, RTL, synthesis), so a
    long run that is stopped keeps what it measured (the stages not reached say so). The plan
    fits ``headroom`` of the board by the estimate (per layer it errs by up to about 9 % against
    Yosys: docs/synthesis.md); ``fits`` is then Yosys's counts against 80 %."""
    board = load_board(board_name)
    start = time.perf_counter()
    model, data, _, metrics = fit(TrainConfig(model="resnet8", dataset=DATASET, epochs=epochs, seed=seed,
                                              board=board_name), progress=_progress("training"))
    ir = export_model(model, data.in_shape, model_name="resnet8")
    x = ir.quantize_input(data.x_test[:vectors])
    row: dict = {"board": board_name, "clock_mhz": board.clock_mhz, "dataset": DATASET, "epochs": epochs,
                 "accuracy": metrics["accuracy"]["test"],
                 "macs_per_inference": int(sum(layer.rows * layer.fan_in * (np.prod(layer.out_shape[:-1]) if
                                                                            len(layer.out_shape) > 1 else 1)
                                               for layer in ir.compute_layers())),
                 "train_seconds": round(time.perf_counter() - start, 1)}
    try:
        result = planner.plan_search(ir, board, headroom)
        plan, row["planned"], row["plan_note"] = result.plan, True, PLANNED.format(100 * headroom)
    except MSQError as exc:
        target = planner.candidate_targets(ir)[-1]
        plan, row["planned"], row["plan_note"] = planner.smallest_plan(ir, target, board), False, str(exc)
    res = estimate_design(ir, plan)
    row.update(cycles_per_inference=cycles.inference_interval(ir, plan), lut=res.lut, ff=res.ff, dsp=res.dsp,
               bram=res.bram36, resources="estimate", fits=row["planned"], plan_headroom=headroom,
               plan=plan.as_dict(), estimate=res.as_dict())
    with tempfile.TemporaryDirectory(prefix="msq-resnet8-") as tmp:
        start = time.perf_counter()
        project = generate_project(ir, Path(tmp) / "hls", board, x, plan=plan)
        sim = c_simulate(project, opt=CSIM_OPT)
        row.update(vectors=sim.samples, csim_mismatches=sim.mismatches, csim_seconds=round(time.perf_counter() - start, 1),
                   rtl_mismatches=None, rtl_note="not simulated: the run stopped before RTL simulation ended")
        save(row)
        if row["planned"]:
            start = time.perf_counter()
            rtl = generate_rtl(ir, Path(tmp) / "rtl", x, plan=plan, family=board.family)
            with ThreadPoolExecutor(max_workers=1) as pool:  # Yosys beside Verilator: each takes one core
                synthesis = pool.submit(_synthesize, rtl, board) if synth else None
                out = simulate(rtl, progress=_progress("Verilator"))
                row.update(rtl_vectors=out["samples"], rtl_mismatches=len(out["mismatches"]),
                           rtl_cycles_per_inference=out["cycles_per_inference"],
                           rtl_seconds=round(time.perf_counter() - start, 1))
                del row["rtl_note"]
                save(row)
                if synthesis is not None:
                    row.update(synthesis.result())
                    row["fits"] = all(row[k] <= planner.HEADROOM * getattr(board, b)
                                      for k, b in (("lut", "lut"), ("ff", "ff"), ("dsp", "dsp"), ("bram", "bram36")))
        else:
            row.update(rtl_note="not simulated: no design fits the board")
    return row


def _synthesize(rtl: Path, board: Board) -> dict:
    """The row's resources as Yosys measures the RTL project, and the time it took."""
    start = time.perf_counter()
    s = synthesize(rtl, board, "yosys", progress=_progress("Yosys"))
    return dict(lut=s["lut"], ff=s["ff"], dsp=s["dsp"], bram=s["bram36"], lut_levels=s.get("lut_levels"),
                resources="yosys", synth_seconds=round(time.perf_counter() - start, 1))


def _progress(what: str) -> Progress:
    """A long stage's progress on standard output: its lines, and its steps every 30 s."""
    last = [0.0]

    def show(report: str | Step) -> None:
        if isinstance(report, str):
            print(f"  {what}: {report}", flush=True)
        elif report.finished or time.monotonic() - last[0] > 30:
            last[0] = time.monotonic()
            of = f"/{report.total}" if report.total is not None else ""
            print(f"  {what}: {report.task} {report.done}{of} {report.unit} {report.note}", flush=True)
    return show


def markdown(row: dict) -> str:
    rtl = f"{row['rtl_mismatches']} ({row['rtl_vectors']} inputs)" if row["rtl_mismatches"] is not None else "not run"
    est = "" if row["resources"] == "yosys" else " (est)"
    lines = ["# ResNet-8 (32x32x3) through the hardware path", "",
             f"MLPerf Tiny's ResNet-8 topology, W4A4, trained {row['epochs']} epoch(s) on `{row['dataset']}` "
             f"(generated data: the accuracy, {row['accuracy']:.1f} %, says nothing about real images); "
             f"{row['macs_per_inference']:,} MACs per inference; board {row['board']}.", "",
             "| C-sim inputs | C-sim mismatches | RTL mismatches | fits | cycles / inference | LUT | FF | DSP | BRAM36 |",
             "|---:|---:|---|---|---:|---:|---:|---:|---:|",
             f"| {row['vectors']} | {row['csim_mismatches']} | {rtl} | {'yes' if row['fits'] else 'no'} | "
             f"{row['cycles_per_inference']:,.0f} | {row['lut']:,}{est} | {row['ff']:,}{est} | {row['dsp']:,}{est} | "
             f"{row['bram']:g}{est} |", "",
             f"Plan: {row['plan_note']}." + ("" if row["planned"] else " The row gives the smallest design."),
             f"Resources: {'measured by Yosys' if est == '' else 'the calibrated estimate (not synthesized)'}."]
    if est == "":
        e = row["estimate"]
        lines.append(f"The estimate the plan was made with: {e['lut']:,} LUT, {e['ff']:,} FF, {e['dsp']:,} DSP, "
                     f"{e['bram36']:g} BRAM36.")
    if "rtl_note" in row:
        lines.append(f"RTL: {row['rtl_note']}.")
    return "\n".join(lines + [""])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--vectors", type=int, default=100)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--board", default="pynq-z2")
    ap.add_argument("--synth", action="store_true", help="synthesize the planned design with Yosys")
    ap.add_argument("--headroom", type=float, default=PLAN_HEADROOM, help="the share of each resource the plan may use "
                    "by the estimate")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    def save(row: dict) -> None:
        atomic.write_json(out / "resnet8.json", row)
        atomic.write_text(out / "resnet8.md", markdown(row))
        print(f"wrote {out / 'resnet8.json'} and resnet8.md", flush=True)

    save(run(args.vectors, args.epochs, args.board, args.synth, headroom=args.headroom, save=save))


if __name__ == "__main__":
    main()
