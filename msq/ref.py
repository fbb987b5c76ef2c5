"""``msq.ref``: the golden integer reference under its short name.

The implementation lives in :mod:`msq.backends.reference` (a backend that reads only the IR);
this module is the public entry point::

    from msq import ref
    from msq.ir import load_ir
    ir = load_ir("runs/demo/ir")
    logits = ref.run(ir, ir.quantize_input(x))     # exact int64, every layer per docs/ir.md
"""
from msq.backends.reference import predict, run, run_layer

__all__ = ["predict", "run", "run_layer"]
