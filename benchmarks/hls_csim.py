"""HLS C-sim benchmark: time from IR to a finished C-sim of the digits test set, MSQ vs hls4ml.

For each demo model (trained briefly; training is not timed) one run measures
- MSQ: ``msq hls`` (project generation from the IR, test vectors, reference outputs) and
  ``msq csim`` (g++ compile, simulation, element-by-element comparison), and
- hls4ml 1.3: ``convert_from_pytorch_model`` of an equivalent float ``nn.Sequential`` (same
  topology, the trained float weights), ``compile()`` and ``predict()`` on the same inputs.

Writes benchmarks/results/hls_csim.json and hls_csim.md. Nothing is downloaded.
"""
from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from msq import atomic
from msq.backends.hls.csim import c_simulate
from msq.backends.hls.project import read_project
from msq.boards import load_board
from msq.frontend.data import load_digits
from msq.frontend.export import export_run
from msq.frontend.train import TrainConfig, load_run, train_run
from msq.rundir import RunDir

RESULTS = Path(__file__).resolve().parent / "results"
HLS4ML_PRECISION = "ap_fixed<16,6>"


def float_twin(model: nn.Sequential) -> nn.Sequential:
    """A plain float nn.Sequential of the same topology, carrying the trained float weights."""
    layers: list[nn.Module] = []
    for module in model:
        name = type(module).__name__
        if name == "QuantLinear":
            twin = nn.Linear(module.in_features, module.out_features, bias=module.bias is not None)
        elif name == "QuantConv2d":
            twin = nn.Conv2d(module.in_channels, module.out_channels, module.kernel_size, module.stride,
                             module.padding, bias=module.bias is not None)
        elif name == "QuantReLU":
            layers.append(nn.ReLU())
            continue
        elif name == "QuantIdentity":
            continue
        elif isinstance(module, (nn.BatchNorm2d, nn.BatchNorm1d, nn.MaxPool2d, nn.AvgPool2d, nn.Flatten)):
            layers.append(module)
            continue
        else:
            raise TypeError(f"no float twin for {name}")
        with torch.no_grad():
            twin.weight.copy_(module.weight)
            if module.bias is not None:
                twin.bias.copy_(module.bias)
        layers.append(twin)
    if layers and isinstance(layers[0], nn.Flatten):
        layers = layers[1:]  # the MLP's input is already a vector for hls4ml
    return nn.Sequential(*layers).eval()


def time_msq(run: Path, work: Path) -> dict:
    start = time.perf_counter()
    project = RunDir(run).write_hls(load_board("pynq-z2"), out=work / "msq_hls")
    generated = time.perf_counter()
    result = c_simulate(project)
    done = time.perf_counter()
    return {"samples": result.samples, "mismatches": result.mismatches,
            "generate_s": round(generated - start, 3), "compile_s": round(result.compile_seconds, 3),
            "simulate_s": round(result.run_seconds, 3), "total_s": round(done - start, 3),
            "test_set": read_project(project)["samples"]["inputs"]}


def time_hls4ml(model: nn.Sequential, x: np.ndarray, kind: str, part: str, work: Path) -> dict:
    import hls4ml

    twin = float_twin(model)
    in_shape = tuple(x.shape[1:])
    io_type = "io_parallel" if kind == "mlp" else "io_stream"
    start = time.perf_counter()
    config = hls4ml.utils.config_from_pytorch_model(twin, input_shape=in_shape, granularity="model",
                                                    backend="Vitis", default_precision=HLS4ML_PRECISION,
                                                    default_reuse_factor=1)
    hmodel = hls4ml.converters.convert_from_pytorch_model(twin, output_dir=str(work / "hls4ml_prj"),
                                                          backend="Vitis", hls_config=config, io_type=io_type,
                                                          part=part)
    converted = time.perf_counter()
    hmodel.compile()
    compiled = time.perf_counter()
    y = hmodel.predict(np.ascontiguousarray(x, dtype=np.float32))
    done = time.perf_counter()
    return {"samples": int(len(x)), "io_type": io_type, "precision": HLS4ML_PRECISION, "backend": "Vitis",
            "convert_s": round(converted - start, 3), "compile_s": round(compiled - converted, 3),
            "predict_s": round(done - compiled, 3), "total_s": round(done - start, 3),
            "output_shape": list(np.shape(y))}


def bench(kind: str, epochs: int, work: Path) -> dict:
    run = work / kind
    train_run(TrainConfig(model=kind, epochs=epochs, seed=0), run)
    export_run(run)
    msq_t = time_msq(run, work)
    model, _ = load_run(run)
    data = load_digits()
    x = data.x_test.reshape(len(data.x_test), -1) if kind == "mlp" else data.x_test
    hls4ml_t = time_hls4ml(model, x, kind, "xc7z020clg400-1", work)
    print(f"{kind}: msq {msq_t['total_s']:.1f} s ({msq_t['mismatches']} mismatches), "
          f"hls4ml {hls4ml_t['total_s']:.1f} s", flush=True)
    return {"msq": msq_t, "hls4ml": hls4ml_t}


def markdown(res: dict) -> str:
    extra = next(iter(res["models"].values()))["msq"]["samples"] - 360
    lines = ["IR → finished C-sim of the digits test set (360 images), seconds, one run "
             f"({res['machine']}). MSQ also simulates {extra} extreme/random vectors and checks every "
             "element against the integer reference; hls4ml "
             f"(`convert → compile → predict`, {HLS4ML_PRECISION}) predicts the float test set.", "",
             "| model | MSQ generate | MSQ compile | MSQ simulate | **MSQ total** | mismatches "
             "| hls4ml convert | hls4ml compile | hls4ml predict | **hls4ml total** |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for kind, r in res["models"].items():
        m, h = r["msq"], r["hls4ml"]
        lines.append(f"| {kind} | {m['generate_s']:.1f} | {m['compile_s']:.1f} | {m['simulate_s']:.2f} | "
                     f"**{m['total_s']:.1f}** | {m['mismatches']} | {h['convert_s']:.1f} | {h['compile_s']:.1f} | "
                     f"{h['predict_s']:.2f} | **{h['total_s']:.1f}** |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["mlp", "cnn"], choices=["mlp", "cnn"])
    parser.add_argument("--epochs", type=int, default=6)
    args = parser.parse_args()
    models = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.models:
            models[kind] = bench(kind, args.epochs, Path(tmp))
    res = {"epochs": args.epochs, "machine": f"{platform.machine()}, {platform.python_version()}, "
                                             f"{__import__('os').cpu_count()} cores", "models": models}
    atomic.write_json(RESULTS / "hls_csim.json", res)
    atomic.write_text(RESULTS / "hls_csim.md", markdown(res))
    print(markdown(res))


if __name__ == "__main__":
    main()
