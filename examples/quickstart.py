"""MSQ from Python, end to end on the digits dataset: train a tiny MLP, export it to the integer
IR, then HLS C-simulation, Verilog simulation and synthesis, each checked bit for bit against the
integer reference. About a minute on two cores.

    python examples/quickstart.py [--epochs 10] [--vectors 10] [--board pynq-z2]

Every step returns an object (docs/api.md); nothing here reads a file.
"""
import argparse

import numpy as np

import msq
from msq.frontend import models


def tiny_mlp(in_shape, classes, cfg, signed_input):
    """64 → 16 → 10: MSQ's quantized layers (SP2 and fixed-point rows), small enough to simulate fast."""
    return models.build_mlp(in_shape, classes, cfg, signed_input, hidden=(16,))


def main() -> None:
    parser = argparse.ArgumentParser(description="MSQ's Python API end to end on the digits dataset.")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--vectors", type=int, default=10, help="test inputs to simulate")
    parser.add_argument("--board", default="pynq-z2")
    args = parser.parse_args()

    data = msq.load_dataset("digits")
    model = msq.train(tiny_mlp, epochs=args.epochs, board=args.board)  # SP2 and fixed rows, mixed
    ir = msq.export(model, data.x_test[:1])
    print(ir.summary())
    accuracy = 100 * np.mean(ir.predict(data.x_test) == data.y_test)
    print(f"fake-quant accuracy {model.msq_metrics['accuracy']['test']:.2f}%, "
          f"deployed (integer reference) {accuracy:.2f}%")

    x = data.x_test[:args.vectors]  # extreme and random vectors are checked too
    csim = msq.hls(ir, args.board).csim(x)  # g++ with the open ap_types headers
    print(f"HLS C-sim: {csim.mismatches} mismatches on {csim.samples} inputs; "
          f"predictions equal the reference's: {np.array_equal(csim.predictions, ir.predict(x))}")

    design = msq.rtl(ir)  # one lane per engine, the smallest; msq.rtl(ir, msq.plan(ir, board)): the fastest that fits
    sim = design.simulate(x)  # cocotb + Verilator, with random bubbles and back-pressure
    print(f"Verilog: {sim.mismatches} mismatches on {sim.samples} inputs, "
          f"{sim.cycles_per_inference:g} cycles per inference, latency {sim.latency_cycles} cycles")

    syn = msq.synth(design, args.board)  # Yosys; Vivado when it is on PATH
    print(f"{syn.tool} for {args.board}: LUT {syn.lut}, FF {syn.ff}, DSP {syn.dsp}, BRAM {syn.bram36:g}")


if __name__ == "__main__":
    main()
