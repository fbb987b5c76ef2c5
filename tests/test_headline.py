"""benchmarks/headline.py --merge: rows of synthesis runs made apart replace the rows of the same
board, network and design, the others stay, and MSQ's ratios are recomputed."""
import copy
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
