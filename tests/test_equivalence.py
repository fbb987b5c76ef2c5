"""Every backend ≡ the integer reference, exactly, on the same random IRs, plans and inputs.

One test, parametrized over the backends: the frozen PyTorch integer path, the HLS project's g++
C-sim, and the Verilog in Verilator + cocotb (random bubbles and back-pressure, cycles checked
against the cycle model). Random IRs cover 2–8-bit weights and activations, SP2-only, fixed-only
and mixed layers, dense/conv (padding, stride)/max-pool/avg-pool; plans give random lanes.
A backend whose tool is missing fails here, by design.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from random_models import extreme_inputs, random_graph_ir, random_ir, random_plan

from msq import ref
from msq.backends.hls import csim
from msq.backends.hls.project import generate_project, read_project
from msq.backends.rtl import cycles
from msq.backends.rtl.generate import generate_rtl, read_design
from msq.backends.rtl.lint import lint
from msq.backends.rtl.simulate import simulate
from msq.backends.torch_int import IntegerModel
from msq.boards import load_board
from msq.ir import arith
from msq.ir.arith import ActFormat
from msq.ir.model import ComputeLayer, IRModel, MergeLayer
from msq.ir import plan as plan_module
from msq.ir.plan import LayerPlan, Plan, engine_rows, simd_unit

# Seeds whose random IRs together cover weight widths 2..8, every layer kind, padding and stride,
# SP2-only, fixed-only and mixed layers (test_seeds_cover_widths_and_schemes checks it). Verilator
# builds dominate the run time, so the RTL takes a subset.
SEEDS = (0, 1, 3, 5, 8, 9, 10, 11, 12, 32, 110, 113, 223)
RTL_SEEDS = (3, 10, 32, 110, 113, 223)
# Random graphs (random_graph_ir): 21 a residual network whose shortcuts need 3 frame buffers (its
# identity shortcut skips two convs), 12 a concat of two convs that both read the network input
# (one of its inputs needs 3 buffers).
GRAPH_SEEDS = (12, 21)


def _torch_int(ir: IRModel, plan: Plan, x: np.ndarray, tmp: Path) -> None:
    got = IntegerModel(ir)(x)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, ref.infer(ir, x))


def _hls_csim(ir: IRModel, plan: Plan, x: np.ndarray, tmp: Path) -> None:
    project = generate_project(ir, tmp / "hls", load_board("pynq-z2"), x, plan=plan)
    assert read_project(project)["plan"] == plan.as_dict()
    result = csim.c_simulate(project)
    report = json.loads(result.report.read_text())
    assert result.warnings == "", f"g++ -Wall warnings:\n{result.warnings}"
    assert result.mismatches == 0, report["output_mismatches"][:5]
    assert report["first_divergent_layer"] is None
    assert all(layer["traced"] and layer["mismatches"] == 0 for layer in report["layers"].values())
    # the C-sim's own outputs, against the reference computed here
    every = np.concatenate([x, extreme_inputs(ir)])
    got = np.loadtxt(project / csim.CSIM_DIR / "outputs.txt", dtype=np.int64, ndmin=2)
    np.testing.assert_array_equal(got, ref.infer(ir, every).reshape(len(every), -1))


def _verilog(ir: IRModel, plan: Plan, x: np.ndarray, tmp: Path, seed: int = 0) -> None:
    # odd seeds tune the pipeline for ECP5 (products registered before the DSP chain): same cycles
    family = "ecp5" if seed % 2 else "xc7"
    project = generate_rtl(ir, tmp / "rtl", x[:6], plan=plan, source="test_equivalence", family=family)
    assert read_design(project)["family"] == family
    clean, messages = lint(project)
    assert clean, messages
    result = simulate(project, mid_stream_reset=bool(seed % 2), seed=seed)
    assert_rtl_exact(result, ir, plan, read_design(project)["samples"]["total"])


def assert_rtl_exact(result: dict, ir: IRModel, plan: Plan, samples: int) -> None:
    """Every output equal and received, and every measured cycle equal to the cycle model's."""
    assert result["mismatches"] == [], result["mismatches"][:5]
    assert result["stress"]["outputs_received"] == samples * int(np.prod(ir.output_shape))
    burst = cycles.timing(ir, plan, result["timing"]["inferences"])
    assert result["timing"]["latency_cycles"] == burst.latency == cycles.latency(ir, plan)
    assert result["timing"]["intervals"] == burst.intervals
    assert result["cycles_per_inference"] == cycles.inference_interval(ir, plan)
    assert result["latency_cycles"] == result["timing"]["latency_cycles"]


CASES = ([("torch_int", s) for s in SEEDS] + [("hls_csim", s) for s in SEEDS]
         + [("verilog", s) for s in RTL_SEEDS])


