"""cocotb testbench of a deployment: the PYNQ driver's packing through ``msq_top``, with
cocotbext-axi's AXI-Stream source and sink standing in for the AXI DMA (MM2S and S2MM).

Configuration from the environment (set by the test that runs it):

- ``MSQ_DRIVER``: the generated ``msq_driver.py`` (its pure-numpy ``pack_inputs`` / ``unpack_outputs``);
- ``MSQ_VECTORS``: directory with ``inputs.npy`` (N, *input_shape), ``expected.npy`` (the reference)
  and ``stream.json`` (its ``max_cycles_per_inference`` bounds the wait for each output frame);
- ``MSQ_RESULT``: JSON file this testbench writes (mismatches, frames received, their lengths);
- ``MSQ_SEED``: seed of the random pauses on both streams (bubbles on MM2S, back-pressure on S2MM).

The driver's bytes for all inputs go out as one frame, like the one MM2S transfer ``predict`` makes
(TLAST only at its end, which the core ignores). The sink splits what it receives on TLAST, like
one S2MM transfer per frame: every received frame must be exactly one inference's output beats,
so TLAST on anything but each frame's last beat (or missing there) shows as a wrong frame length.
"""
from __future__ import annotations

import importlib.util
import json
import logging
import os
import random
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, with_timeout
from cocotbext.axi import AxiStreamBus, AxiStreamFrame, AxiStreamSink, AxiStreamSource

PERIOD_NS = 10


def load_driver(path: Path):
    """The generated driver module, imported from its file (pynq is not imported by it)."""
    spec = importlib.util.spec_from_file_location("msq_driver", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pauses(rng: random.Random, probability: float):
    """An endless pause pattern for cocotbext-axi: True pauses the stream for that cycle."""
    while True:
        yield rng.random() < probability


@cocotb.test()
async def driver_packing_test(dut):
    """Driver-packed inputs in, TLAST-framed outputs out, unpacked by the driver and compared exactly."""
    driver = load_driver(Path(os.environ["MSQ_DRIVER"]))
    vectors = Path(os.environ["MSQ_VECTORS"])
    x, expected = np.load(vectors / "inputs.npy"), np.load(vectors / "expected.npy")
    rng = random.Random(int(os.environ.get("MSQ_SEED", "0")))
    fmt = driver.FORMAT
    words = driver.pack_inputs(x)
    frame_bytes = fmt["out_beats"] * fmt["out_tdata_bits"] // 8
    max_cycles = int(json.loads((vectors / "stream.json").read_text())["max_cycles_per_inference"])

    cocotb.start_soon(Clock(dut.ap_clk, PERIOD_NS, unit="ns").start())
    source = AxiStreamSource(AxiStreamBus.from_prefix(dut, "x_in"), dut.ap_clk, dut.ap_rst_n, reset_active_level=False)
    sink = AxiStreamSink(AxiStreamBus.from_prefix(dut, "y_out"), dut.ap_clk, dut.ap_rst_n, reset_active_level=False)
    for end in (source, sink):  # not every frame in the log
        end.log.setLevel(logging.WARNING)
    source.set_pause_generator(pauses(rng, 0.2))
    sink.set_pause_generator(pauses(rng, 0.3))
    dut.ap_rst_n.value = 0
    await ClockCycles(dut.ap_clk, 4)
    dut.ap_rst_n.value = 1
    await ClockCycles(dut.ap_clk, 2)

    await source.send(AxiStreamFrame(words.tobytes()))
    frames = []
    for _ in range(len(x)):
        frame = await with_timeout(sink.recv(), 2 * max_cycles * PERIOD_NS, "ns")  # pauses: up to 2x slower
        frames.append(bytes(frame.tdata))
    await ClockCycles(dut.ap_clk, 4 * fmt["out_beats"] + 20)  # nothing more may arrive
    extra = not sink.empty()

    lengths = [len(f) for f in frames]
    got = driver.unpack_outputs(np.frombuffer(b"".join(frames), dtype=np.uint8)) if set(lengths) == {frame_bytes} else None
    want = expected.reshape(got.shape) if got is not None else expected
    mismatches = [] if got is None else [
        {"sample": int(s), "index": int(i), "expected": int(want.reshape(len(x), -1)[s, i]),
         "got": int(got.reshape(len(x), -1)[s, i])}
        for s, i in zip(*np.nonzero(got.reshape(len(x), -1) != want.reshape(len(x), -1)))]
    result = {"samples": len(x), "frames": len(frames), "frame_bytes": frame_bytes,
              "bad_frame_lengths": [(k, n) for k, n in enumerate(lengths) if n != frame_bytes],
              "extra_output": extra, "mismatches": mismatches}
    Path(os.environ["MSQ_RESULT"]).write_text(json.dumps(result, indent=1) + "\n")
    assert not result["bad_frame_lengths"] and not extra, "TLAST does not end exactly each output frame"
    assert not mismatches, f"{len(mismatches)} mismatching output elements"
