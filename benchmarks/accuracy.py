"""Accuracy benchmark: test accuracy per model and scheme at W4A4, mean ± std over 3 seeds, and
the deployed (integer reference) accuracy of every exportable run beside its fake-quant accuracy.

Precision rows (issue 16, intra-layer multi-precision): the same models at uniform 4-bit, with
layer-wise mixed precision (first and last layer 8-bit, the others 4-bit), and with intra-layer
mixed precision (``--high-bits 8 --high-fraction F`` in every layer) at the same average weight
bits, and at F = 0.1; fixed-point rows throughout (so only the precision differs), plus msq at
F = 0.1 (what ``msq flow --high-fraction 0.1`` trains). Average bits are weighted by weights.

Writes benchmarks/results/accuracy.json and accuracy.md for digits (the README quotes the tables),
accuracy-DATASET.json/.md for another dataset (``--dataset mnist5k``, extra msq[mnist]; ``make bench``
runs it at 15 epochs, what fits two shared cores), precision rows included. A run of some models
(``--models cnn``) keeps the other models' rows when they were measured with the same epochs and seeds.
Targets: msq within 1.0 point of float and not more than 0.5 point below fixed-only; deployed
accuracy within 0.3 point of fake-quant; intra-layer within 0.3 point of layer-wise at equal bits.
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import dataclasses

import numpy as np
import torch
from brevitas.nn import QuantLinear
from torch import nn

from msq import atomic, ref
from msq.frontend import models
from msq.frontend.export import export_model
from msq.frontend.quantizer import msq_quantizers
from msq.boards import load_board
from msq.design.cost_model import board_sp2_ratio
from msq.rundir import RunDir
from msq.frontend.export import export_run
from msq.frontend.quantizer import TRAINING_SCHEMES
from msq.frontend.train import TrainConfig, fit, train_run

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
                accs, fracs, deployed, ratios = [], [], [], []
                for seed in seeds:
                    cfg = TrainConfig(model=model, dataset=dataset, scheme=scheme, wbits=4, abits=4, epochs=epochs,
                                      seed=seed)
                    run_dir = Path(tmp) / f"{model}-{scheme}-{seed}"
                    m = train_run(cfg, run_dir)
                    accs.append(m["accuracy"]["test"])
                    fracs.append(m["sp2_fraction"]["overall"])
                    ratios.append(m["sp2_ratio"]["requested"])
                    if scheme in EXPORTABLE:
                        export_run(run_dir)
                        deployed.append(RunDir(run_dir).evaluate()["deployed_accuracy"])
                entry = {"accuracy_mean": statistics.mean(accs), "accuracy_std": _std(accs),
                         "accuracy_per_seed": accs, "sp2_fraction": statistics.mean(fracs),
                         "sp2_ratio": statistics.mean(ratios), "sp2_ratio_source": m["sp2_ratio"]["source"]}
                if deployed:
                    entry.update(deployed_mean=statistics.mean(deployed), deployed_per_seed=deployed,
                                 max_abs_gap=max(abs(d - a) for d, a in zip(deployed, accs)))
                table.setdefault(model, {})[scheme] = entry
                print(f"{model:4s} {scheme:6s} {statistics.mean(accs):6.2f}  {accs}  deployed {deployed}", flush=True)
    return {"dataset": dataset, "epochs": epochs, "seeds": seeds, "wbits": 4, "abits": 4, "board": "pynq-z2",
            "board_balance_ratio": round(board_sp2_ratio(load_board("pynq-z2"), 4, 4), 3), "models": table}


WIDE_BITS = 8


def layerwise_factory(kind: str):
    """A model builder like 'mlp'/'cnn' whose first and last weight layers use WIDE_BITS."""
    def build(in_shape, classes, cfg, signed_input):
        net = models.build_model(kind, in_shape, classes, cfg, signed_input)
        wide = dataclasses.replace(cfg, wbits=WIDE_BITS)
        weighted = [i for i, m in enumerate(net) if hasattr(m, "weight_quant")]
        for i in (weighted[0], weighted[-1]):
            old = net[i]
            if isinstance(old, QuantLinear):
                net[i] = models.linear(wide, old.in_features, old.out_features)
            else:
                net[i] = models.conv(wide, old.in_channels, old.out_channels, old.kernel_size[0], old.padding[0])
        return net
    build.__name__ = f"{kind}_first_last_{WIDE_BITS}bit"
    return build


def average_bits(net: nn.Module) -> float:
    """Weight bits per weight over the whole model (rows weighted by their fan-in)."""
    total = bits = 0
    for name, tq in msq_quantizers(net).items():
        fan_in = int(np.prod(net.get_submodule(name).weight.shape[1:]))
        total += fan_in * len(tq.row_bits())
        bits += fan_in * int(tq.row_bits().sum())
    return bits / total


def precision_variants(model: str, dataset: str = "digits") -> list[tuple[str, dict, object]]:
    """(label, TrainConfig overrides, model factory or None) of the precision rows; the intra-layer
    fraction at equal bits comes from the layer-wise model's average bits on ``dataset``'s input shape
    (the first layer's share of the weights, and so the fraction, depends on it)."""
    from msq.frontend.data import load_dataset

    data = load_dataset(dataset)
    cfg = TrainConfig(model=model, dataset=dataset, scheme="fixed").quant_config()
    avg = average_bits(layerwise_factory(model)(data.in_shape, data.classes, cfg, data.signed))
    equal = round((avg - 4) / (WIDE_BITS - 4), 3)
    return [("uniform 4-bit", {}, None),
            (f"layer-wise (first, last {WIDE_BITS}-bit)", {}, layerwise_factory(model)),
            (f"intra-layer F={equal} (equal bits)", {"high_fraction": equal}, None),
            ("intra-layer F=0.1", {"high_fraction": 0.1}, None),
            ("msq + intra-layer F=0.1", {"high_fraction": 0.1, "scheme": "msq"}, None)]


def train_precision_row(model: str, dataset: str, overrides: dict, factory, epochs: int,
                        seed: int) -> tuple[nn.Module, dict]:
    """One precision row's model trained (fixed-point rows unless ``overrides`` name a scheme): the
    trained network and its metrics."""
    cfg = TrainConfig(model=model, dataset=dataset, wbits=4, abits=4, high_bits=WIDE_BITS, epochs=epochs,
                      seed=seed, **{"scheme": "fixed", **overrides})
    net, _, _, metrics = fit(cfg, factory=factory)
    return net, metrics


def deployed_accuracy(ir, data) -> float:
    """Test accuracy (%) of the integer reference on an exported IR."""
    return 100.0 * float(np.mean(ref.predict(ir, ir.quantize_input(data.x_test)) == data.y_test))


def precision_run(models_: list[str], seeds: list[int], epochs: int, dataset: str = "digits") -> dict:
    """Train every precision row x seed; fake-quant and deployed (integer reference) accuracy."""
    from msq.frontend.data import load_dataset

    data = load_dataset(dataset)
    table: dict = {}
    for model in models_:
        for label, overrides, factory in precision_variants(model, dataset):
            accs, deployed, bits = [], [], []
            for seed in seeds:
                net, m = train_precision_row(model, dataset, overrides, factory, epochs, seed)
                ir = export_model(net, data.in_shape)
                accs.append(m["accuracy"]["test"])
                deployed.append(deployed_accuracy(ir, data))
                bits.append(average_bits(net))
            table.setdefault(model, {})[label] = {
                "accuracy_mean": statistics.mean(accs), "accuracy_per_seed": accs,
                "deployed_mean": statistics.mean(deployed), "average_bits": statistics.mean(bits)}
            print(f"{model:4s} {label:34s} {statistics.mean(accs):6.2f} {accs} deployed {deployed} "
                  f"bits {statistics.mean(bits):.2f}", flush=True)
    return {"dataset": dataset, "epochs": epochs, "seeds": seeds, "models": table}


def precision_markdown(res: dict) -> list[str]:
    lines = ["", f"Precision (issue 16): W4A4 fixed-point rows unless named, {res.get('dataset', 'digits')}, "
             f"mean of seeds {res['seeds']}, "
             f"{res['epochs']} epochs; bits = weight bits per weight.", "",
             "| model | precision | bits | fake-quant | deployed |", "|---|---|---|---|---|"]
    for model, rows in res["models"].items():
        for label, e in rows.items():
            lines.append(f"| {model} | {label} | {e['average_bits']:.2f} | {e['accuracy_mean']:.2f} | "
                         f"{e['deployed_mean']:.2f} |")
    return lines


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
             f"{res['seeds']}, {res['epochs']} epochs, msq ratio planned for board {res['board']}.", "",
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
    if "precision" in res:
        lines += precision_markdown(res["precision"])
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
    ap.add_argument("--precision-only", action="store_true",
                    help="re-measure only the precision rows (uniform / layer-wise / intra-layer); the rest is kept")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (1: the benchmark shares the machine; results do not depend on it)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    json_path, md_path = result_files(args.dataset)
    if args.precision_only:
        precision = precision_run(args.models, args.seeds, args.epochs, args.dataset)
        res = _load(json_path)  # read after training: another invocation (other models) may have written it
        if not res:
            raise SystemExit(f"{json_path} is missing: run without --precision-only first")
        res["precision"] = _merge(res.get("precision"), precision)
    elif set(args.schemes) != set(SCHEMES):
        old = _load(json_path)
        if (old.get("epochs"), old.get("seeds")) != (args.epochs, args.seeds):
            raise SystemExit(f"{json_path.name} was measured with other epochs or seeds: re-measure every scheme")
        res = run(args.models, args.seeds, args.epochs, tuple(args.schemes), old["models"], args.dataset)
        if "precision" in old:
            res["precision"] = old["precision"]
    else:  # every scheme of these models; the other models' rows measured the same way are kept
        res = run(args.models, args.seeds, args.epochs, dataset=args.dataset)
        res["precision"] = precision_run(args.models, args.seeds, args.epochs, args.dataset)
        old = _load(json_path)
        res = _merge(old, res)
        res["precision"] = _merge(old.get("precision"), res["precision"])
    atomic.write_json(json_path, res)
    atomic.write_text(md_path, markdown(res))
    print(markdown(res))


def _load(path: Path) -> dict:
    """Earlier results, or {} before the first run."""
    return json.loads(path.read_text()) if path.exists() else {}


def _merge(old: dict | None, new: dict) -> dict:
    """``new``, plus the rows of models it lacks from ``old`` when both used the same epochs and seeds."""
    if old and (old.get("epochs"), old.get("seeds")) == (new["epochs"], new["seeds"]):
        new["models"] = {**old["models"], **new["models"]}
    return new


if __name__ == "__main__":
    main()
