"""The end-to-end flow (reduced: a short-trained MLP), resume, failure handling and the report."""
import json
import re

import pytest
from click.testing import CliRunner

from msq.cli import main

FLOW = ["flow", "--model", "mlp", "--epochs", "4", "--sp2-ratio", "0.6", "--seed", "1"]
# A small board keeps the planned design (and so its simulation build and synthesis) quick.
SMALL_BOARD = ("name: small\npart: xc7z007sclg400-1\nfamily: xc7\nlut: 12000\nff: 30000\ndsp: 24\n"
               "bram36: 20\nclock_mhz: 100\n")


@pytest.fixture(scope="module")
def flow_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("flow")
    (root / "small.yaml").write_text(SMALL_BOARD)
    out = root / "mlp"
    res = CliRunner().invoke(main, [*FLOW, "--board", str(root / "small.yaml"), "--out", str(out)])
    assert res.exit_code == 0, res.output
    return out, res.output


def test_flow_runs_every_stage_and_writes_the_summary(flow_run):
    out, output = flow_run
    s = json.loads((out / "summary.json").read_text())
    assert s["board"] == "small"
    assert s["accuracy"]["float"] > 50 and s["accuracy"]["deployed"] > 50
    assert abs(s["accuracy"]["deployed"] - s["accuracy"]["fake_quant"]) <= 1.0
    assert 0.5 < s["sp2_fraction"] < 0.7
    assert s["csim"]["mismatches"] == 0 and s["csim"]["samples"] == 373
    assert s["rtlsim"]["mismatches"] == 0 and s["rtlsim"]["samples"] == 373
    design = json.loads((out / "rtl" / "design.json").read_text())
    assert s["rtlsim"]["cycles_per_inference"] == design["cycles"]["interval"]
    assert s["synth"]["tool"] in ("yosys", "vivado")
    assert s["synth"]["lut"] > 0 and s["synth"]["ff"] > 0
    assert s["synth"]["dsp"] == s["estimate"]["dsp"]  # packed fixed MACs and requantizers, counted exactly
    assert s["estimate"]["dsp"] == s["synth"]["dsp"]
    assert s["throughput_inferences_per_s"] == pytest.approx(100e6 / s["rtlsim"]["cycles_per_inference"])
    assert [r["mismatches"] for r in s["ladder"]] == [0, 0, 0]
    assert len(re.findall(r"mismatches: 0", output)) == 3


def test_report_is_self_contained(flow_run):
    out, _ = flow_run
    page = (out / "report" / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 6  # training, weights, assignment, per layer, cycles, board
    assert "src=\"http" not in page and "<link" not in page
    for needle in ("Accuracy", "Verification ladder", "Resources", "Throughput", "mismatches"):
        assert needle in page
    md = (out / "report" / "report.md").read_text()
    for png in re.findall(r"\]\((\w+\.png)\)", md):
        assert (out / "report" / png).stat().st_size > 1000


def test_rerun_resumes_from_the_first_changed_stage(flow_run):
    out, _ = flow_run
    res = CliRunner().invoke(main, [*FLOW, "--board", str(out.parent / "small.yaml"), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert res.output.count("up to date") == 10
    (out / "hls" / "tb_data" / "expected.txt").write_text(  # a changed input of the C-sim stage only
        (out / "hls" / "tb_data" / "expected.txt").read_text().replace("\n", " \n", 1))
    res = CliRunner().invoke(main, [*FLOW, "--board", str(out.parent / "small.yaml"), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "csim: done" in res.output and res.output.count("up to date") == 9


def test_failed_stage_stops_with_a_clear_message_and_keeps_earlier_outputs(flow_run):
    out, _ = flow_run
    model_bytes = (out / "model.pt").read_bytes()
    expected = out / "hls" / "tb_data" / "expected.txt"
    lines = expected.read_text().splitlines()
    first = lines[0].split()
    first[-1] = str(int(first[-1]) + 1)
    expected.write_text("\n".join([" ".join(first)] + lines[1:]) + "\n")
    res = CliRunner().invoke(main, [*FLOW, "--board", str(out.parent / "small.yaml"), "--out", str(out)])
    assert res.exit_code == 2
    assert "flow stopped at stage 'csim'" in res.output and "1 mismatches" in res.output
    assert (out / "model.pt").read_bytes() == model_bytes
    assert json.loads((out / "summary.json").read_text())["accuracy"]["deployed"] > 50