@pytest.mark.parametrize("backend, seed", CASES, ids=[f"{b}-{s}" for b, s in CASES])
def test_backend_equals_reference(backend, seed, tmp_path):
    ir = random_ir(seed)
    plan = random_plan(ir, seed)
    x = extreme_inputs(ir, n_random=64, seed=seed + 100)
    if backend == "verilog":
        _verilog(ir, plan, x, tmp_path, seed)
    else:
        {"torch_int": _torch_int, "hls_csim": _hls_csim}[backend](ir, plan, x, tmp_path)


@pytest.mark.parametrize("seed", GRAPH_SEEDS)
def test_graph_verilog_equals_reference(seed, tmp_path):
    """Residual adds and concats in Verilator: a stream with several readers waits for all of them;
    with random bubbles and back-pressure nothing deadlocks, every output is exact and every cycle
    the cycle model's."""
    ir = random_graph_ir(seed)
    plan = random_plan(ir, seed)
    merges = [c for layer, c in zip(ir.layers, cycles.buffer_counts(ir, plan)) if isinstance(layer, MergeLayer)]
    assert merges and max(max(c) for c in merges) > cycles.MIN_BUFFERS
    _verilog(ir, plan, extreme_inputs(ir, n_random=16, seed=seed), tmp_path, seed)


# Block RAM frame buffers, forced onto every image a layer reads (BLOCK_FRAME_BITS 0): ir 5 and
# graph 18 have engine ports a fold apart, which only the buffers' alignment delays keep exact
# (without them 11 and 91 outputs differ); ir 26 a max pool reading 7 groups a pixel (8 address
# slots); ir 33 an average pool of 5 groups; graph 14 a residual network whose input stream writes
# 3 groups a pixel and whose adds' inputs arrive 8 cycles apart.
BLOCK_SEEDS = (("ir", 5), ("ir", 26), ("ir", 33), ("graph", 14), ("graph", 18))


@pytest.mark.parametrize("kind, seed", BLOCK_SEEDS, ids=[f"{k}-{s}" for k, s in BLOCK_SEEDS])
def test_block_ram_frames_equal_reference(kind, seed, tmp_path, monkeypatch):
    """Frames in block RAM (a pixel per word, assembled from the writer's beats, read through the
    RAM's register) keep every output exact and every cycle the cycle model's."""
    monkeypatch.setattr(plan_module, "BLOCK_FRAME_BITS", 0)
    ir = random_graph_ir(seed) if kind == "graph" else random_ir(seed)
    plan = random_plan(ir, seed)
    project = generate_rtl(ir, tmp_path / "rtl", extreme_inputs(ir, n_random=4), plan=plan)
    blocks = [path.name for path in (project / "hdl").glob("msq_fbuf_*.v") if "ram_style" in path.read_text()]
    assert len(blocks) == sum(len(shape) == 3 for layer in ir.layers for shape in layer.in_shapes)
    _verilog(ir, plan, extreme_inputs(ir, n_random=12, seed=seed), tmp_path, seed)


def test_skip_buffers_keep_the_pace(monkeypatch):
    """The frame buffers the cycle model derives for each input let every random graph run at its
    slowest stage's pace; with the fewest buffers (two per input) the shortcuts stall some of them."""
    slower = 0
    derived = cycles.buffer_counts
    for seed in (1, 6, 9, 11, 14, 21, 23, 24, 27):
        ir = random_graph_ir(seed)
        plan = random_plan(ir, seed)
        pace = max(cycles.stage_cycles(ir, plan))
        assert cycles.inference_interval(ir, plan) == pace
        with monkeypatch.context() as m:
            m.setattr(cycles, "buffer_counts", lambda ir, plan: [(cycles.MIN_BUFFERS,) * len(c) for c in derived(ir, plan)])
            slower += cycles.inference_interval(ir, plan) > pace
    assert slower >= 3


def test_lut_engine_builds_no_more_pes_than_rows(tmp_path):
    """Seed 11's plan gives its last layer's fixed-point LUT engine 2 PEs for the 1 row the DSP
    engine leaves it: the engine builds 1 (an idle lane would have no element to write, and its
    unused lanes failed the lint), and both backends stay exact (hls_csim-11 above)."""
    ir = random_ir(11)
    plan = random_plan(ir, 11)
    layer = ir.layers[-1]
    lut = next(e for e in engine_rows(layer, plan[layer.name]) if e.kind == "fixed_lut")
    assert plan[layer.name].pe_fixed_lut == 2 and len(lut.rows) == lut.pe == 1
    project = generate_rtl(ir, tmp_path / "rtl", extreme_inputs(ir, n_random=4), plan=plan)
    clean, messages = lint(project)
    assert clean, messages


