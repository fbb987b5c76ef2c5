"""Import a fixed-point QONNX model (Brevitas ``export_qonnx``, FINN) into the integer IR.

The graph is read as one chain from its input, node by node, with one handler per ONNX op type
(like :data:`msq.frontend.export.HANDLERS`, and feeding the same :class:`~msq.frontend.export.Stream`):
``Quant`` on the input and after each MatMul/Gemm/Conv (+ Add bias, Relu) is an activation format
with a power-of-two scale, ``Quant`` on an initializer is a weight or bias, MaxPool, Flatten and
Reshape to (N, -1) shape the stream. The IR is exact, not approximate: every requantizer must be
``mult * 2^-shift`` with no rounding (weight scales with at most 15 significant bits, e.g. powers
of two), every bias a multiple of ``2^-shift`` output steps, and the output rounding one the IR
reproduces (docs/qonnx.md). Whatever does not map is an :class:`MSQError` naming the node.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
from onnx import helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.general.quant import quant
from qonnx.transformation.infer_shapes import InferShapes
from torch import nn

from msq.errors import MSQError
from msq.frontend.data import load_dataset
from msq.frontend.export import Stream, stream_shape
from msq.ir import arith
from msq.ir.arith import ActFormat
from msq.ir.io import save_ir
from msq.ir.model import SCHEME_FIXED, ComputeLayer, IRModel

ROUNDINGS = {"FLOOR": "floor", "CEIL": "ceil", "ROUND": "half_even", "HALF_EVEN": "half_even",
             "HALF_UP": "half_away"}


@dataclass
class _Quantized:
    """A constant behind a ``Quant`` node: integers ``ints`` times ``scale`` (broadcast to its shape)."""

    ints: np.ndarray
    scale: np.ndarray
    bits: int


class _Importer:
    """The walk over the graph: the stream so far, the pending layer's extras, the current tensor."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self.model = ModelWrapper(str(path)).transform(InferShapes())
        except Exception as exc:  # a damaged or non-ONNX file: name it
            raise MSQError(f"{path}: not a readable ONNX model ({exc})") from exc
        self.inits = {t.name for t in self.model.graph.initializer}
        self.stream: Stream | None = None
        self.relu = False
        self.has_bias = False
        self.tensor = ""  # the stream's tensor entering the current node

    # --- what a node reads ------------------------------------------------------------------
    def where(self, node) -> str:
        return f"{self.path}: node '{node.name or node.output[0]}' ({node.op_type})"

    def scalar(self, node, index: int, what: str) -> float:
        value = self.model.get_initializer(node.input[index])
        if value is None or value.size != 1:
            raise MSQError(f"{self.where(node)}: {what} must be a constant scalar")
        return float(value.reshape(()))

    def attr(self, node, name: str, default=None):
        found = [helper.get_attribute_value(a) for a in node.attribute if a.name == name]
        value = found[0] if found else default
        return value.decode() if isinstance(value, bytes) else value

    def producer(self, tensor: str):
        return self.model.find_producer(tensor)

    def constant(self, tensor: str, consumer, what: str) -> _Quantized:
        """The integers and scale of a quantized constant (a ``Quant`` on an initializer, maybe
        transposed: TorchScript exports a bias-free linear layer as Quant → Transpose → MatMul)."""
        node = self.producer(tensor)
        perm = None
        if node is not None and node.op_type == "Transpose":
            perm, node = self.attr(node, "perm"), self.producer(node.input[0])
        if node is None or node.op_type != "Quant" or node.input[0] not in self.inits:
            raise MSQError(f"{self.where(consumer)}: its {what} must be a Quant node on an initializer "
                           "(unquantized float weights have no integer form)")
        if self.scalar(node, 2, "zero point") != 0.0:
            raise MSQError(f"{self.where(node)}: zero point must be 0")
        scale = self.model.get_initializer(node.input[1]).astype(np.float64)
        if np.any(scale <= 0):
            raise MSQError(f"{self.where(node)}: scale must be positive")
        bits = self.scalar(node, 3, "bit width")
        value = quant(self.model.get_initializer(node.input[0]).astype(np.float64), scale, 0.0, np.float64(bits),
                      bool(self.attr(node, "signed", 1)), bool(self.attr(node, "narrow", 0)),
                      self.attr(node, "rounding_mode", "ROUND"))
        ints = np.rint(value / scale)
        if not np.array_equal(ints * scale, value):
            raise MSQError(f"{self.where(node)}: quantized values are not integer multiples of the scale")
        scale = np.broadcast_to(scale, ints.shape)
        if perm is not None:
            ints, scale = ints.transpose(perm), scale.transpose(perm)
        return _Quantized(ints.astype(np.int64), scale, int(bits))

    # --- the walk ---------------------------------------------------------------------------
    def run(self) -> IRModel:
        graph = self.model.graph
        inputs = [i.name for i in graph.input if i.name not in self.inits]
        if len(inputs) != 1 or len(graph.output) != 1:
            raise MSQError(f"{self.path}: expected one input and one output, got inputs {inputs} and "
                           f"{len(graph.output)} outputs")
        tensor = inputs[0]
        in_shape = tuple(self.model.get_tensor_shape(tensor))[1:]
        first = self.next_node(tensor)
        if first is None or first.op_type != "Quant":
            raise MSQError(f"{self.path}: the input '{tensor}' must enter a Quant node (the input quantizer)")
        fmt = self.act_format(first)
        if self.attr(first, "rounding_mode", "ROUND").upper() not in ("ROUND", "HALF_EVEN"):
            raise MSQError(f"{self.where(first)}: the input quantizer must round half to even (ROUND), "
                           "as the host quantizes MSQ inputs")
        self.stream = Stream(shape=stream_shape(in_shape), fmt=fmt)
        tensor = first.output[0]
        while (node := self.next_node(tensor)) is not None:
            handler = HANDLERS.get(node.op_type)
            if handler is None:
                raise MSQError(f"{self.where(node)} is not supported: expected one of {', '.join(HANDLERS)}")
            self.tensor = tensor
            handler(self, node)
            tensor = node.output[0]
        if tensor != graph.output[0].name:
            raise MSQError(f"{self.path}: the chain from the input ends at '{tensor}', not at the output")
        st = self.stream
        if st.pending is not None:
            raise MSQError(f"{self.path}: layer '{st.pending.name}' is not followed by an activation Quant node")
        if not st.layers:
            raise MSQError(f"{self.path}: no MatMul, Gemm or Conv layer to import")
        return IRModel(name=self.path.stem, input_shape=stream_shape(in_shape), input_fmt=fmt, layers=st.layers,
                       source={"qonnx": str(self.path)})

    def next_node(self, tensor: str):
        consumers = self.model.find_consumers(tensor) or []
        if len(consumers) > 1:
            raise MSQError(f"{self.path}: tensor '{tensor}' feeds {len(consumers)} nodes; only chains are supported")
        return consumers[0] if consumers else None

    def operand(self, node) -> str:
        """The input of a two-input node that is not the stream (its weight or bias)."""
        others = [t for t in node.input[:2] if t != self.tensor]
        if len(others) != 1:
            raise MSQError(f"{self.where(node)}: expected the stream and one constant as inputs")
        return others[0]

    def act_format(self, node) -> ActFormat:
        """The fixed-point format of an activation ``Quant``: power-of-two scale, zero point 0, full range."""
        scale = self.scalar(node, 1, "scale")
        frac = -np.log2(scale) if scale > 0 else np.nan
        if not np.isfinite(frac) or frac != round(frac):
            raise MSQError(f"{self.where(node)}: activation scale {scale} is not a power of two")
        if self.scalar(node, 2, "zero point") != 0.0:
            raise MSQError(f"{self.where(node)}: activation zero point must be 0")
        bits, signed = self.scalar(node, 3, "bit width"), bool(self.attr(node, "signed", 1))
        if bits != round(bits) or not 2 <= bits <= 32:
            raise MSQError(f"{self.where(node)}: activation bit width {bits} is not an integer in 2..32")
        if signed and self.attr(node, "narrow", 0):
            raise MSQError(f"{self.where(node)}: narrow-range signed activations have no IR format")
        return ActFormat(bits=int(bits), frac=int(round(frac)), signed=signed)


