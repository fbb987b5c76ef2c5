"""benchmarks/precision_hw.py's pure parts: design names, rows per engine, the 80 % check and the table."""
import importlib.util
import sys
from pathlib import Path

import pytest

from msq.boards import load_board
from msq.design import planner
from msq.ir.plan import ENGINES, default_plan
from msq.names import check_label
from random_models import random_ir

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(ROOT / "benchmarks"))  # the script imports accuracy.py beside it
    try:
        spec = importlib.util.spec_from_file_location("precision_hw", ROOT / "benchmarks" / "precision_hw.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))


def test_design_names_are_distinct_labels(bench):
    labels = [label for label, _, _ in bench.precision_variants("mlp")]
    names = [bench.design_name("mlp", label) for label in labels]
    assert len(set(names)) == len(labels) == 5
    assert all(check_label(name, "design") == name for name in names)
    assert bench.design_name("cnn", "intra-layer F=0.1") == "cnn-intra-layer-F-0.1"


def test_engine_rows_count_every_row_once(bench):
    ir = random_ir(3, kind="mlp", high=True)
    board = load_board("pynq-z2")
    for plan in (default_plan(ir), planner.plan_search(ir, board).plan):
        counts = bench.engine_rows(ir, plan)
        assert list(counts) == list(ENGINES)
        assert sum(counts.values()) == sum(layer.rows for layer in ir.compute_layers())
        assert counts["fixed_hi"] == sum(len(layer.high_rows) for layer in ir.compute_layers()) > 0
        assert counts["sp2"] == sum(len(layer.sp2_rows) for layer in ir.compute_layers())
    assert bench.engine_rows(ir, default_plan(ir))["fixed_lut"] == 0  # the smallest design: DSPs only


def test_fits_budget_is_the_planners_80_percent(bench):
    board = load_board("pynq-z2")
    at = {"lut": 0.8 * board.lut, "ff": 0.8 * board.ff, "dsp": 0.8 * board.dsp, "bram36": 0.8 * board.bram36}
    assert bench.fits_budget(at, board)
    assert not bench.fits_budget({**at, "dsp": at["dsp"] + 1}, board)


def test_markdown_marks_estimates(bench):
    common = {"model": "mlp", "average_bits": 4.0, "deployed": 96.1, "interval": 5.0, "inferences_per_s": 2e7,
              "engine_rows": {"sp2": 0, "fixed": 6, "fixed_lut": 100, "fixed_hi": 0}}
    counts = {"lut": 40000, "ff": 41000, "dsp": 47, "bram36": 70.0}
    rows = [{**common, "precision": "estimated", "synthesized": False, "estimate": counts, "estimate_fits": True},
            {**common, "precision": "measured", "synthesized": True, "estimate": counts, "estimate_fits": True,
             "synth": {**counts, "dsp": 200, "lut_levels": 7}, "fits": False,
             "rtlsim": {"samples": 10, "mismatches": 0, "cycles_per_inference": 5.0}}]
    md = bench.markdown({"board": "pynq-z2", "clock_mhz": 100.0, "headroom": 0.8, "seed": 0, "epochs": 40,
                         "seconds": 1.0, "results": rows})
    est, measured = (line for line in md.splitlines() if line.startswith("| mlp |"))
    assert "| 47 (est) |" in est and "| yes (est) |" in est and est.endswith("| - |")
    assert "(est)" not in measured and "| 200 | 70 | 7 | no |" in measured and "0 mism. / 10, 5 cyc" in measured
