"""``build_bitstream.tcl``: the Vivado block design of a Zynq-7000 board around an MSQ core.

Run as ``vivado -mode batch -source build_bitstream.tcl`` in the deploy directory. It packages the
core (``rtl``: the generated Verilog in ``hdl/`` through the IP packager; ``hls``: the IP that
Vitis HLS exported), builds the design PS7 (board preset) + AXI DMA (simple mode, MM2S -> the
core's ``x_in``, ``y_out`` -> S2MM, interrupts to the PS) + the core on FCLK_CLK0, validates it,
writes the wrapper, runs implementation to the bitstream and copies ``msq.bit`` and ``msq.hwh``
next to the PYNQ driver. The same recipe as hls4ml's VivadoAccelerator pynq-z2 design and FINN's
Zynq build.
"""
from __future__ import annotations

from msq.boards import Board

PS7 = "xilinx.com:ip:processing_system7:5.5"
AXI_DMA = "xilinx.com:ip:axi_dma:7.1"
PROC_RESET = "xilinx.com:ip:proc_sys_reset:5.0"
CONCAT = "xilinx.com:ip:xlconcat:2.1"
HLS_CORE_VLNV = "xilinx.com:hls:msq_top:1.0"  # what export_design names the msq_top IP by default
RTL_CORE_VLNV = "msq:msq:msq_top:1.0"  # what this script's IP packaging names the Verilog core
DMA_LENGTH_BITS = 26  # buffer length register: transfers up to 64 MiB (the default 14 bits: 16 KiB)
DMA_BURST = 16  # beats per AXI burst on the memory side
MIN_MM_BITS = 32  # the DMA's memory-mapped side is at least 32 bits wide
DESIGN = "msq"  # block design name: the wrapper is msq_wrapper, the handoff msq.hwh
JOBS = 2


def _core_rtl() -> str:
    """Package the generated Verilog (hdl/) as an IP with its two AXI-Stream interfaces."""
    return f"""# ---- the core: the generated Verilog packaged as an IP (IP packager infers x_in and y_out) ----
set msq_ip_dir [file join $msq_dir ip_repo]
create_project msq_core_ip [file join $msq_dir core_ip] -part $msq_part -force
add_files -norecurse [glob -directory [file join $msq_dir hdl] *.v]
set_property top msq_top [current_fileset]
update_compile_order -fileset sources_1
ipx::package_project -root_dir $msq_ip_dir -vendor msq -library msq -taxonomy /UserIP -import_files -force
set msq_core [ipx::current_core]
set_property name msq_top $msq_core
set_property version 1.0 $msq_core
set_property display_name "MSQ core $msq_model" $msq_core
if {{[llength [ipx::get_bus_interfaces ap_clk -of_objects $msq_core]] == 0}} {{
    ipx::infer_bus_interface ap_clk xilinx.com:signal:clock_rtl:1.0 $msq_core
}}
if {{[llength [ipx::get_bus_interfaces ap_rst_n -of_objects $msq_core]] == 0}} {{
    ipx::infer_bus_interface ap_rst_n xilinx.com:signal:reset_rtl:1.0 $msq_core
}}
ipx::associate_bus_interfaces -busif x_in -clock ap_clk $msq_core
ipx::associate_bus_interfaces -busif y_out -clock ap_clk $msq_core
ipx::associate_bus_interfaces -clock ap_clk -reset ap_rst_n $msq_core
ipx::create_xgui_files $msq_core
ipx::update_checksums $msq_core
ipx::check_integrity $msq_core
ipx::save_core $msq_core
close_project
set msq_core_vlnv {RTL_CORE_VLNV}
"""


def _core_hls(ip_dir: str) -> str:
    """Use the IP Vitis HLS exported (build.tcl's export step) in the HLS project."""
    return f"""# ---- the core: the IP exported by Vitis HLS (run the HLS project's build.tcl with export first) ----
set msq_ip_dir {{{ip_dir}}}
if {{![file isdirectory $msq_ip_dir]}} {{
    error "no exported IP in $msq_ip_dir: run the HLS project's build.tcl with the export step first"
}}
set msq_core_vlnv {HLS_CORE_VLNV}
"""


