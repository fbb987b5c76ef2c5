"""Integer model IR: the single source of truth every backend reads (docs/ir.md)."""
from msq.ir.arith import ActFormat
from msq.ir.io import load_ir, save_ir
from msq.ir.model import ComputeLayer, IRModel, PoolLayer

__all__ = ["ActFormat", "ComputeLayer", "IRModel", "PoolLayer", "load_ir", "save_ir"]
