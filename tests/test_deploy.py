"""Board deployment (msq deploy): the PYNQ driver's packing through the Verilator model with
cocotbext-axi's AXI-Stream source and sink (TLAST framing included), and the block-design Tcl run
under tclsh with recording stubs for the Vivado commands (syntax and the arguments we rely on).

Needs Verilator + cocotb + cocotbext-axi (msq[hw], msq[test]) and tclsh: without them these fail.
"""
from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from msq.assets import RTL_SIM_DIR
from msq.backends.deploy import blockdesign
from msq.backends.deploy import project as deploy
from msq.backends.hls.project import generate_project
from msq.backends.hls import tcl as hls_tcl
from msq.backends.rtl.generate import generate_rtl
from msq.backends.rtl.simulate import build, run_testbench
from msq.backends.rtl.verilog import tdata_width
from msq.boards import load_board
from msq.cli import main
from msq.errors import MSQError
from msq.ir.plan import Plan, check_plan, default_plan, divisors
from random_models import extreme_inputs, random_ir

PYNQ_Z2 = load_board("pynq-z2")
TCLSH = shutil.which("tclsh")  # Debian package tcl (scripts/system-packages.sh)
# Every Vivado command the script may call; anything else is an "invalid command name" under tclsh.
VIVADO_COMMANDS = (
    "create_project", "add_files", "set_property", "get_property", "current_fileset", "current_project",
    "update_compile_order", "ipx::package_project", "ipx::current_core", "ipx::get_bus_interfaces",
    "ipx::infer_bus_interface", "ipx::associate_bus_interfaces", "ipx::create_xgui_files",
    "ipx::update_checksums", "ipx::check_integrity", "ipx::save_core", "close_project", "get_board_parts",
    "update_ip_catalog", "create_bd_design", "create_bd_cell", "apply_bd_automation", "get_bd_cells",
    "get_bd_intf_pins", "get_bd_pins", "connect_bd_intf_net", "connect_bd_net", "assign_bd_address",
    "validate_bd_design", "save_bd_design", "get_files", "generate_target", "make_wrapper", "launch_runs",
    "wait_on_run", "get_runs")
# The stubs: each records its call (name and arguments) and returns what the script then uses.
HARNESS = r"""
namespace eval ipx {}
set ::calls {}
foreach cmd $::commands {
    proc $cmd args [format {lappend ::calls [list %s {*}$args]; return [stub_result %s $args]} $cmd $cmd]
}
proc stub_result {cmd argv} {
    switch -- $cmd {
        get_board_parts { return [lindex $argv end] }
        make_wrapper { return /stub/msq_wrapper.v }
        get_property {
            if {[lindex $argv 0] eq "PROGRESS"} { return 100% }
            if {[lindex $argv 0] eq "DIRECTORY"} { return $::impl_dir }
        }
        get_files { if {[lsearch $argv -all] >= 0} { return [list /stub/other.v $::hwh] } }
    }
    return stub:$cmd
}
source $::script
set f [open $::calls_file w]
foreach call $::calls { puts $f [join $call \x1f] }
close $f
"""


