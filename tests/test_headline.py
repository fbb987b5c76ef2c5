"""benchmarks/headline.py: --merge puts rows of synthesis runs made apart in place of the rows of
the same board, network and design, the others stay, and MSQ's ratios are recomputed; a design
Yosys measures over the budget is planned again with a smaller headroom."""
import copy
import importlib
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_merge_replaces_rows_of_the_same_design_and_recomputes_ratios(tmp_path):
    base = json.loads((ROOT / "benchmarks" / "results" / "headline.json").read_text())
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "headline.json").write_text(json.dumps(base))
    key = ("pynq-z2", "mlp-128x3", "sp2-only")
    row = copy.deepcopy(next(r for r in base["results"] if (r["board"], r["network"], r["design"]) == key))
    row.update(synthesized=True, lut=12345, inferences_per_s=row["inferences_per_s"] / 2)
    (tmp_path / "run.json").write_text(json.dumps({"results": [row]}))
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "headline.py"), "--merge", str(tmp_path / "run.json"),
                           "--out", str(tmp_path / "out")], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    after = json.loads((tmp_path / "out" / "headline.json").read_text())
    assert len(after["results"]) == len(base["results"]) and after["seconds"] == base["seconds"]
    got = {(r["board"], r["network"], r["design"]): r for r in after["results"]}
    assert got[key]["lut"] == 12345 and got[key]["synthesized"]
    msq = got[("pynq-z2", "mlp-128x3", "msq")]
    assert msq["vs_sp2-only"] == round(msq["inferences_per_s"] / row["inferences_per_s"], 2)
    assert "| pynq-z2 | mlp-128x3 | sp2-only | yes |" in (tmp_path / "out" / "headline.md").read_text()
    assert "12,345 |" in (tmp_path / "out" / "headline.md").read_text()


def test_a_design_measured_over_the_budget_is_planned_again_lower(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    headline = importlib.import_module("headline")
    tried = []

    def planned(network, design, ir, board, ratio, synth_root, lut_fixed, headroom):
        tried.append(headroom)
        return {"fits": 0.775 < headroom < 0.785, "synthesized": synth_root is not None, "plan_headroom": headroom,
                "interval": 100 - 100 * headroom, "lut": int(1000 * headroom), "ff": 1, "dsp": 2, "bram": 3}

    monkeypatch.setattr(headline, "_planned_row", planned)
    row = headline.design_row("mlp", "msq", None, None, 0.5, Path("synth"), True, 0.8)
    assert tried == [0.8, 0.79, 0.78] and row["fits"] and row["plan_headroom"] == 0.78
    assert [(o["plan_headroom"], o["lut"]) for o in row["over_budget"]] == [(0.8, 800), (0.79, 790)]
    tried.clear()
    row = headline.design_row("mlp", "msq", None, None, 0.5, None, True, 0.8)  # estimated: planned once
    assert tried == [0.8] and "over_budget" not in row
    tried.clear()
    row = headline.design_row("mlp", "msq", None, None, 0.5, Path("synth"), True, 0.4)  # ECP5's: no lower
    assert tried == [0.4] and not row["fits"]