def test_seeds_cover_widths_and_schemes():
    layers = [layer for seed in SEEDS for layer in random_ir(seed).layers]
    compute = [layer for layer in layers if hasattr(layer, "scheme")]
    assert {layer.wbits for layer in compute} == set(range(2, 9))
    assert {layer.kind for layer in layers} == {"dense", "conv", "maxpool", "avgpool"}
    assert any(len(layer.sp2_rows) and len(layer.fixed_rows) for layer in compute)
    assert any(len(layer.sp2_rows) == layer.rows for layer in compute)
    assert any(len(layer.fixed_rows) == layer.rows for layer in compute)
    assert any(layer.kind == "conv" and layer.padding != (0, 0) for layer in compute)
    assert any(layer.kind == "conv" and layer.stride != (1, 1) for layer in compute)
    # windows wider than one tap over several SIMD words per pixel: the address steps between taps
    windows = [(layer, random_plan(random_ir(seed), seed)[layer.name]) for seed in RTL_SEEDS
               for layer in random_ir(seed).layers if layer.kind != "dense"]
    assert any(layer.kind == "conv" and layer.kernel[1] > 1 and layer.in_shape[-1] // lp.simd > 1
               for layer, lp in windows)
    assert any(layer.kind != "conv" and layer.in_shape[-1] // lp.simd > 1 for layer, lp in windows)


def _dead_layer_ir() -> IRModel:
    """A dense layer whose rounding term 2^(shift-1) does not fit requant_bits on its own: all-zero
    weights, bias -7, shift 4, so acc*m + bias + 2^3 spans [-7, 1] (4 bits) while 2^3 needs 5."""
    fmt_in, fmt_out = ActFormat(4, 0, False), ActFormat(4, 0, True)
    w = np.zeros((1, 3), dtype=np.int64)
    layer = ComputeLayer(name="dense1", kind="dense", in_shape=(3,), out_shape=(1,), wbits=4, in_fmt=fmt_in,
                         out_fmt=fmt_out, relu=False, acc_bits=arith.accumulator_bits(w, fmt_in),
                         requant_bits=arith.requant_bits(np.array([0]), np.array([0]), np.array([1]), np.array([4]), np.array([-7])),
                         scheme=np.zeros(1, dtype=np.int64), w_int=w, bias=np.array([-7]), mult=np.array([1]),
                         shift=np.array([4]))
    assert layer.requant_bits == 4
    return IRModel(name="dead", input_shape=(3,), input_fmt=fmt_in, layers=[layer])


@pytest.mark.parametrize("backend", ["torch_int", "hls_csim", "verilog"])
def test_rounding_term_wider_than_requant_bits(backend, tmp_path):
    """Regression: the HLS requantizer built 2^(shift-1) in a requant_bits-wide type, which wrapped."""
    ir = _dead_layer_ir()
    x = extreme_inputs(ir, n_random=4, seed=0)
    assert set(ref.infer(ir, x).ravel()) == {0}  # floor((-7 + 8) / 16) = 0
    plan = Plan({"dense1": LayerPlan(1, 0, 1)})
    {"torch_int": _torch_int, "hls_csim": _hls_csim, "verilog": _verilog}[backend](ir, plan, x, tmp_path)


def test_one_step_layers_wait_for_their_registered_claim(tmp_path):
    """Every layer finishes its frame in one step: its claim of the next buffers lands a cycle late
    (registered, for timing), so it cannot go on to the next frame in that cycle; the RTL and the
    cycle model agree that each frame then takes two cycles."""
    ir = random_ir(113)
    plan = Plan({layer.name: LayerPlan(simd_unit(layer), len(layer.sp2_rows), len(layer.fixed_rows), 0,
                                       len(layer.high_rows)) for layer in ir.layers},
                int(np.prod(ir.input_shape)), int(np.prod(ir.output_shape)))
    assert set(cycles.all_layer_cycles(ir, plan).values()) == {1}
    assert cycles.inference_interval(ir, plan) == 2
    _verilog(ir, plan, extreme_inputs(ir, n_random=16, seed=7), tmp_path)


def test_one_beat_input_frames_wait_for_the_input_claim(tmp_path):
    """A frame is one input beat and the first layer one step: the input stream's claim reaches the
    first layer's buffers a cycle late (its register slice), so the stream starts no frame in that
    cycle although its next buffer is free; the RTL and the cycle model agree on every cycle."""
    ir = random_ir(223)
    first = ir.layers[0]
    plan = random_plan(ir, 223)
    plan = Plan({**plan.layers, first.name: LayerPlan(simd_unit(first), len(first.sp2_rows), len(first.fixed_rows), 0,
                                                      len(first.high_rows))},
                int(np.prod(ir.input_shape)), plan.out_width)
    assert cycles.all_layer_cycles(ir, plan)[first.name] == 1
    beats = cycles.timing(ir, plan, 4).in_beats
    assert beats[:2] == [0, 2] and min(b - a for a, b in zip(beats, beats[1:])) == 2
    _verilog(ir, plan, extreme_inputs(ir, n_random=16, seed=5), tmp_path, 223)
