"""Build scripts of a generated project: options (sourced, never tclargs), the HLS build, the
Vitis unified config, the Vivado OOC run.

``build.tcl`` runs under ``vitis-run --mode hls --tcl build.tcl`` (Vitis 2025.1+) and under
``vitis_hls -f build.tcl`` (older releases); both read ``options.tcl``, which a user may edit.
``hls_config.cfg`` states the same project for the unified flow's own commands
(``v++ -c --mode hls --config hls_config.cfg``, ``vitis-run --mode hls --csim --config ...``) and
the Vitis IDE. ``vivado_ooc.tcl`` synthesizes the exported RTL out of context for the board's part
and writes utilization and timing reports.
"""
from __future__ import annotations

from msq.backends.hls.sources import TB_EXPECTED, TESTBENCH, TOP, TOP_CPP, banner
from msq.boards import Board

HLS_PROJECT = "msq_prj"
SOLUTION = "sol1"
STEPS = ("csim", "csynth", "cosim", "export")
CFLAGS = "-std=c++14"


def options(board: Board, steps: tuple[str, ...], provenance: dict) -> str:
    """``options.tcl``: part, clock and the build steps to run."""
    unknown = set(steps) - set(STEPS)
    if unknown:
        raise ValueError(f"unknown HLS steps {sorted(unknown)}")
    return (banner("Build options, sourced by build.tcl and vivado_ooc.tcl.", provenance, "#", editable=True)
            + f"set msq_board {board.name}\n"
            f"set msq_part {board.part}\n"
            f"set msq_clock_ns {1000.0 / board.clock_mhz:.3f}  ;# {board.clock_mhz:g} MHz\n"
            f"set msq_project {HLS_PROJECT}\n"
            f"set msq_solution {SOLUTION}\n"
            f"# Steps of build.tcl, any of: {' '.join(STEPS)}\n"
            f"set msq_steps {{{' '.join(steps)}}}\n"
            "# vivado_ooc.tcl: 1 to also place and route (timing after routing), 0 for synthesis only\n"
            "set msq_ooc_impl 0\n")


def build(provenance: dict) -> str:
    """``build.tcl``: C-sim, C-synthesis, C/RTL co-simulation, IP export (per ``msq_steps``)."""
    return banner("Vitis HLS build: vitis-run --mode hls --tcl build.tcl, or vitis_hls -f build.tcl.",
                  provenance, "#") + f"""
set msq_dir [file dirname [file normalize [info script]]]
source [file join $msq_dir options.tcl]
cd $msq_dir

open_project -reset $msq_project
set_top {TOP}
add_files {TOP_CPP} -cflags "{CFLAGS}"
add_files -tb {TESTBENCH} -cflags "{CFLAGS}"
add_files -tb tb_data
open_solution -reset $msq_solution -flow_target vivado
set_part $msq_part
create_clock -period $msq_clock_ns -name default

if {{[lsearch -exact $msq_steps csim] >= 0}} {{ csim_design }}
if {{[lsearch -exact $msq_steps csynth] >= 0}} {{ csynth_design }}
if {{[lsearch -exact $msq_steps cosim] >= 0}} {{ cosim_design -trace_level none }}
if {{[lsearch -exact $msq_steps export] >= 0}} {{ export_design -format ip_catalog -rtl verilog }}
exit
"""


def vitis_config(board: Board, provenance: dict) -> str:
    """``hls_config.cfg``: the project of ``build.tcl`` in the unified flow's config syntax (UG1399:
    ``part`` outside the ``[hls]`` section, the sources, top, clock, flow target and IP export inside)."""
    tb_data = TB_EXPECTED.split("/")[0]  # the directory: the testbench opens tb_data/... relative paths
    return (banner("Vitis unified flow (run in this directory): v++ -c --mode hls --config hls_config.cfg "
                   f"--work_dir {HLS_PROJECT}", provenance, "#", editable=True)
            + f"part={board.part}\n\n[hls]\n"
            f"clock={1000.0 / board.clock_mhz:.3f}ns\n"
            "flow_target=vivado\n"
            f"syn.file={TOP_CPP}\n"
            f"syn.top={TOP}\n"
            f"syn.cflags={CFLAGS}\n"
            f"tb.file={TESTBENCH}\n"
            f"tb.file={tb_data}\n"
            f"tb.cflags={CFLAGS}\n"
            "csim.clean=true\n"
            "package.output.format=ip_catalog\n")


def vivado_ooc(provenance: dict) -> str:
    """``vivado_ooc.tcl``: out-of-context synthesis of the exported RTL (vivado -mode batch -source)."""
    return banner("Vivado out-of-context synthesis of the exported IP: vivado -mode batch -source vivado_ooc.tcl",
                  provenance, "#") + f"""
set msq_dir [file dirname [file normalize [info script]]]
source [file join $msq_dir options.tcl]
set rtl_dir [file join $msq_dir $msq_project $msq_solution impl verilog]
set rtl [glob -nocomplain -directory $rtl_dir *.v]
if {{[llength $rtl] == 0}} {{
    error "no exported RTL in $rtl_dir: run build.tcl with the export step first"
}}
set out_dir [file join $msq_dir vivado_ooc]
file mkdir $out_dir
cd $out_dir
# ROM initialisation files ($readmemh) are read relative to the working directory.
foreach dat [glob -nocomplain -directory $rtl_dir *.dat] {{ file copy -force $dat $out_dir }}
set xdc [file join $out_dir ooc.xdc]
set f [open $xdc w]
puts $f "create_clock -name ap_clk -period $msq_clock_ns \\[get_ports ap_clk\\]"
close $f

read_verilog $rtl
read_xdc -mode out_of_context $xdc
synth_design -top {TOP} -part $msq_part -mode out_of_context
report_utilization -file [file join $out_dir utilization_synth.rpt]
report_timing_summary -file [file join $out_dir timing_synth.rpt]
if {{$msq_ooc_impl}} {{
    opt_design
    place_design
    route_design
    report_utilization -file [file join $out_dir utilization_routed.rpt]
    report_timing_summary -file [file join $out_dir timing_routed.rpt]
}}
"""
