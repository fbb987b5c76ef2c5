"""High-precision rows in hardware: their own DSP engine (plan field ``pe_fixed_hi``) in the
Verilog and HLS backends ≡ the integer reference, the cycle model ≡ RTL simulation, the estimate,
the planner, the plan file, and ``msq flow --high-bits 8 --high-fraction 0.1`` end to end.

Needs g++, hls4ml's ap_types and Verilator, like tests/test_equivalence.py: fails without them.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from click.testing import CliRunner
from random_models import extreme_inputs, random_ir, random_plan
from test_equivalence import _hls_csim, _verilog
from test_flow import SMALL_BOARD

from msq.backends.rtl import verilog
from msq.boards import load_board
from msq.cli import main
from msq.design import cost_model
from msq.design.estimate import estimate_design
from msq.design.planner import plan_search
from msq.errors import MSQError
from msq.ir import load_ir
from msq.ir.plan import DSP_ENGINES, LayerPlan, Plan, check_plan, engine_rows, folds, load_plan, save_plan

# Random IRs with high rows among SP2 and fixed rows (test_high_seeds_cover_the_cases checks it):
# seed 0 conv + max-pool + dense, its high engines packed two rows per DSP; seed 2 conv + dense,
# one layer with all four engines, its high engines unpacked.
HIGH_SEEDS = (0, 2)


def _engines(seed: int) -> list:
    ir = random_ir(seed, high=True)
    plan = random_plan(ir, seed)
    return [(layer, e) for layer in ir.compute_layers() for e in engine_rows(layer, plan[layer.name])]


def test_high_seeds_cover_the_cases():
    pairs = [pair for seed in HIGH_SEEDS for pair in _engines(seed)]
    layers = {id(layer): layer for layer, _ in pairs}.values()
    assert {layer.kind for layer in layers} == {"dense", "conv"}
    assert all(len(random_ir(seed, high=True).compute_layers()) >= 2 for seed in HIGH_SEEDS)
    assert any({e.kind for lay, e in pairs if lay is layer} == {"sp2", "fixed", "fixed_lut", "fixed_hi"}
               for layer in layers)
    high = [e for _, e in pairs if e.kind == "fixed_hi"]
    assert {verilog.fixed_packing(e) for e in high} == {True, False}
    assert all(e.wbits == layer.high_bits > layer.wbits for layer, e in pairs if e.kind == "fixed_hi")
    # each row group's accumulator is derived from its own rows
    assert any(layer.group_acc_bits(True) != layer.group_acc_bits(False) for layer in layers)
    for layer, e in pairs:
        assert e.acc_bits == layer.acc_bits_of(e.rows if e.kind == "fixed_hi" else
                                               np.flatnonzero(~layer.high_mask)) <= layer.acc_bits


CASES = [(b, s) for b in ("hls_csim", "verilog") for s in HIGH_SEEDS]


@pytest.mark.parametrize("backend, seed", CASES, ids=[f"{b}-{s}" for b, s in CASES])
def test_high_rows_backend_equals_reference(backend, seed, tmp_path):
    """C-sim and RTL simulation (bubbles, back-pressure; the measured cycles equal the cycle
    model's) give the reference's every output, exactly."""
    ir = random_ir(seed, high=True)
    plan = random_plan(ir, seed)
    assert any(lp.pe_fixed_hi for lp in plan.layers.values())
    x = extreme_inputs(ir, n_random=64, seed=seed + 100)
    if backend == "verilog":
        _verilog(ir, plan, x, tmp_path, seed)
    else:
        _hls_csim(ir, plan, x, tmp_path)


def test_plan_file_carries_pe_fixed_hi_and_is_checked(tmp_path):
    ir = random_ir(0, high=True)
    plan = random_plan(ir, 0)
    save_plan(plan, tmp_path / "plan.json")
    assert load_plan(ir, tmp_path / "plan.json") == plan
    layer = ir.compute_layers()[0]
    n = len(layer.high_rows)
    for bad in (0, n + 1):
        layers = {**plan.layers, layer.name: LayerPlan(**{**plan[layer.name].__dict__, "pe_fixed_hi": bad})}
        with pytest.raises(MSQError, match=rf"layer '{layer.name}' pe_fixed_hi = {bad} must be in \[1, {n}\] "
                                           rf"\({n} high-precision rows"):
            check_plan(ir, Plan(layers, plan.in_width, plan.out_width))
    uniform = random_ir(0)
    lp = random_plan(uniform, 0)
    name = uniform.compute_layers()[0].name
    with pytest.raises(MSQError, match=rf"layer '{name}' pe_fixed_hi = 1 must be in \[1, 0\]"):
        check_plan(uniform, Plan({**lp.layers, name: LayerPlan(**{**lp[name].__dict__, "pe_fixed_hi": 1})}))


def test_estimate_costs_the_high_engine_on_dsps():
    """The high engine costs what Yosys measured of it (W8A4, over SIMD, packed or not), scaled
    by the fixed engine's width trend at other widths; a table without it costs it as the fixed
    engine. The DSPs are its MACs (halved when packed) and its requantizers, as the generator builds."""
    table = cost_model.calibration()
    for m in table["measured"]["fixed_hi_engine"]:
        w, a, simd, pack = m["params"]
        per_mac = [m[k] / (table["pe"] * simd) for k in ("lut", "ff", "dsp")]
        assert list(cost_model.mac_cost("fixed_hi", w, a, simd, bool(pack))) == pytest.approx(per_mac)
    assert cost_model.mac_cost("fixed_hi", 8, 4, 8)[1] != cost_model.mac_cost("fixed", 8, 4, 8)[1]
    without = {**table, "measured": {k: v for k, v in table["measured"].items() if k != "fixed_hi_engine"}}
    assert cost_model.mac_cost("fixed_hi", 8, 4, 8, table=without) == cost_model.mac_cost("fixed", 8, 4, 8)
    assert cost_model.mac_cost("fixed_hi", 8, 4, 8, table=without)[1] > cost_model.mac_cost("fixed", 4, 4, 8)[1]
    ir = random_ir(0, high=True)
    plan = random_plan(ir, 0)
    expected = 0.0
    for layer in ir.compute_layers():
        lp = plan[layer.name]
        for e in engine_rows(layer, lp):
            expected += verilog.requant_units(e.pe, verilog.steps_per_fold(layer, lp))
            if e.kind in DSP_ENGINES:
                assert e.wbits + layer.in_fmt.bits >= 9  # a product Yosys maps to a DSP48
                expected += lp.simd * (e.pe / 2 if verilog.fixed_packing(e) else e.pe)
    assert estimate_design(ir, plan).dsp == expected


def test_planner_gives_the_high_rows_their_engine():
    ir = random_ir(2, high=True)
    result = plan_search(ir, load_board("pynq-z2"))
    plan = check_plan(ir, result.plan)
    for layer in ir.compute_layers():
        lp = plan[layer.name]
        nf = folds(layer, lp)
        assert lp.pe_fixed_hi == math.ceil(len(layer.high_rows) / nf) >= 1
        assert nf == max(math.ceil(len(e.rows) / e.pe) for e in engine_rows(layer, lp))


def test_flow_with_high_rows_runs_end_to_end_exactly(tmp_path):
    """``msq flow --high-bits 8 --high-fraction 0.1`` (1 epoch, a small board) through RTL
    simulation: every ladder step 0 mismatches, the high rows planned on their engine."""
    (tmp_path / "small.yaml").write_text(SMALL_BOARD)
    out = tmp_path / "mlp"
    res = CliRunner().invoke(main, ["flow", "--model", "mlp", "--epochs", "1", "--seed", "1", "--high-bits", "8",
                                    "--high-fraction", "0.1", "--board", str(tmp_path / "small.yaml"),
                                    "--out", str(out), "--until", "rtlsim"])
    assert res.exit_code == 0, res.output
    s = json.loads((out / "summary.json").read_text())
    assert s["torch_int"]["mismatches"] == 0
    assert s["csim"]["mismatches"] == 0 and s["csim"]["samples"] == 373
    assert s["rtlsim"]["mismatches"] == 0 and s["rtlsim"]["samples"] == 373
    design = json.loads((out / "rtl" / "design.json").read_text())
    assert s["rtlsim"]["cycles_per_inference"] == design["cycles"]["interval"]
    ir = load_ir(out / "ir")
    plan = load_plan(ir, out / "plan.json")
    for layer in ir.compute_layers():
        assert layer.high_bits == 8 and len(layer.high_rows) == math.ceil(0.1 * layer.rows - 1e-9)
        assert plan[layer.name].pe_fixed_hi >= 1
    assert "fixed_hi" in (out / "rtl" / "hdl" / f"msq_layer_{ir.layers[0].name}.v").read_text()
