"""Verilog backend: IR + engine plan → a synthesizable layer-pipelined design (``generate``), its
exact cycle model (``cycles``), Verilator/Icarus + cocotb simulation (``simulate``) and lint."""
