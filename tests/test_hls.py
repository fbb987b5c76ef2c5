"""HLS backend: generated projects compile warning-free and C-simulate bit-exact to the reference.

These tests need g++ and the hls4ml package (ap_types headers); without them they fail, by design.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from msq.backends import reference
from msq.backends.hls import csim, sources, vitis
from msq.backends.hls.project import KERNEL_LIBRARY, generate_project, read_project
from msq.backends.plan import LayerPlan
from msq.boards import load_board
from msq.cli import main
from msq.errors import MSQError
from msq.hls_run import build_project
from random_models import extreme_inputs, random_ir

DATA = Path(__file__).parent / "data"
# Seeds whose random IRs together cover weight widths 2..8, dense/conv/max-pool/avg-pool, padding
# and stride, SP2-only, fixed-only and mixed layers.
RANDOM_SEEDS = (0, 1, 3, 5, 8, 9, 10, 11, 12)


def _check_csim(project: Path, expect_samples: int) -> dict:
    result = csim.run_csim(project)
    report = json.loads(result.report.read_text())
    assert result.warnings == "", f"g++ -Wall warnings:\n{result.warnings}"
    assert result.samples == expect_samples
    assert result.mismatches == 0, report["output_mismatches"][:5]
    assert report["first_divergent_layer"] is None
    assert all(layer["traced"] and layer["mismatches"] == 0 for layer in report["layers"].values())
    return report


def _csim_output(project: Path) -> np.ndarray:
    return np.array([line.split() for line in (project / "csim" / "outputs.txt").read_text().splitlines()],
                    dtype=np.int64)


@pytest.mark.parametrize("demo", ["mlp_demo", "cnn_demo"])
def test_hls_demo_csim_equals_reference(demo, request, tmp_path):
    run, ir = request.getfixturevalue(demo)
    project = build_project(run, tmp_path / "hls", board="pynq-z2")
    meta = read_project(project)
    assert meta["samples"]["inputs"] == 360  # the whole digits test set
    assert meta["samples"]["extreme"] > 0
    _check_csim(project, meta["samples"]["total"])
    # the expected file is the reference itself, so C-sim ≡ reference element by element
    from msq.frontend.data import load_digits

    x = np.concatenate([ir.quantize_input(load_digits().x_test), extreme_inputs(ir)])
    np.testing.assert_array_equal(_csim_output(project), reference.run(ir, x).reshape(len(x), -1))


def _random_plan(ir, seed: int) -> dict[str, LayerPlan]:
    rng = np.random.default_rng(seed)

    def lanes(n: int) -> int:
        return int(rng.integers(1, n + 1)) if n else 0

    return {layer.name: LayerPlan(lanes(len(layer.sp2_rows)), lanes(len(layer.fixed_rows)))
            for layer in ir.compute_layers()}


@pytest.mark.parametrize("seed", RANDOM_SEEDS)
def test_hls_random_ir_csim_equals_reference(seed, tmp_path):
    ir = random_ir(seed)
    inputs = extreme_inputs(ir, n_random=64, seed=seed + 100)
    project = generate_project(ir, tmp_path / "hls", load_board("pynq-z2"), inputs, plan=_random_plan(ir, seed))
    _check_csim(project, len(inputs) + len(extreme_inputs(ir)))


def test_hls_random_seeds_cover_widths_and_schemes():
    layers = [layer for seed in RANDOM_SEEDS for layer in random_ir(seed).compute_layers()]
    assert {layer.wbits for layer in layers} == set(range(2, 9))
    assert sum(len(layer.sp2_rows) for layer in layers) > 0 and sum(len(layer.fixed_rows) for layer in layers) > 0
    assert any(len(layer.sp2_rows) and len(layer.fixed_rows) for layer in layers)


def _strip_comments(code: str) -> str:
    return re.sub(r"//[^\n]*|/\*.*?\*/", "", code, flags=re.S)


def test_hls_sp2_path_has_no_multiplier(tmp_path):
    kernels = KERNEL_LIBRARY.read_text()
    sp2 = kernels[kernels.index("// BEGIN SP2 ENGINE"):kernels.index("// END SP2 ENGINE")]
    assert "sp2_product" in sp2 and "<<" in sp2  # the section really is the SP2 datapath
    assert "*" not in _strip_comments(sp2), "a '*' in the SP2 engine section of hls/msq_kernels.h"
    assert "impl=dsp" not in sp2
    ir = random_ir(0)
    project = generate_project(ir, tmp_path / "hls", load_board("pynq-z2"), extreme_inputs(ir))
    generated = [project / sources.TOP_CPP, project / sources.TOP_H, project / sources.LAYERS_H,
                 *sorted((project / sources.WEIGHTS_DIR).glob("*.h"))]
    for path in generated:  # weights, configurations and top: no arithmetic on weights at all
        assert "*" not in _strip_comments(path.read_text()), path
    assert (project / sources.KERNELS_H).read_text() == kernels
    # the fixed engine is the one that multiplies, on a DSP
    assert "#pragma HLS BIND_OP variable=p op=mul impl=dsp" in kernels


def test_hls_project_layout_ports_and_tcl(tmp_path):
    ir = random_ir(12)  # conv, max-pool, dense; 3-bit activations
    project = generate_project(ir, tmp_path / "hls", load_board("zcu104"), extreme_inputs(ir), source="test IR")
    top = (project / sources.TOP_CPP).read_text()
    for pragma in ("INTERFACE mode=axis port=x_in", "INTERFACE mode=axis port=y_out",
                   "INTERFACE mode=ap_ctrl_none port=return", "DATAFLOW"):
        assert f"#pragma HLS {pragma}" in top
    assert "void msq_top(hls::stream<in_t>& x_in, hls::stream<out_t>& y_out)" in top
    header = (project / sources.TOP_H).read_text()
    kind = "int" if ir.input_fmt.signed else "uint"
    assert f"typedef ap_{kind}<{8 * -(-ir.input_fmt.bits // 8)}> in_t;" in header
    assert "Generated by msq 0.1.0" in header and "'random12'" in header and "test IR" in header
    options = (project / "options.tcl").read_text()
    assert "set msq_part xczu7ev-ffvc1156-2-e" in options and "set msq_steps {csim csynth cosim export}" in options
    build = (project / "build.tcl").read_text()
    assert "source [file join $msq_dir options.tcl]" in build and "argv" not in build
    for cmd in ("csim_design", "csynth_design", "cosim_design", "export_design -format ip_catalog"):
        assert cmd in build
    ooc = (project / "vivado_ooc.tcl").read_text()
    assert "synth_design -top msq_top -part $msq_part -mode out_of_context" in ooc
    assert "report_utilization" in ooc and "report_timing_summary" in ooc
    assert (project / "ir" / "manifest.json").is_file()
    for path in project.rglob("*"):  # Vitis reads plain ASCII sources and scripts
        if path.suffix in (".h", ".cpp", ".tcl", ".txt"):
            assert path.read_text().isascii(), path
    assert "ap_types" not in build  # the open headers never reach a synthesis include path
    assert not list(project.rglob("ap_int.h"))


def test_hls_corrupted_expected_reports_mismatch(tmp_path):
    ir = random_ir(1)
    project = generate_project(ir, tmp_path / "hls", load_board("pynq-z2"), extreme_inputs(ir))
    path = project / sources.TB_EXPECTED
    rows = [line.split() for line in path.read_text().splitlines()]
    rows[3][1] = str(int(rows[3][1]) + 1)
    path.write_text("".join(" ".join(r) + "\n" for r in rows))
    result = CliRunner().invoke(main, ["csim", str(project)])
    assert result.exit_code == 1, result.output
    assert "mismatches: 1" in result.output
    report = json.loads((project / "csim" / csim.MISMATCHES_JSON).read_text())
    assert report["mismatches"] == 1
    assert report["output_mismatches"] == [{"layer": ir.layers[-1].name, "sample": 3, "index": 1,
                                            "expected": int(rows[3][1]), "got": int(rows[3][1]) - 1}]
    assert report["first_divergent_layer"] is None  # every layer still equals the reference


def test_hls_broken_kernel_names_first_divergent_layer(tmp_path):
    ir = random_ir(1)  # three dense layers
    project = generate_project(ir, tmp_path / "hls", load_board("pynq-z2"), extreme_inputs(ir))
    weights = project / sources.WEIGHTS_DIR / f"L0_{ir.layers[0].name}.h"
    # a wrong first bias in both engines: 2^26 units of 2^-shift (~2^6 output steps at shift 20)
    text = re.sub(r"(::(?:sp2|fix)_bias\[\w+\] = \{\n    )(-?\d+)",
                  lambda m: m.group(1) + str(int(m.group(2)) + 2 ** 26 * (1 if int(m.group(2)) < 0 else -1)),
                  weights.read_text())
    weights.write_text(text)
    result = csim.run_csim(project)
    report = json.loads(result.report.read_text())
    assert report["first_divergent_layer"] == ir.layers[0].name
    assert report["layers"][ir.layers[0].name]["mismatches"] > 0
    entry = report["layer_mismatches"][0]
    assert set(entry) == {"layer", "sample", "index", "expected", "got"} and entry["layer"] == ir.layers[0].name


def test_hls_cli_missing_ir_says_run_export(tmp_path):
    result = CliRunner().invoke(main, ["hls", str(tmp_path / "run"), "--out", str(tmp_path / "hls")])
    assert result.exit_code == 2
    assert "ir does not exist: run 'msq export" in result.output
    result = CliRunner().invoke(main, ["csim", str(tmp_path)])
    assert result.exit_code == 2 and "not an MSQ HLS project" in result.output


def test_hls_csynth_report_parser():
    report = vitis.parse_csynth_xml(DATA / "csynth_sample.xml")
    assert report["top"] == "msq_top" and report["version"] == "2023.2"
    assert report["target_clock_ns"] == 10.0 and report["estimated_clock_ns"] == 6.912
    assert report["latency_cycles"] == {"best": 6211, "average": 6211, "worst": 6211}
    assert report["interval_cycles"] == {"min": 4161, "max": 4161}
    assert report["resources"] == {"BRAM_18K": 4, "DSP": 3, "FF": 2875, "LUT": 4410, "URAM": 0}
    assert report["available"]["DSP"] == 220


def test_hls_run_without_vitis_says_so(tmp_path, monkeypatch):
    ir = random_ir(6)
    project = generate_project(ir, tmp_path / "hls", load_board("pynq-z2"), extreme_inputs(ir))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert vitis.find_tool() is None
    with pytest.raises(MSQError, match="neither 'vitis-run' .* nor 'vitis_hls' is on PATH"):
        vitis.run_vitis(project, "csynth")
    vitis.set_steps(project, vitis.RUN_STEPS["cosim"])
    assert "set msq_steps {csynth cosim}" in (project / "options.tcl").read_text()