def _weights(imp: _Importer, node, tensor: str, rows_axis: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(integer weights with rows first, per-row scale, wbits) of a MatMul/Gemm/Conv weight input."""
    q = imp.constant(tensor, node, "weight")
    ints = np.moveaxis(q.ints, rows_axis, 0)
    scale = np.moveaxis(q.scale, rows_axis, 0).reshape(len(ints), -1)
    if not (scale == scale[:, :1]).all():
        raise MSQError(f"{imp.where(node)}: weight scales must be per tensor or per output channel")
    peak = int(np.abs(ints).max(initial=0))
    wbits = max(2, q.bits if peak <= 2 ** (q.bits - 1) - 1 else q.bits + 1)
    if wbits > 8:
        raise MSQError(f"{imp.where(node)}: {wbits}-bit weights; the IR takes 2..8 bits")
    return ints, scale[:, 0], wbits


def _bias(imp: _Importer, node, tensor: str, rows: int) -> np.ndarray:
    """A bias input as real values (exactly: an integer times its scale)."""
    if tensor in imp.inits:
        value = imp.model.get_initializer(tensor).astype(np.float64)
    else:
        q = imp.constant(tensor, node, "bias")
        value = q.ints * q.scale
    if value.size not in (1, rows):
        raise MSQError(f"{imp.where(node)}: the bias must have one value per output channel")
    imp.has_bias = True
    return np.array(np.broadcast_to(value.reshape(-1), (rows,)))


def _optional_bias(imp: _Importer, node, rows: int) -> np.ndarray:
    """Gemm's and Conv's third input, if any."""
    return _bias(imp, node, node.input[2], rows) if len(node.input) > 2 and node.input[2] else np.zeros(rows)


def _matmul(imp: _Importer, node) -> None:
    if node.op_type == "Gemm" and (imp.attr(node, "alpha", 1.0) != 1.0 or imp.attr(node, "beta", 1.0) != 1.0
                                   or imp.attr(node, "transA", 0)):
        raise MSQError(f"{imp.where(node)}: only Gemm with alpha = beta = 1 and transA = 0 is supported")
    trans_b = node.op_type == "Gemm" and imp.attr(node, "transB", 0)
    if node.input[0] != imp.tensor:
        raise MSQError(f"{imp.where(node)}: the stream must be the first input")
    ints, w_scale, wbits = _weights(imp, node, node.input[1], 0 if trans_b else 1)
    bias = _optional_bias(imp, node, len(ints))
    imp.stream.add_dense(imp.where(node), ints, w_scale, np.full(len(ints), SCHEME_FIXED), wbits, bias)


def _conv(imp: _Importer, node) -> None:
    if node.input[0] != imp.tensor:
        raise MSQError(f"{imp.where(node)}: the stream must be the first input")
    if imp.attr(node, "group", 1) != 1 or set(imp.attr(node, "dilations", [1, 1])) != {1}:
        raise MSQError(f"{imp.where(node)}: only ungrouped, undilated Conv is supported")
    if imp.attr(node, "auto_pad", "NOTSET") != "NOTSET":
        raise MSQError(f"{imp.where(node)}: auto_pad is not supported, give explicit pads")
    pads = list(imp.attr(node, "pads", [0, 0, 0, 0]))
    if len(pads) != 4 or pads[:2] != pads[2:]:
        raise MSQError(f"{imp.where(node)}: pads {pads} must be 2-D and symmetric")
    ints, w_scale, wbits = _weights(imp, node, node.input[1], 0)
    bias = _optional_bias(imp, node, len(ints))
    kernel = tuple(int(k) for k in ints.shape[2:])
    stride = tuple(int(s) for s in imp.attr(node, "strides", [1, 1]))
    imp.stream.add_conv(imp.where(node), ints, w_scale, np.full(len(ints), SCHEME_FIXED), wbits, bias, kernel,
                        stride, (int(pads[0]), int(pads[1])))


def _add(imp: _Importer, node) -> None:
    st = imp.stream
    if st.pending is None or imp.has_bias or imp.relu:
        raise MSQError(f"{imp.where(node)}: an Add must be the bias right after a MatMul, Gemm or Conv")
    st.pending.bias = st.pending.bias + _bias(imp, node, imp.operand(node), len(st.pending.scheme))


def _relu(imp: _Importer, node) -> None:
    if imp.stream.pending is not None:
        imp.relu = True
    elif imp.stream.fmt.signed:
        raise MSQError(f"{imp.where(node)}: a Relu on a signed quantized stream has no IR layer")


def _quant(imp: _Importer, node) -> None:
    st = imp.stream
    fmt = imp.act_format(node)
    if st.pending is None:  # a re-quantization of a quantized stream: only the identity maps
        if fmt != st.fmt:
            raise MSQError(f"{imp.where(node)}: re-quantizes {st.fmt} to {fmt} without a layer in between")
        return
    mode = imp.attr(node, "rounding_mode", "ROUND").upper()
    if mode not in ROUNDINGS:
        raise MSQError(f"{imp.where(node)}: rounding_mode {mode} is not supported: expected one of "
                       f"{', '.join(ROUNDINGS)}")
    pending = st.pending
    rounding = ROUNDINGS[mode] if ROUNDINGS[mode] in arith.ROUNDINGS else "half_up"
    st.close(imp.where(node), fmt, imp.relu, rounding)
    _check_exact(imp, node, st.layers[-1], pending, ROUNDINGS[mode])
    imp.relu, imp.has_bias = False, False


def _check_exact(imp: _Importer, node, layer: ComputeLayer, pending, mode: str) -> None:
    """The IR layer computes exactly what the QONNX nodes do, or an error says why not."""
    offset = arith.rounding_offset(layer.shift, mode if mode in arith.ROUNDINGS else "half_up")
    out_scale = Fraction(layer.out_fmt.scale)
    for r in range(layer.rows):
        ratio = Fraction(pending.in_fmt.scale) * Fraction(float(pending.w_scale[r])) / out_scale
        step = Fraction(2) ** -int(layer.shift[r])
        if Fraction(int(layer.mult[r])) * step != ratio:
            raise MSQError(f"{imp.where(node)}: row {r}'s scale ratio {float(ratio)} is not a 16-bit multiplier "
                           "times a power of two; use power-of-two weight scales")
        if Fraction(int(layer.bias[r] - offset[r])) * step != Fraction(float(pending.bias[r])) / out_scale:
            raise MSQError(f"{imp.where(node)}: row {r}'s bias {pending.bias[r]} is not a multiple of "
                           f"2^-{layer.shift[r]} output steps; quantize the bias on the accumulator's scale "
                           "(e.g. Brevitas Int16Bias)")
    if mode in arith.ROUNDINGS or (mode == "half_away" and not layer.out_fmt.signed):
        return
    for r in range(layer.rows):  # half to even equals half up unless a value can end in exactly 1/2
        n, m, b = int(layer.shift[r]), int(layer.mult[r]), int(layer.bias[r])
        if n >= 1:
            grid = 1 << n if m == 0 else min(m & -m, 1 << n)  # the multiples of acc * m modulo 2^n
            if (((1 << (n - 1)) - b) % grid) == 0:
                ties = "half to even" if mode == "half_even" else "away from zero"
                raise MSQError(f"{imp.where(node)}: rounds ties {ties} and row {r} of layer '{layer.name}' can "
                               "produce exact ties, which the IR rounds half up: quantize this activation with "
                               "FLOOR or CEIL rounding")


def _maxpool(imp: _Importer, node) -> None:
    pads = list(imp.attr(node, "pads", [0, 0, 0, 0]))
    kernel = tuple(int(k) for k in imp.attr(node, "kernel_shape"))
    pool = nn.MaxPool2d(kernel, stride=tuple(int(s) for s in imp.attr(node, "strides", kernel)),
                        padding=int(max(pads)) if any(pads) else 0,
                        dilation=tuple(int(d) for d in imp.attr(node, "dilations", [1, 1])),
                        ceil_mode=bool(imp.attr(node, "ceil_mode", 0)))
    imp.stream.add_pool(imp.where(node), pool)


def _flatten(imp: _Importer, node) -> None:
    out = imp.model.get_tensor_shape(node.output[0])
    if out is None or len(out) != 2 or out[1] != int(np.prod(imp.stream.shape)):
        raise MSQError(f"{imp.where(node)}: only flattening to (batch, {int(np.prod(imp.stream.shape))}) is supported")
    imp.stream.flatten()


def _identity(imp: _Importer, node) -> None:
    """Nothing to do (Identity, inference-mode Dropout)."""


HANDLERS = {"Quant": _quant, "MatMul": _matmul, "Gemm": _matmul, "Conv": _conv, "Add": _add, "Relu": _relu,
            "MaxPool": _maxpool, "Flatten": _flatten, "Reshape": _flatten, "Identity": _identity,
            "Dropout": _identity}


def import_qonnx(path: str | Path) -> IRModel:
    """The integer IR of the QONNX model at ``path`` (docs/qonnx.md: what maps and why)."""
    path = Path(path)
    if not path.is_file():
        raise MSQError(f"{path} does not exist")
    return _Importer(path).run()


def import_run(model: str | Path, out: str | Path, dataset: str | None = None) -> tuple[IRModel, Path]:
    """Import ``model`` into the run directory ``out``: its IR goes where ``msq export`` puts one;
    ``dataset`` (recorded in the IR's source) gives ``msq hls``/``rtl`` their test vectors."""
    ir = import_qonnx(model)
    if dataset is not None:
        load_dataset(dataset)  # fail now, not at msq hls
        ir.source["dataset"] = dataset
    path = Path(out) / "ir"
    save_ir(ir, path)
    return ir, path
