"""MSQ: mixed-scheme (SP2 + fixed-point) quantization from PyTorch to bit-exact FPGA designs."""

__version__ = "0.1.0"
