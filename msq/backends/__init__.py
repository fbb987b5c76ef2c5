"""Backends: everything downstream of the IR (reference, HLS, Verilog, synthesis, report).
A backend reads the IR only, never the training code."""
