"""Accuracy benchmark: digits test accuracy per model and scheme at W4A4, mean of 3 seeds.

Writes benchmarks/results/accuracy.json and accuracy.md (the README quotes the table).
Targets (issue "Foundation"): msq within 1.0 point of float, and not more than 0.5 point below
fixed-only.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from msq import atomic
from msq.frontend.train import TrainConfig, train_run

SCHEMES = ("float", "fixed", "p2", "sp2", "msq")
RESULTS = Path(__file__).resolve().parent / "results"


def run(models: list[str], seeds: list[int], epochs: int) -> dict:
    table: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for model in models:
            for scheme in SCHEMES:
                accs, fracs = [], []
                for seed in seeds:
                    cfg = TrainConfig(model=model, scheme=scheme, wbits=4, abits=4, epochs=epochs, seed=seed)
                    m = train_run(cfg, Path(tmp) / f"{model}-{scheme}-{seed}", progress=False)
                    accs.append(m["accuracy"]["test"])
                    fracs.append(m["sp2_fraction"]["overall"])
                table.setdefault(model, {})[scheme] = {
                    "accuracy_mean": statistics.mean(accs), "accuracy_per_seed": accs,
                    "sp2_fraction": statistics.mean(fracs)}
                print(f"{model:4s} {scheme:6s} {statistics.mean(accs):6.2f}  {accs}", flush=True)
    return {"epochs": epochs, "seeds": seeds, "wbits": 4, "abits": 4, "board": "pynq-z2", "models": table}


def markdown(res: dict) -> str:
    lines = [f"W{res['wbits']}A{res['abits']}, digits test set, mean of seeds {res['seeds']}, "
             f"{res['epochs']} epochs, msq ratio from board {res['board']}.", "",
             "| model | " + " | ".join(SCHEMES) + " | msq − float | msq − fixed |",
             "|---|" + "---|" * (len(SCHEMES) + 2)]
    for model, row in res["models"].items():
        cells = [f"{row[s]['accuracy_mean']:.2f}" for s in SCHEMES]
        d_float = row["msq"]["accuracy_mean"] - row["float"]["accuracy_mean"]
        d_fixed = row["msq"]["accuracy_mean"] - row["fixed"]["accuracy_mean"]
        lines.append(f"| {model} | " + " | ".join(cells) + f" | {d_float:+.2f} | {d_fixed:+.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--models", nargs="+", default=["mlp", "cnn"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=40)
    args = ap.parse_args()
    res = run(args.models, args.seeds, args.epochs)
    atomic.write_json(RESULTS / "accuracy.json", res)
    atomic.write_text(RESULTS / "accuracy.md", markdown(res))
    print(markdown(res))


if __name__ == "__main__":
    main()
