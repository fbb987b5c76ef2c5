"""Synthesis backend: Vivado (out-of-context, when installed) or Yosys ``synth_xilinx``."""
