"""End-to-end benchmark: `msq flow` on the demo MLP and CNN (digits, W4A4, pynq-z2), from
training to synthesis, with the wall time of each stage.

Writes benchmarks/results/flow.json and flow.md (the README quotes the table).
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from msq import atomic
from msq.boards import load_board
from msq.flow import Flow, FlowConfig
from msq.frontend.train import TrainConfig

RESULTS = Path(__file__).resolve().parent / "results"


def run(models: list[str], board: str, epochs: int) -> dict:
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for model in models:
            start = time.perf_counter()
            cfg = FlowConfig(TrainConfig(model=model, board=board, epochs=epochs, seed=0), out=Path(tmp) / model)
            s = Flow(cfg, load_board(board), progress=lambda r: print(r) if isinstance(r, str) else None).execute()
            rows[model] = {"summary": s, "wall_seconds": round(time.perf_counter() - start, 1)}
    return {"board": board, "epochs": epochs, "models": rows}


def markdown(res: dict) -> str:
    head = ("| model | float % | fake-quant % | deployed % | SP2 rows | C-sim / RTL mismatches | LUT | FF | DSP | "
            "BRAM36 | cycles / inference | inferences / s | flow wall time |")
    lines = [f"`msq flow`, digits, W4A4, board {res['board']}, {res['epochs']} epochs, seed 0, "
             "synthesis by Yosys `synth_xilinx` unless Vivado is installed.", "", head, "|" + "---|" * 13]
    for model, row in res["models"].items():
        s = row["summary"]
        a, syn = s["accuracy"], s["synth"]
        lines.append(
            f"| {model} | {a['float']:.2f} | {a['fake_quant']:.2f} | {a['deployed']:.2f} | "
            f"{100 * s['sp2_fraction']:.0f} % | {s['csim']['mismatches']} / {s['rtlsim']['mismatches']} | "
            f"{syn['lut']:,} | {syn['ff']:,} | {syn['dsp']} | {syn['bram36']:g} | "
            f"{s['rtlsim']['cycles_per_inference']:,} | {s['throughput_inferences_per_s']:,.0f} | "
            f"{row['wall_seconds']:.0f} s |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--models", nargs="+", default=["mlp", "cnn"])
    ap.add_argument("--board", default="pynq-z2")
    ap.add_argument("--epochs", type=int, default=40)
    args = ap.parse_args()
    res = run(args.models, args.board, args.epochs)
    atomic.write_json(RESULTS / "flow.json", res)
    atomic.write_text(RESULTS / "flow.md", markdown(res))
    print(markdown(res))


if __name__ == "__main__":
    main()
