"""The seed paper's headline on our own generated hardware: at the same board budget, the
throughput of the MSQ design vs a fixed-point-only design (DSP-bound) and an SP2-only design
(LUT-bound).

For each board (pynq-z2, zc706) and each network (MLPs wide enough that the board budget binds:
the digits demos fit any board fully parallel), three W4A4 models are built with
``msq.frontend.models.build_mlp`` (random weights; activation scales initialised by a few
training-mode passes) and exported through the product path (``export_model``):

- ``msq``: SP2 ratio from the board (``msq.design.cost_model.board_sp2_ratio``, calibrated), rows ranked
  by the product's own SP2-suitability (``assign_schemes``);
- ``fixed``: every row fixed point (DSP engine only);
- ``sp2``: every row SP2 (LUT engine only).

The planner (msq.design.planner) picks each design's lanes within 80 % of the board; throughput
is the board clock over the planner's interval (cycles.py: equal to RTL simulation). Resources
are the calibrated estimate; with ``--synth`` the chosen designs of the listed boards are also
generated and synthesized with Yosys (``yosys_*`` columns are measured). Also recorded: the best
ratio of an ``msq explore``-style sweep on the MSQ model.

    .venv/bin/python benchmarks/headline.py [--synth pynq-z2 [--synth-network mlp-128x3]] [--seed 0]

Writes benchmarks/results/headline.json and headline.md.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from msq import atomic
from msq.design import cost_model
from msq.design import explore, planner
from msq.backends.rtl.generate import generate_rtl
from msq.backends.synth.driver import synthesize
from msq.boards import load_board
from msq.frontend.assignment import assign_schemes
from msq.frontend.export import export_model
from msq.frontend.models import QuantConfig, build_mlp
from msq.ir.model import IRModel

RESULTS = Path(__file__).resolve().parent / "results"
BOARDS = ("pynq-z2", "zc706")
NETWORKS = {"mlp-128x3": (128, (128, 128)), "mlp-192x3": (192, (192, 192)), "mlp-256x3": (256, (256, 256)),
            "mlp-384x3": (384, (384, 384))}
WBITS = ABITS = 4


def build_ir(name: str, scheme: str, ratio: float, seed: int) -> IRModel:
    """A random-weight W4A4 MLP of ``NETWORKS[name]`` exported to the IR."""
    inputs, hidden = NETWORKS[name]
    torch.manual_seed(seed)
    model = build_mlp((inputs,), 10, QuantConfig(wbits=WBITS, abits=ABITS, scheme=scheme, out_bits=8),
                      hidden=hidden)
    if scheme == "msq":
        assign_schemes(model, ratio)
    model.train()
    with torch.no_grad():
        for _ in range(3):  # the activation quantizers initialise their power-of-two scales
            model(torch.rand(64, inputs))
    model.eval()
    return export_model(model, (inputs,), model_name=f"{name}-{scheme}", source={"benchmark": "headline"})


def design_row(ir: IRModel, board, label: str, ratio: float) -> dict:
    sp2 = sum(len(layer.sp2_rows) for layer in ir.compute_layers())
    rows = sum(layer.rows for layer in ir.compute_layers())
    row = {"design": label, "ratio": ratio, "sp2_rows": sp2, "rows": rows}
    try:
        res = planner.plan_search(ir, board)
    except Exception as exc:  # noqa: BLE001 - a design that does not fit is a result, not a crash
        return {**row, "fits": False, "error": str(exc)}
    return {**row, "fits": True, "interval": res.interval, "latency": res.latency,
            "throughput": round(res.throughput(board.clock_mhz), 1),
            "estimate": res.resources.as_dict(), "lanes_sp2": sum(p.sp2_lanes for p in res.plan.values()),
            "lanes_fixed": sum(p.fixed_lanes for p in res.plan.values()),
            "plan": {k: [p.sp2_lanes, p.fixed_lanes] for k, p in res.plan.items()}, "_plan": res.plan}


def yosys_check(ir: IRModel, row: dict, board, root: Path) -> None:
    """Generate and synthesize the planned design; add the measured counts to ``row``."""
    out = root / f"{ir.name}-{board.name}"
    generate_rtl(ir, out, np.zeros((1,) + tuple(ir.input_shape), dtype=np.int64), plan=row["_plan"],
                 n_extreme_random=1)
    start = time.perf_counter()
    s = synthesize(out, board, "yosys")
    row["yosys"] = {k: s[k] for k in ("lut", "ff", "dsp", "bram36", "carry")}
    row["yosys"]["seconds"] = round(time.perf_counter() - start, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--synth", nargs="*", default=[], help="boards whose chosen designs Yosys synthesizes")
    ap.add_argument("--synth-network", default="mlp-128x3", help="the network whose designs are synthesized")
    ap.add_argument("--synth-designs", nargs="*", default=["msq", "fixed", "sp2"], help="which designs to synthesize")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    start = time.perf_counter()
    results = []
    with tempfile.TemporaryDirectory(prefix="msq-headline-") as tmp:
        for board_name in BOARDS:
            board = load_board(board_name)
            ratio = cost_model.board_sp2_ratio(board, WBITS, ABITS)
            for net in NETWORKS:
                irs = {"msq": build_ir(net, "msq", ratio, args.seed), "fixed": build_ir(net, "fixed", 0.0, args.seed),
                       "sp2": build_ir(net, "sp2", 1.0, args.seed)}
                rows = {k: design_row(ir, board, k, {"msq": ratio, "fixed": 0.0, "sp2": 1.0}[k])
                        for k, ir in irs.items()}
                sweep = explore.explore(irs["msq"], board)
                for k, ir in irs.items():
                    if (board_name in args.synth and net == args.synth_network and k in args.synth_designs
                            and rows[k]["fits"]):
                        print(f"synthesizing {net} {k} for {board_name} ...", flush=True)
                        yosys_check(ir, rows[k], board, Path(tmp))
                entry = {"board": board_name, "clock_mhz": board.clock_mhz, "network": net,
                         "budget": {"lut": board.lut, "ff": board.ff, "dsp": board.dsp, "bram36": board.bram36,
                                    "headroom": planner.HEADROOM},
                         "board_ratio": round(ratio, 3),
                         "explore_best_ratio": sweep["best"]["ratio"] if sweep["best"] else None,
                         "explore_best_throughput": round(sweep["best"]["throughput"], 1) if sweep["best"] else None,
                         "designs": [{k: v for k, v in r.items() if k != "_plan"} for r in rows.values()]}
                t = {k: r.get("throughput") for k, r in rows.items()}
                entry["speedup_msq_over_fixed"] = round(t["msq"] / t["fixed"], 2) if t["msq"] and t["fixed"] else None
                entry["speedup_msq_over_sp2"] = round(t["msq"] / t["sp2"], 2) if t["msq"] and t["sp2"] else None
                results.append(entry)
                print(f"{board_name} {net}: " + ", ".join(f"{k} {v or 0:,.0f} inf/s" for k, v in t.items()), flush=True)
    data = {"calibration": cost_model.calibration()["yosys_version"], "wbits": WBITS, "abits": ABITS,
            "seed": args.seed, "seconds": round(time.perf_counter() - start, 1), "results": results}
    RESULTS.mkdir(exist_ok=True)
    atomic.write_json(RESULTS / "headline.json", data)
    atomic.write_text(RESULTS / "headline.md", markdown(data))
    print(f"wrote {RESULTS / 'headline.json'} and headline.md in {data['seconds']:.0f} s")


def _res(r: dict, key: str) -> str:
    if "yosys" in r:
        return f"{r['yosys'][key]:,.0f} (est {r['estimate'][key]:,.0f})"
    return f"{r['estimate'][key]:,.0f} (est)"


def markdown(data: dict) -> str:
    lines = ["# Headline: MSQ vs fixed-only vs SP2-only at the same board budget", "",
             (f"W{data['wbits']}A{data['abits']} MLPs with random weights, exported through the product path; "
             "lanes chosen by the planner within 80 % of each board resource; throughput = board clock / "
             "interval (cycle model, equal to RTL simulation). Resources: Yosys-measured where given, "
             "else the calibrated estimate (marked est). MSQ ratio = the calibrated board ratio "
             "(msq.design.cost_model.board_sp2_ratio); the explore column is the best ratio of the 0..1 sweep."), "",
             "| board | network | design | SP2 rows | lanes SP2/fixed | interval | inf/s | LUT | FF | DSP | speedup vs fixed |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for e in data["results"]:
        fixed = next(d for d in e["designs"] if d["design"] == "fixed")
        for d in e["designs"]:
            label = f"{d['design']} (r={d['ratio']:.3g})"
            if not d["fits"]:
                lines.append(f"| {e['board']} | {e['network']} | {label} | {d['sp2_rows']}/{d['rows']} | "
                             "does not fit | | | | | | |")
                continue
            sp = (f"{d['throughput'] / fixed['throughput']:.2f}x" if fixed.get("fits") else "-")
            lines.append(f"| {e['board']} | {e['network']} | {label} | {d['sp2_rows']}/{d['rows']} | "
                         f"{d['lanes_sp2']}/{d['lanes_fixed']} | {d['interval']} | {d['throughput']:,.0f} | "
                         f"{_res(d, 'lut')} | {_res(d, 'ff')} | {_res(d, 'dsp')} | {sp} |")
    lines += ["", "Best ratio of the explore sweep (MSQ model re-split per ratio, planner lanes):", ""]
    for e in data["results"]:
        if e["explore_best_ratio"] is None:
            lines.append(f"- {e['board']} / {e['network']}: board ratio {e['board_ratio']}; no ratio fits the board")
            continue
        lines.append(f"- {e['board']} / {e['network']}: board ratio {e['board_ratio']}, sweep best "
                     f"{e['explore_best_ratio']} ({e['explore_best_throughput']:,.0f} inf/s); "
                     f"MSQ/fixed {e['speedup_msq_over_fixed']}x, MSQ/SP2 {e['speedup_msq_over_sp2']}x")
    lines += ["", f"Calibration: {data['calibration']}. Run time {data['seconds']:.0f} s."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
