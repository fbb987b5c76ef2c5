"""Accuracy benchmark: test accuracy per model and scheme at W4A4, mean ± std over 3 seeds, and
the deployed (integer reference) accuracy of every exportable run beside its fake-quant accuracy.

Writes benchmarks/results/accuracy.json and accuracy.md for digits (the README quotes the tables),
accuracy-DATASET.json/.md for another dataset (``--dataset mnist5k``, extra msq[mnist]).
Targets: msq within 1.0 point of float and not more than 0.5 point below fixed-only; deployed
accuracy within 0.3 point of fake-quant.
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from msq import atomic
from msq.boards import load_board
from msq.design.cost_model import board_sp2_ratio
from msq.rundir import RunDir
from msq.frontend.export import export_run
from msq.frontend.quantizer import TRAINING_SCHEMES
from msq.frontend.train import TrainConfig, train_run

SCHEMES = TRAINING_SCHEMES  # the table's columns
EXPORTABLE = ("fixed", "sp2", "msq")
RESULTS = Path(__file__).resolve().parent / "results"


def run(models: list[str], seeds: list[int], epochs: int, schemes: tuple[str, ...] = SCHEMES,
        table: dict | None = None, dataset: str = "digits") -> dict:
    """Train every model x scheme x seed; ``table`` holds earlier results that are kept."""
    table = table or {}
    with tempfile.TemporaryDirectory() as tmp:
        for model in models:
            for scheme in schemes:
                accs, fracs, deployed = [], [], []
                for seed in seeds:
                    cfg = TrainConfig(model=model, dataset=dataset, scheme=scheme, wbits=4, abits=4, epochs=epochs,
                                      seed=seed)
                    run_dir = Path(tmp) / f"{model}-{scheme}-{seed}"
                    m = train_run(cfg, run_dir)
                    accs.append(m["accuracy"]["test"])
                    fracs.append(m["sp2_fraction"]["overall"])
                    if scheme in EXPORTABLE:
                        export_run(run_dir)
                        deployed.append(RunDir(run_dir).evaluate()["deployed_accuracy"])
                entry = {"accuracy_mean": statistics.mean(accs), "accuracy_std": _std(accs),
                         "accuracy_per_seed": accs, "sp2_fraction": statistics.mean(fracs)}
                if deployed:
                    entry.update(deployed_mean=statistics.mean(deployed), deployed_per_seed=deployed,
                                 max_abs_gap=max(abs(d - a) for d, a in zip(deployed, accs)))
                table.setdefault(model, {})[scheme] = entry
                print(f"{model:4s} {scheme:6s} {statistics.mean(accs):6.2f}  {accs}  deployed {deployed}", flush=True)
    ratio = board_sp2_ratio(load_board("pynq-z2"), 4, 4)
    return {"dataset": dataset, "epochs": epochs, "seeds": seeds, "wbits": 4, "abits": 4, "board": "pynq-z2",
            "msq_ratio": round(ratio, 3), "models": table}


def _std(values: list[float]) -> float:
    """Sample standard deviation over seeds (0 for a single seed)."""
    return statistics.stdev(values) if len(values) > 1 else 0.0


def _cell(entry: dict) -> str:
    """mean ± std where the std was measured (older results hold only the mean)."""
    std = entry.get("accuracy_std")
    return f"{entry['accuracy_mean']:.2f}" + ("" if std is None else f" ± {std:.2f}")


def result_files(dataset: str) -> tuple[Path, Path]:
    """Where a dataset's results go: accuracy.json/.md for digits (the README's), else accuracy-DATASET.*."""
    stem = "accuracy" if dataset == "digits" else f"accuracy-{dataset}"
    return RESULTS / f"{stem}.json", RESULTS / f"{stem}.md"


def markdown(res: dict) -> str:
    lines = [f"W{res['wbits']}A{res['abits']}, {res.get('dataset', 'digits')} test set, mean ± std over seeds "
             f"{res['seeds']}, {res['epochs']} epochs, msq ratio from board {res['board']}.", "",
             "| model | " + " | ".join(SCHEMES) + " | msq − float | msq − fixed |",
             "|---|" + "---|" * (len(SCHEMES) + 2)]
    for model, row in res["models"].items():
        cells = [_cell(row[s]) for s in SCHEMES]
        d_float = row["msq"]["accuracy_mean"] - row["float"]["accuracy_mean"]
        d_fixed = row["msq"]["accuracy_mean"] - row["fixed"]["accuracy_mean"]
        lines.append(f"| {model} | " + " | ".join(cells) + f" | {d_float:+.2f} | {d_fixed:+.2f} |")
    lines += ["", "Deployed (integer reference) vs fake-quant accuracy, mean of the same seeds:", "",
              "| model | scheme | fake-quant | deployed | largest per-seed gap |", "|---|---|---|---|---|"]
    for model, row in res["models"].items():
        for scheme in EXPORTABLE:
            e = row[scheme]
            lines.append(f"| {model} | {scheme} | {e['accuracy_mean']:.2f} | {e['deployed_mean']:.2f} | "
                         f"{e['max_abs_gap']:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--models", nargs="+", default=["mlp", "cnn"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--dataset", choices=["digits", "mnist5k"], default="digits",
                    help="mnist5k needs the extra msq[mnist]")
    ap.add_argument("--schemes", nargs="+", default=list(SCHEMES),
                    help="re-measure only these (e.g. msq after a recalibration); the others are kept")
    args = ap.parse_args()
    kept = None
    json_path, md_path = result_files(args.dataset)
    if set(args.schemes) != set(SCHEMES):
        old = json.loads(json_path.read_text())
        if (old["epochs"], old["seeds"]) != (args.epochs, args.seeds):
            raise SystemExit("accuracy.json was measured with other epochs or seeds: re-measure every scheme")
        kept = old["models"]
    res = run(args.models, args.seeds, args.epochs, tuple(args.schemes), kept, args.dataset)
    atomic.write_json(json_path, res)
    atomic.write_text(md_path, markdown(res))
    print(markdown(res))


if __name__ == "__main__":
    main()
