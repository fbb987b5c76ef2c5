"""The README's figures are the results files': its blocks equal their rendering from
benchmarks/results/*.json, a changed figure on either side is caught, and the prose around the
blocks quotes no figure of its own."""
from __future__ import annotations

import copy
import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("readme_tables", ROOT / "benchmarks" / "readme_tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


rt = _load_script()
README = (ROOT / "README.md").read_text()
RESULTS = rt.load_results()
BLOCKS = rt.render(RESULTS, rt.demo_out())


def test_committed_readme_is_current() -> None:
    assert rt.stale(README, BLOCKS) == []
    assert rt.main(["--check"]) == 0


def test_readme_marks_every_block() -> None:
    names = [name for name, _ in rt.BLOCK.findall(README)]
    assert sorted(names) == sorted(BLOCKS) == sorted([*rt.RENDERERS, "demo"])


@pytest.mark.parametrize("name", sorted(BLOCKS))
def test_altered_figure_is_detected(name: str) -> None:
    body = BLOCKS[name]
    digit = re.search(r"\d", body)
    altered = body[:digit.start()] + str((int(digit[0]) + 1) % 10) + body[digit.end():]
    text = rt.update(README, BLOCKS).replace(f"<!-- results:{name} -->\n{body}",
                                             f"<!-- results:{name} -->\n{altered}")
    assert text != README
    assert rt.stale(text, BLOCKS) == [name]


def test_demo_lut_edit_is_detected() -> None:
    lut = RESULTS["demo"]["synth"]["lut"]
    text = README.replace(f"LUT {lut},", f"LUT {lut + 1},")
    assert text != README
    assert rt.stale(text, BLOCKS) == ["demo"]


def test_changed_results_make_the_readme_stale() -> None:
    results = copy.deepcopy(RESULTS)
    results["flow"]["models"]["mlp"]["summary"]["synth"]["lut"] += 1
    results["demo"]["accuracy"]["deployed"] -= 1.0
    results["rtl_sim"]["rows"][0]["inferences_per_second"] *= 2
    blocks = rt.render(results, rt.demo_out())
    assert set(rt.stale(README, blocks)) == {"flow", "demo", "rtl_sim"}


def test_demo_block_prints_the_recorded_run() -> None:
    demo = RESULTS["demo"]
    block = BLOCKS["demo"]
    assert f"deployed {demo['accuracy']['deployed']:.2f}%" in block
    assert f"LUT {demo['synth']['lut']}, FF {demo['synth']['ff']}, DSP {demo['synth']['dsp']}" in block
    assert f"summary ({rt.demo_out()}/summary.json):" in block


def test_results_prose_quotes_no_figures() -> None:
    section = README[README.index("## Results"):]
    section = section[:section.index("\n## ", 1)]
    prose = rt.BLOCK.sub("", section.split("\n", 1)[1])
    prose = re.sub(r"`[^`]*`", "", prose)  # formulas and commands
    prose = re.sub(r"\]\([^)]*\)", "]", prose)  # link targets
    assert re.findall(r"(?<!\w)\d[\d.,]*", prose) == []  # not the 2 of SP2
