"""RTL simulation benchmark: simulated inferences per wall-clock second and cycles per inference
for the demo MLP and CNN, Verilator vs Icarus (both through cocotb, no bubbles or back-pressure).

Writes benchmarks/results/rtl_sim.json and rtl_sim.md. Verilator streams the whole digits test set
plus the extreme/random vectors; Icarus, being far slower, streams the first ``--icarus-samples``.
Build (compile) time is reported separately from simulation time.
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from msq import atomic
from msq.backends.rtl.generate import read_design
from msq.backends.rtl.simulate import build, simulate
from msq.frontend.export import export_run
from msq.frontend.train import TrainConfig, train_run
from msq.rundir import RunDir

RESULTS = Path(__file__).resolve().parent / "results"


def _subset(project: Path, n: int) -> Path:
    dest = project / "vectors_subset"
    dest.mkdir(exist_ok=True)
    shutil.copyfile(project / "vectors" / "stream.json", dest / "stream.json")
    for name in ("inputs.npy", "expected.npy"):
        np.save(dest / name, np.load(project / "vectors" / name)[:n])
    return dest


def bench(model: str, simulator: str, root: Path, epochs: int, icarus_samples: int) -> dict:
    run = root / model
    if not (run / "ir").is_dir():
        train_run(TrainConfig(model=model, epochs=epochs, seed=0, sp2_ratio=0.6), run)
        export_run(run)
    project = run / "rtl"
    if not project.is_dir():
        RunDir(run).write_rtl()
    design = read_design(project)
    start = time.perf_counter()
    build(project, simulator, [project / s for s in design["sources"]])
    build_seconds = time.perf_counter() - start
    vectors = _subset(project, icarus_samples) if simulator == "icarus" else None
    result = simulate(project, simulator=simulator, bubble=0.0, backpressure=0.0, vectors=vectors)
    assert not result["mismatches"], f"{model}/{simulator}: {len(result['mismatches'])} mismatches"
    inferences = result["samples"] + result["timing"]["inferences"]
    return {"model": model, "simulator": simulator, "build_seconds": round(build_seconds, 2),
            "inferences": inferences, "sim_seconds": round(result["wall_seconds"], 3),
            "inferences_per_second": round(inferences / result["wall_seconds"], 2),
            "simulated_cycles": result["sim_cycles"],
            "cycles_per_second": round(result["sim_cycles"] / result["wall_seconds"]),
            "cycles_per_inference": result["timing"]["interval_cycles"],
            "cycles_per_inference_model": design["cycles"]["interval"],
            "latency_cycles": result["timing"]["latency_cycles"], "latency_model": design["cycles"]["latency"],
            "mismatches": 0}


def markdown(rows: list[dict]) -> str:
    lines = ["# RTL simulation (cocotb 2.1, no bubbles or back-pressure)", "",
             "Inferences include the timing run (a burst of inferences at full rate); cycles are measured in "
             "simulation and equal the cycle model (msq.backends.rtl.cycles).", "",
             "| model | simulator | inferences | inferences/s | sim cycles/s | cycles/inference | latency (cycles) "
             "| build s |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['simulator']} | {r['inferences']} | {r['inferences_per_second']:.1f} "
                     f"| {r['cycles_per_second']:,} | {r['cycles_per_inference']} | {r['latency_cycles']} "
                     f"| {r['build_seconds']:.1f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["mlp", "cnn"])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--icarus-samples", type=int, default=12)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models:
            for simulator in ("verilator", "icarus"):
                rows.append(bench(model, simulator, Path(tmp), args.epochs, args.icarus_samples))
                print(rows[-1])
    atomic.write_json(RESULTS / "rtl_sim.json", {"rows": rows})
    atomic.write_text(RESULTS / "rtl_sim.md", markdown(rows))
    print(markdown(rows))


if __name__ == "__main__":
    main()