def build_tcl(board: Board, fmt: dict, source: str, header: list[str], hls_ip_dir: str = "") -> str:
    """The script; ``fmt`` is the stream format (tdata widths), ``source`` 'rtl' or 'hls'
    (``hls_ip_dir``: the exported IP's absolute path), ``header`` the provenance lines."""
    in_bits, out_bits = fmt["in_tdata_bits"], fmt["out_tdata_bits"]
    core = _core_rtl() if source == "rtl" else _core_hls(hls_ip_dir)
    lines = "".join(f"# {line}\n" for line in header)
    return lines + f"""# Run: vivado -mode batch -source build_bitstream.tcl   (in this directory)

set msq_dir [file dirname [file normalize [info script]]]
set msq_build [file join $msq_dir vivado]
set msq_model {{{fmt['model']}}}
set msq_part {board.part}
set msq_board_part {{{board.board_part}}}
set msq_clock_mhz {board.clock_mhz:g}
set msq_in_tdata_bits {in_bits}   ;# x_in: {fmt['in_width']} x {fmt['in_bits']}-bit elements a beat, {fmt['in_beats']} beats a frame
set msq_out_tdata_bits {out_bits}  ;# y_out: {fmt['out_width']} x {fmt['out_bits']}-bit elements a beat, {fmt['out_beats']} beats a frame
set msq_mm2s_bits {max(MIN_MM_BITS, in_bits)}
set msq_s2mm_bits {max(MIN_MM_BITS, out_bits)}

{core}
# ---- the project and its block design ----
create_project msq_deploy $msq_build -part $msq_part -force
if {{[llength [get_board_parts -quiet $msq_board_part]] == 0}} {{
    error "Vivado has no board files for $msq_board_part: install them (e.g. from the board vendor) first"
}}
set_property board_part $msq_board_part [current_project]
set_property ip_repo_paths [list $msq_ip_dir] [current_project]
update_ip_catalog
create_bd_design {DESIGN}

create_bd_cell -type ip -vlnv {PS7} ps7
apply_bd_automation -rule xilinx.com:bd_rule:processing_system7 -config {{make_external "FIXED_IO, DDR" apply_board_preset "1" Master "Disable" Slave "Disable"}} [get_bd_cells ps7]
set_property -dict [list CONFIG.PCW_USE_S_AXI_HP0 {{1}} CONFIG.PCW_USE_FABRIC_INTERRUPT {{1}} CONFIG.PCW_IRQ_F2P_INTR {{1}} CONFIG.PCW_FPGA0_PERIPHERAL_FREQMHZ $msq_clock_mhz] [get_bd_cells ps7]

create_bd_cell -type ip -vlnv {AXI_DMA} axi_dma_0
set_property -dict [list CONFIG.c_include_sg {{0}} CONFIG.c_sg_length_width {{{DMA_LENGTH_BITS}}} CONFIG.c_sg_include_stscntrl_strm {{0}} \\
    CONFIG.c_m_axi_mm2s_data_width $msq_mm2s_bits CONFIG.c_m_axis_mm2s_tdata_width $msq_in_tdata_bits CONFIG.c_mm2s_burst_size {{{DMA_BURST}}} \\
    CONFIG.c_m_axi_s2mm_data_width $msq_s2mm_bits CONFIG.c_s_axis_s2mm_tdata_width $msq_out_tdata_bits CONFIG.c_s2mm_burst_size {{{DMA_BURST}}}] [get_bd_cells axi_dma_0]

create_bd_cell -type ip -vlnv $msq_core_vlnv msq_core_0
connect_bd_intf_net [get_bd_intf_pins axi_dma_0/M_AXIS_MM2S] [get_bd_intf_pins msq_core_0/x_in]
connect_bd_intf_net [get_bd_intf_pins msq_core_0/y_out] [get_bd_intf_pins axi_dma_0/S_AXIS_S2MM]

# AXI-Lite control from GP0, both DMA masters to DDR through HP0 (interconnects, clocks, resets)
apply_bd_automation -rule xilinx.com:bd_rule:axi4 -config {{Clk_master {{Auto}} Clk_slave {{Auto}} Clk_xbar {{Auto}} Master {{/ps7/M_AXI_GP0}} Slave {{/axi_dma_0/S_AXI_LITE}} ddr_seg {{Auto}} intc_ip {{New AXI Interconnect}} master_apm {{0}}}} [get_bd_intf_pins axi_dma_0/S_AXI_LITE]
apply_bd_automation -rule xilinx.com:bd_rule:axi4 -config {{Clk_master {{Auto}} Clk_slave {{Auto}} Clk_xbar {{Auto}} Master {{/axi_dma_0/M_AXI_MM2S}} Slave {{/ps7/S_AXI_HP0}} ddr_seg {{Auto}} intc_ip {{New AXI Interconnect}} master_apm {{0}}}} [get_bd_intf_pins ps7/S_AXI_HP0]
apply_bd_automation -rule xilinx.com:bd_rule:axi4 -config {{Clk_master {{Auto}} Clk_slave {{Auto}} Clk_xbar {{Auto}} Master {{/axi_dma_0/M_AXI_S2MM}} Slave {{/ps7/S_AXI_HP0}} ddr_seg {{Auto}} intc_ip {{Auto}} master_apm {{0}}}} [get_bd_intf_pins axi_dma_0/M_AXI_S2MM]

# the core on FCLK_CLK0, out of reset with the fabric (its own synchronizer)
create_bd_cell -type ip -vlnv {PROC_RESET} msq_core_reset
connect_bd_net [get_bd_pins ps7/FCLK_CLK0] [get_bd_pins msq_core_0/ap_clk] [get_bd_pins msq_core_reset/slowest_sync_clk]
connect_bd_net [get_bd_pins ps7/FCLK_RESET0_N] [get_bd_pins msq_core_reset/ext_reset_in]
connect_bd_net [get_bd_pins msq_core_reset/peripheral_aresetn] [get_bd_pins msq_core_0/ap_rst_n]

# the DMA's two interrupts to the PS (PYNQ's DMA driver waits on them)
create_bd_cell -type ip -vlnv {CONCAT} dma_irq
set_property -dict [list CONFIG.NUM_PORTS {{2}}] [get_bd_cells dma_irq]
connect_bd_net [get_bd_pins axi_dma_0/mm2s_introut] [get_bd_pins dma_irq/In0]
connect_bd_net [get_bd_pins axi_dma_0/s2mm_introut] [get_bd_pins dma_irq/In1]
connect_bd_net [get_bd_pins dma_irq/dout] [get_bd_pins ps7/IRQ_F2P]

assign_bd_address
validate_bd_design
save_bd_design
set msq_bd [get_files {DESIGN}.bd]
generate_target all $msq_bd
add_files -norecurse [make_wrapper -files $msq_bd -top]
set_property top {DESIGN}_wrapper [current_fileset]
update_compile_order -fileset sources_1

# ---- implementation to the bitstream ----
launch_runs impl_1 -to_step write_bitstream -jobs {JOBS}
wait_on_run impl_1
if {{[get_property PROGRESS [get_runs impl_1]] ne "100%"}} {{
    error "implementation did not finish: see [get_property DIRECTORY [get_runs impl_1]]"
}}
file copy -force [file join [get_property DIRECTORY [get_runs impl_1]] {DESIGN}_wrapper.bit] [file join $msq_dir msq.bit]
set msq_hwh [lsearch -inline -glob [get_files -all -of_objects $msq_bd] */{DESIGN}.hwh]
if {{$msq_hwh eq ""}} {{ error "no {DESIGN}.hwh among the block design's generated files" }}
file copy -force $msq_hwh [file join $msq_dir msq.hwh]
puts "wrote [file join $msq_dir msq.bit] and msq.hwh: copy them with msq_driver.py to the board"
"""
