"""Planner, estimator, calibration table and explore: fast checks (no synthesis, no simulation)."""
from __future__ import annotations

import json

import pytest

from msq.design import cost_model
from msq.design import explore, planner
from msq.ir.plan import LayerPlan, default_plan
from msq.backends.rtl import cycles
from msq.design.estimate import estimate_design
from msq.boards import load_board
from msq.errors import MSQError


def test_planner_calibration_table_covers_2_to_8_bits():
    table = cost_model.calibration()
    assert "Yosys" in table["yosys_version"] and table["command"] == "msq calibrate"
    for w in range(2, 9):
        for a in range(2, 9):
            lut, ff, _ = cost_model.lane_cost("sp2", w, a)
            assert lut > 0 and ff > 0
            assert cost_model.lane_cost("fixed", w, a)[1] > 0
    assert cost_model.fixed_mac_dsps(4, 4) == 1.0 and cost_model.lane_cost("fixed", 4, 4)[2] == 1
    # wider operands cost more LUTs in the shift-add lane
    assert cost_model.sp2_mac_luts(8, 8) > cost_model.sp2_mac_luts(2, 2)


def test_planner_board_ratio_in_unit_interval():
    for name in ("pynq-z2", "zc706", "zcu104"):
        assert 0 < cost_model.board_sp2_ratio(load_board(name), 4, 4) < 1


def test_planner_balances_and_fits(mlp_demo):
    _, ir = mlp_demo
    board = load_board("pynq-z2")
    res = planner.plan_search(ir, board)
    assert res.interval == cycles.inference_interval(ir, res.plan)
    assert res.latency == cycles.latency(ir, res.plan)
    assert planner.fits(res.resources, board, planner.HEADROOM)
    assert res.interval < cycles.inference_interval(ir, default_plan(ir))
    for layer in ir.compute_layers():
        p = res.plan[layer.name]
        n_pass = cycles.passes(layer, p)
        # balanced engines: neither engine could drop a lane and keep the layer's pass count
        for rows, lanes in ((len(layer.sp2_rows), p.sp2_lanes), (len(layer.fixed_rows), p.fixed_lanes)):
            if lanes > 1:
                assert -(-rows // (lanes - 1)) > n_pass
        # no layer gets lanes it does not need to meet the interval
        slower = LayerPlan(max(p.sp2_lanes - 1, int(p.sp2_lanes > 0)), max(p.fixed_lanes - 1, int(p.fixed_lanes > 0)))
        if slower != p:
            assert cycles.layer_cycles(layer, slower) > res.interval or \
                cycles.passes(layer, slower) == n_pass and slower.sp2_lanes * slower.fixed_lanes == 0


def test_planner_respects_a_tiny_board(mlp_demo, tmp_path):
    _, ir = mlp_demo
    small = tmp_path / "tiny.yaml"
    small.write_text("name: tiny\npart: xc7z007sclg400-1\nfamily: xc7\nlut: 9000\nff: 20000\ndsp: 4\n"
                     "bram36: 10\nclock_mhz: 100\n")
    board = load_board(small)
    res = planner.plan_search(ir, board, headroom=1.0)
    assert res.resources.dsp <= 4 and res.resources.lut <= 9000
    assert sum(p.fixed_lanes for p in res.plan.values()) <= 4
    big = planner.plan_search(ir, load_board("zc706"))
    assert big.interval < res.interval
    tiny = tmp_path / "none.yaml"
    tiny.write_text(small.read_text().replace("lut: 9000", "lut: 100"))
    with pytest.raises(MSQError, match="does not fit board tiny.*LUT"):
        planner.plan_search(ir, load_board(tiny))


def test_planner_dsp_estimate_is_one_per_fixed_lane(mlp_demo):
    _, ir = mlp_demo
    plan = {layer.name: LayerPlan(len(layer.sp2_rows), 2) for layer in ir.compute_layers()}
    assert estimate_design(ir, plan).dsp == 2 * len(ir.compute_layers())


def test_planner_explore_writes_outputs(cnn_demo, tmp_path):
    _, ir = cnn_demo
    result = explore.write_explore(ir, load_board("pynq-z2"), tmp_path)
    data = json.loads((tmp_path / explore.EXPLORE_JSON).read_text())
    assert [p["ratio"] for p in data["points"]] == list(explore.RATIOS)
    assert (tmp_path / explore.PARETO_PNG).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert result["best"] is not None and result["best"]["ratio"] in result["pareto"]
    fixed_only = data["points"][0]
    assert fixed_only["sp2_rows"] == 0 and fixed_only["lut"] > 0
    assert data["points"][-1]["dsp"] == 0  # SP2 only: no DSP at all