def _run_tcl(dep: Path, tmp: Path) -> list[list[str]]:
    """Run the deployment's Tcl under tclsh with the stubs; returns the recorded calls."""
    impl = tmp / "impl_1"
    impl.mkdir()
    (impl / "msq_wrapper.bit").write_bytes(b"bitstream")
    (tmp / "msq.hwh").write_text("<hwh/>")
    harness = tmp / "harness.tcl"
    harness.write_text(HARNESS)
    setup = (f"set ::commands {{{' '.join(VIVADO_COMMANDS)}}}; set ::script {{{dep / deploy.TCL}}}; "
             f"set ::impl_dir {{{impl}}}; set ::hwh {{{tmp / 'msq.hwh'}}}; set ::calls_file {{{tmp / 'calls.txt'}}}; "
             f"source {{{harness}}}")
    assert TCLSH, "tclsh is not on PATH: install the tcl package (scripts/system-packages.sh)"
    proc = subprocess.run([TCLSH], input=setup, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and not proc.stderr, proc.stderr or proc.stdout
    return [line.split("\x1f") for line in (tmp / "calls.txt").read_text().splitlines()]


def _find(calls: list[list[str]], *prefix: str) -> list[list[str]]:
    return [c for c in calls if c[:len(prefix)] == list(prefix)]


def _load_driver(path: Path):
    spec = importlib.util.spec_from_file_location("msq_driver_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _wide_plan(ir) -> Plan:
    """The default plan with the widest DMA-legal beats that still leave several beats a frame."""
    plan = default_plan(ir)

    def widest(n: int, fmt) -> int:
        return max(w for w in divisors(n) if w < n and tdata_width(w, fmt) in deploy.DMA_STREAM_BITS)

    return check_plan(ir, Plan(plan.layers, widest(int(np.prod(ir.input_shape)), ir.input_fmt),
                               widest(int(np.prod(ir.output_shape)), ir.output_fmt)))


def _axis_sim(dep: Path, vectors: Path, work: Path, seed: int) -> dict:
    """The deployment's Verilog under Verilator, driven by rtl_sim/tb/test_msq_axis.py."""
    build_dir = build(work, "verilator", sorted((dep / "hdl").glob("*.v")))
    out = work / "axis"
    out.mkdir(exist_ok=True)
    env = {"MSQ_DRIVER": str(dep / deploy.DRIVER), "MSQ_VECTORS": str(vectors),
           "MSQ_RESULT": str(out / "result.json"), "MSQ_SEED": str(seed)}
    (out / "result.json").unlink(missing_ok=True)
    run_testbench("verilator", build_dir, RTL_SIM_DIR / "tb", "test_msq_axis", env, out)
    assert (out / "result.json").is_file(), (out / "sim.log").read_text()[-3000:]
    return json.loads((out / "result.json").read_text())


@pytest.mark.parametrize("wide", [False, True], ids=["one-element-beats", "wide-beats"])
def test_deploy_driver_packing_exact_through_verilator_with_tlast(mlp_demo, tmp_path, wide):
    """The digits MLP: the driver's bytes in, TLAST-split frames out, unpacked and equal to the reference."""
    run, ir = mlp_demo
    plan = _wide_plan(ir) if wide else default_plan(ir)
    if wide:
        assert plan.in_width > 1 and plan.out_width > 1
    x = np.random.default_rng(3).integers(ir.input_fmt.lo, ir.input_fmt.hi + 1, (40, *ir.input_shape))
    rtl = generate_rtl(ir, tmp_path / "rtl", x, plan=plan, n_extreme_random=4)
    dep = deploy.write_deploy(rtl, PYNQ_Z2, tmp_path / "deploy")
    result = _axis_sim(dep, rtl / "vectors", tmp_path, seed=7)
    samples = len(np.load(rtl / "vectors" / "inputs.npy"))
    assert result["samples"] == samples and result["frames"] == samples
    assert result["bad_frame_lengths"] == [] and not result["extra_output"]
    assert result["mismatches"] == [], result["mismatches"][:5]


def test_deploy_broken_tlast_is_caught(tmp_path):
    """TLAST on the first output beat instead of the last: the sink's frames have the wrong length."""
    ir = random_ir(1)  # three dense layers, 5 one-byte output beats a frame
    rtl = generate_rtl(ir, tmp_path / "rtl", extreme_inputs(ir), n_extreme_random=2)
    dep = deploy.write_deploy(rtl, PYNQ_Z2, tmp_path / "deploy")
    top = dep / "hdl" / "msq_top.v"
    text = top.read_text()
    assert text.count("assign y_out_TLAST  = (out_beat == 3'd4);") == 1
    top.write_text(text.replace("assign y_out_TLAST  = (out_beat == 3'd4);", "assign y_out_TLAST  = (out_beat == 3'd0);"))
    result = _axis_sim(dep, rtl / "vectors", tmp_path, seed=1)
    assert result["bad_frame_lengths"] and result["bad_frame_lengths"][0] == [0, 1]


def test_deploy_driver_packs_like_the_stream_testbench():
    """The driver's bytes are the beats of rtl_sim/tb/test_msq_top.py's pack, little-endian;
    unpack inverts them, signed outputs included."""
    spec = importlib.util.spec_from_file_location("tb_top", RTL_SIM_DIR / "tb" / "test_msq_top.py")
    tb = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tb)
    driver = _load_driver(deploy.DRIVER_TEMPLATE)
    rng = np.random.default_rng(0)
    for width, bits, signed, beats in ((1, 7, False, 3), (3, 5, True, 4), (4, 8, True, 2), (5, 3, False, 2)):
        tdata = 8 * -(-width * bits // 8)
        driver.FORMAT = {"input_shape": [beats * width], "output_shape": [beats * width], "in_width": width,
                         "in_bits": bits, "in_signed": signed, "in_tdata_bits": tdata, "in_beats": beats,
                         "out_width": width, "out_bits": bits, "out_signed": signed, "out_tdata_bits": tdata,
                         "out_beats": beats}
        lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
        x = rng.integers(lo, hi + 1, (6, beats * width))
        words = driver.pack_inputs(x)
        assert words.dtype == np.uint8 and words.shape == (6, beats, tdata // 8)
        for k in range(len(x)):
            expected = b"".join(b.to_bytes(tdata // 8, "little") for b in tb.pack(x[k], width, bits))
            assert words[k].tobytes() == expected
        assert np.array_equal(driver.unpack_outputs(words), x)
        with pytest.raises(ValueError, match=r"inputs must be integers in"):
            driver.pack_inputs(np.full((1, beats * width), hi + 1))


def test_deploy_tcl_parses_and_calls_vivado_as_expected_rtl(mlp_demo, tmp_path):
    run, ir = mlp_demo
    plan = _wide_plan(ir)
    rtl = generate_rtl(ir, tmp_path / "rtl", extreme_inputs(ir)[:2], plan=plan, n_extreme_random=1)
    dep = deploy.write_deploy(rtl, PYNQ_Z2, tmp_path / "deploy")
    calls = _run_tcl(dep, tmp_path)
    fmt = deploy.read_deploy(dep)["stream"]
    assert fmt["in_tdata_bits"] == tdata_width(plan.in_width, ir.input_fmt)
    text = (dep / deploy.TCL).read_text()
    assert text.startswith("# Generated by msq") and "for board pynq-z2" in text and text.isascii()
    assert _find(calls, "create_project", "msq_core_ip")[0][-3:] == ["-part", "xc7z020clg400-1", "-force"]
    assert _find(calls, "create_project", "msq_deploy")[0][-3:] == ["-part", "xc7z020clg400-1", "-force"]
    assert ["set_property", "board_part", "tul.com.tw:pynq-z2:part0:1.0", "stub:current_project"] in calls
    added = _find(calls, "add_files", "-norecurse")[0][2].split()
    assert sorted(Path(p).name for p in added) == sorted(p.name for p in (dep / "hdl").glob("*.v"))
    assert _find(calls, "ipx::package_project")[0][1:] == ["-root_dir", str(dep / "ip_repo"), "-vendor", "msq",
                                                           "-library", "msq", "-taxonomy", "/UserIP", "-import_files",
                                                           "-force"]
    for busif in ("x_in", "y_out"):
        assert ["ipx::associate_bus_interfaces", "-busif", busif, "-clock", "ap_clk", "stub:ipx::current_core"] in calls
    assert ["create_bd_cell", "-type", "ip", "-vlnv", blockdesign.RTL_CORE_VLNV, "msq_core_0"] in calls
    assert ["create_bd_cell", "-type", "ip", "-vlnv", blockdesign.PS7, "ps7"] in calls
    ps7 = _find(calls, "apply_bd_automation", "-rule", "xilinx.com:bd_rule:processing_system7")[0]
    assert 'apply_board_preset "1"' in ps7[4]
    dma = [c for c in _find(calls, "set_property", "-dict") if c[-1] == "stub:get_bd_cells" and
           "CONFIG.c_m_axis_mm2s_tdata_width" in c[2]][0][2].split()
    settings = dict(zip(dma[::2], dma[1::2]))
    assert settings["CONFIG.c_m_axis_mm2s_tdata_width"] == str(fmt["in_tdata_bits"])
    assert settings["CONFIG.c_s_axis_s2mm_tdata_width"] == str(fmt["out_tdata_bits"])
    assert settings["CONFIG.c_m_axi_mm2s_data_width"] == str(max(32, fmt["in_tdata_bits"]))
    assert settings["CONFIG.c_include_sg"] == "0" and settings["CONFIG.c_sg_length_width"] == "26"
    assert ["connect_bd_intf_net", "stub:get_bd_intf_pins", "stub:get_bd_intf_pins"] in calls
    pins = [c[1:] for c in _find(calls, "get_bd_intf_pins")]
    assert ["axi_dma_0/M_AXIS_MM2S"] in pins and ["msq_core_0/x_in"] in pins and ["msq_core_0/y_out"] in pins
    for pin in ("ps7/FCLK_CLK0", "msq_core_0/ap_clk", "msq_core_0/ap_rst_n", "axi_dma_0/s2mm_introut", "ps7/IRQ_F2P"):
        assert ["get_bd_pins", pin] in calls, pin
    names = [c[0] for c in calls]
    order = ["validate_bd_design", "make_wrapper", "launch_runs", "wait_on_run"]
    assert [names.index(n) for n in order] == sorted(names.index(n) for n in order)
    assert _find(calls, "launch_runs")[0][1:4] == ["impl_1", "-to_step", "write_bitstream"]
    assert (dep / "msq.bit").read_bytes() == b"bitstream" and (dep / "msq.hwh").read_text() == "<hwh/>"


def test_deploy_tcl_hls_route_uses_the_exported_ip(tmp_path):
    ir = random_ir(1)
    hls = generate_project(ir, tmp_path / "hls", PYNQ_Z2, extreme_inputs(ir))
    dep = deploy.write_deploy(hls, PYNQ_Z2, tmp_path / "deploy", source="hls")
    assert not (dep / "hdl").exists()
    ip = hls.resolve() / hls_tcl.HLS_PROJECT / hls_tcl.SOLUTION / "impl" / "ip"
    first = tmp_path / "first"
    first.mkdir()
    with pytest.raises(AssertionError, match="no exported IP in"):  # Vitis has not exported it yet
        _run_tcl(dep, first)
    ip.mkdir(parents=True)
    calls = _run_tcl(dep, tmp_path)
    assert not [c for c in calls if c[0].startswith("ipx::")]
    assert ["set_property", "ip_repo_paths", str(ip), "stub:current_project"] in calls
    assert ["create_bd_cell", "-type", "ip", "-vlnv", blockdesign.HLS_CORE_VLNV, "msq_core_0"] in calls


def test_deploy_refuses_what_a_dma_or_board_cannot_take(tmp_path):
    ir = random_ir(1)  # 3 x 7-bit inputs, 5 x 8-bit outputs
    rtl = generate_rtl(ir, tmp_path / "rtl", extreme_inputs(ir), plan=check_plan(ir, Plan(default_plan(ir).layers, 3, 1)),
                       n_extreme_random=1)
    with pytest.raises(MSQError, match=r"x_in is 24 bits wide \(3 x 7-bit elements\).*io.in_width"):
        deploy.write_deploy(rtl, PYNQ_Z2, tmp_path / "d1")
    with pytest.raises(MSQError, match="Zynq-7000"):
        deploy.write_deploy(rtl, load_board("zcu104"), tmp_path / "d2")
    with pytest.raises(MSQError, match="not an MSQ RTL project"):
        deploy.write_deploy(tmp_path, PYNQ_Z2, tmp_path / "d3")
    assert not (tmp_path / "d1").exists() and not (tmp_path / "d2").exists()


def test_deploy_cli(mlp_demo, tmp_path):
    run = Path(shutil.copytree(mlp_demo[0], tmp_path / "run"))  # the shared demo run stays as it was
    res = CliRunner().invoke(main, ["deploy", str(run), "--out", str(tmp_path / "d")])
    assert res.exit_code == 2 and res.output.strip().endswith(f"run 'msq rtl {run}' first"), res.output
    res = CliRunner().invoke(main, ["rtl", str(run), "--out", str(run / "rtl")])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(main, ["deploy", str(run), "--board", "pynq-z2", "--out", str(tmp_path / "d")])
    assert res.exit_code == 0, res.output
    assert "DMA streams: x_in 8 bits" in res.output and (tmp_path / "d" / ".msq-output").is_file()
    driver = _load_driver(tmp_path / "d" / deploy.DRIVER)
    assert driver.FORMAT["model"] == deploy.read_deploy(tmp_path / "d")["model"]
    res = CliRunner().invoke(main, ["deploy", str(run), "--board", "zcu104", "--out", str(tmp_path / "e")])
    assert res.exit_code == 2 and res.output.count("\n") == 1 and "Zynq-7000" in res.output


def test_deploy_api(tmp_path):
    import msq
    from msq.api import IR

    ir = IR(random_ir(1))
    d = msq.deploy(msq.rtl(ir), tmp_path / "d")  # written to a temporary directory first
    assert d.tcl.is_file() and d.driver.is_file() and (d.path / "hdl" / "msq_top.v").is_file()
    assert d.stream["out_beats"] == 5 and d.stream["in_tdata_bits"] == 8
    h = msq.deploy(msq.hls(ir).write(tmp_path / "hls"), tmp_path / "h")
    assert blockdesign.HLS_CORE_VLNV in h.tcl.read_text() and not (h.path / "hdl").exists()


def test_deploy_hostile_project_path_stays_in_a_comment(tmp_path):
    """A project path with a newline and Tcl in it: escaped in the header comments, refused where
    the HLS route would write it into Tcl."""
    ir = random_ir(1)
    hostile = tmp_path / "p\nexec touch F\n[exit]"
    rtl = generate_rtl(ir, hostile / "rtl", extreme_inputs(ir), n_extreme_random=1)
    dep = deploy.write_deploy(rtl, PYNQ_Z2, tmp_path / "d")
    for name in (deploy.TCL, deploy.DRIVER):
        lines = (dep / name).read_text().splitlines()
        assert not any(line.startswith(("exec", "[exit]")) for line in lines), name
    hls = generate_project(ir, hostile / "hls", PYNQ_Z2, extreme_inputs(ir))
    with pytest.raises(MSQError, match="must be plain"):
        deploy.write_deploy(hls, PYNQ_Z2, tmp_path / "h", source="hls")
