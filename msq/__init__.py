"""MSQ: mixed-scheme (SP2 + fixed-point) quantization from PyTorch to bit-exact FPGA designs.

The Python API (msq/api.py: ``msq.train``, ``msq.export``, ``msq.hls``, ``msq.rtl``, ``msq.synth``,
...) is loaded on first use, so ``import msq`` stays light (no torch).
"""

__version__ = "0.1.0"

_API = ("train", "load_dataset", "export", "predict", "plan", "hls", "rtl", "synth", "deploy", "IR")
__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        from msq import api

        return getattr(api, name)
    raise AttributeError(f"module 'msq' has no attribute {name!r}")
