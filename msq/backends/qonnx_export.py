"""The IR as a QONNX model: standard ONNX nodes plus QONNX ``Quant``, exact to the integer.

Built from the IR alone (docs/qonnx.md), so SP2 rows are as exact as fixed rows: every weight is
its integer ``w_int`` behind a ``Quant`` node of scale 1, and each row's scale is the folded
requantization multiplier. Tensors between layers hold real values ``x_int * 2^-frac`` (float32,
exact: a few bits times a power of two), in ONNX's NCHW layout. Each compute layer:

    acc     = MatMul(Cast<double>(x), Cast<double>(Quant(W)))     dense (float64: exact to 2^53)
            | Cast<double>(Conv(x, Quant(W)))                      conv (ONNX Runtime has float32 only)
    t       = acc * (mult * 2^(in.frac - shift - out.frac)) + (bias + 2^(shift-1)) * 2^(-shift - out.frac)
    y       = Quant(t, scale 2^-out.frac, out.bits, out.signed, rounding FLOOR)

``t / 2^-out.frac = (acc_int * mult + bias + 2^(shift-1)) * 2^-shift`` is exact in float64 when
``requant_bits <= 53``, so the ``Quant`` node's clamp and floor are the IR's requantizer to the bit;
the conv's float32 accumulation is exact when ``acc_bits <= 25`` (every partial sum below 2^24).
Layers that need more are refused by name. Average pooling is a depthwise all-ones Conv (the
window sum) then the same requantizer. A graph's ``add`` sums its two inputs and ``concat`` stacks
them along the channels, in float64 (real values, so the IR's alignment shifts are implicit), then
the same requantizer with the merge's ``mult``/``shift``; a layer's output read twice is one
tensor with two readers. The per-row schemes and the IR's source travel as metadata
(``msq.layers``, ``msq.source``).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from msq import atomic
from msq.errors import MSQError
from msq.ir import arith
from msq.ir.arith import ActFormat, rounding_constant, signed_width
from msq.ir.model import INPUT, SCHEME_SP2, ComputeLayer, IRModel, MergeLayer, PoolLayer

QONNX_DOMAIN = "qonnx.custom_op.general"
ONNX_OPSET = 13
FLOAT64_EXACT_BITS = 53  # signed width whose every value float64 holds exactly (|v| < 2^52 suffices)
FLOAT32_EXACT_BITS = 25  # |v| <= 2^24


class _Graph:
    """Nodes and initializers, named after the IR layer they belong to."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []

    def const(self, name: str, value: np.ndarray | float, dtype=np.float32) -> str:
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def node(self, op: str, inputs: list[str], name: str, domain: str = "", **attrs) -> str:
        self.nodes.append(helper.make_node(op, inputs, [name], name=name, domain=domain, **attrs))
        return name

    def quant(self, x: str, name: str, scale: float, bits: int, signed: bool, narrow: bool, rounding: str) -> str:
        """A QONNX ``Quant``: ``clamp(round(x / scale)) * scale`` on a scalar, power-of-two scale."""
        ins = [x, self.const(f"{name}_scale", scale), self.const(f"{name}_zeropt", 0.0),
               self.const(f"{name}_bits", float(bits))]
        return self.node("Quant", ins, name, domain=QONNX_DOMAIN, signed=int(signed), narrow=int(narrow),
                         rounding_mode=rounding)

    def requantize(self, acc: str, name: str, mult: np.ndarray, shift: np.ndarray, bias: np.ndarray,
                   in_fmt: ActFormat, out_fmt: ActFormat, row_shape: tuple[int, ...]) -> str:
        """float64 ``acc`` (real, ``acc_int * 2^-in.frac``) → the layer's output, per docs/ir.md."""
        shift = np.asarray(shift, dtype=np.int64)
        gain = np.ldexp(np.asarray(mult, dtype=np.float64), in_fmt.frac - shift - out_fmt.frac)
        offset = np.ldexp((np.asarray(bias, dtype=np.int64) + rounding_constant(shift)).astype(np.float64),
                          -shift - out_fmt.frac)
        t = self.node("Mul", [acc, self.const(f"{name}_mult", gain.reshape(row_shape), np.float64)], f"{name}_scaled")
        t = self.node("Add", [t, self.const(f"{name}_bias", offset.reshape(row_shape), np.float64)], f"{name}_biased")
        return self.quant(t, f"{name}_out", out_fmt.scale, out_fmt.bits, out_fmt.signed, False, "FLOOR")


def _weight_bits(w_int: np.ndarray) -> int:
    """Bits of a narrow signed Quant holding every integer weight (SP2 magnitudes reach 2^(E+1))."""
    peak = int(np.abs(w_int).max(initial=0))
    return max(2, signed_width(-peak, peak))


def _conv_slices(layer: ComputeLayer) -> list[tuple[np.ndarray, int]]:
    """``(part, exp)`` with ``w_int = Σ part * 2^exp`` and every part's sums exact in float32.

    ONNX Runtime convolves in float32 only; a layer whose accumulator is wider than 25 bits is
    split into slices of its weights' magnitude bits (one slice in the common case), each
    convolved exactly and summed in float64."""
    w = layer.w_int
    if layer.acc_bits <= FLOAT32_EXACT_BITS:
        return [(w, 0)]
    mag, sign = np.abs(w), np.sign(w)
    top = int(mag.max()).bit_length()
    for width in range(top - 1, 0, -1):
        parts = [(sign * ((mag >> exp) & ((1 << width) - 1)), exp) for exp in range(0, top, width)]
        if all(arith.accumulator_bits(part, layer.in_fmt) <= FLOAT32_EXACT_BITS for part, _ in parts):
            return parts
    raise MSQError(f"layer '{layer.name}': even one weight bit times its {layer.fan_in} inputs overflows "
                   "the exact range of ONNX Runtime's float32 Conv")


def _check_exact(layer: ComputeLayer | PoolLayer | MergeLayer) -> None:
    if layer.requant_bits > FLOAT64_EXACT_BITS:
        raise MSQError(f"layer '{layer.name}': requant_bits {layer.requant_bits} > {FLOAT64_EXACT_BITS}: "
                       "its requantizer is not exact in float64, the widest type QONNX's executor computes in")
    if layer.kind == "avgpool" and layer.acc_bits > FLOAT32_EXACT_BITS:
        raise MSQError(f"layer '{layer.name}': acc_bits {layer.acc_bits} > {FLOAT32_EXACT_BITS}: its window sums "
                       "are not exact in ONNX Runtime's float32 Conv")


def _compute(g: _Graph, layer: ComputeLayer, x: str, image: tuple[int, ...]) -> str:
    """``image``: the (H, W, C) a dense layer flattens, or () when its input is a vector."""
    name = layer.name
    if layer.kind == "dense":
        w = layer.w_int.reshape(layer.rows, -1)
        if image:  # the stream flattens (H, W, C), ONNX's Flatten (C, H, W): permute the columns back
            h, wd, c = image
            w = w.reshape(layer.rows, h, wd, c).transpose(0, 3, 1, 2).reshape(layer.rows, -1)
            x = g.node("Flatten", [x], f"{name}_flatten", axis=1)
        wq = g.quant(g.const(f"{name}_weight", w.T), f"{name}_weight_quant", 1.0, _weight_bits(w), True, True, "ROUND")
        acc = g.node("MatMul", [g.node("Cast", [x], f"{name}_in64", to=TensorProto.DOUBLE),
                                g.node("Cast", [wq], f"{name}_weight64", to=TensorProto.DOUBLE)], f"{name}_acc")
        row_shape: tuple[int, ...] = (layer.rows,)
    else:
        (ph, pw), kernel, stride = layer.padding, list(layer.kernel), list(layer.stride)
        acc = ""
        for i, (part, exp) in enumerate(_conv_slices(layer)):  # w_int = Σ part * 2^exp
            part = part.transpose(0, 3, 1, 2)  # (rows, kh, kw, C) → ONNX (rows, C, kh, kw)
            tag = f"{name}_weight" + (f"{i}" if i else "")
            wq = g.quant(g.const(tag, np.ldexp(part, exp)), f"{tag}_quant", 2.0**exp, _weight_bits(part), True, True,
                         "ROUND")
            conv = g.node("Conv", [x, wq], f"{tag}_conv", kernel_shape=kernel, strides=stride, pads=[ph, pw, ph, pw])
            conv = g.node("Cast", [conv], f"{tag}_acc", to=TensorProto.DOUBLE)
            acc = g.node("Add", [acc, conv], f"{tag}_sum") if acc else conv
        row_shape = (layer.rows, 1, 1)
    return g.requantize(acc, name, layer.mult, layer.shift, layer.bias, layer.in_fmt, layer.out_fmt, row_shape)


def _pool(g: _Graph, layer: PoolLayer, x: str) -> str:
    kernel, stride = list(layer.kernel), list(layer.stride)
    if layer.kind == "maxpool":
        return g.node("MaxPool", [x], f"{layer.name}_max", kernel_shape=kernel, strides=stride)
    channels = layer.in_shape[2]
    ones = g.const(f"{layer.name}_window", np.ones((channels, 1) + tuple(kernel)))
    window = g.node("Conv", [x, ones], f"{layer.name}_sum", kernel_shape=kernel, strides=stride, group=channels)
    acc = g.node("Cast", [window], f"{layer.name}_acc", to=TensorProto.DOUBLE)
    return g.requantize(acc, layer.name, np.array([layer.mult]), np.array([layer.shift]), np.array([0]),
                        layer.in_fmt, layer.out_fmt, (1, 1, 1))


def _merge(g: _Graph, layer: MergeLayer, xs: list[str]) -> str:
    """``add`` or channel ``concat`` of real-valued inputs (exact in float64: the sum of two values
    on the common grid ``2^-F``), then the merge's requantizer from that grid."""
    name = layer.name
    wide = [g.node("Cast", [x], f"{name}_in{i}_64", to=TensorProto.DOUBLE) for i, x in enumerate(xs)]
    if layer.kind == "add":
        acc = g.node("Add", wide, f"{name}_sum")
    else:
        acc = g.node("Concat", wide, f"{name}_stack", axis=1)  # NCHW channels, or a vector's features
    common = max(layer.in_fmts, key=lambda f: f.frac)  # the grid the IR aligns both inputs to
    row_shape = (1, 1, 1) if len(layer.out_shape) == 3 else (1,)
    return g.requantize(acc, name, np.array([layer.mult]), np.array([layer.shift]), np.array([0]), common,
                        layer.out_fmt, row_shape)


def to_qonnx(ir: IRModel, batch: int = 1) -> onnx.ModelProto:
    """The QONNX model of ``ir`` for a fixed ``batch`` (QONNX's executor needs every shape).

    Input: real values in the dataset's layout, (batch, C, H, W) or (batch, F), quantized by a
    ``Quant`` node exactly like ``IRModel.quantize_input``; output: real values shaped
    (batch, *ir.output_shape), channels-last like the IR's stream.
    """
    g = _Graph()
    fmt = ir.input_fmt
    image = len(ir.input_shape) == 3
    in_shape = [batch, ir.input_shape[2], ir.input_shape[0], ir.input_shape[1]] if image else [batch, *ir.input_shape]
    tensors = {INPUT: g.quant("global_in", "input_quant", fmt.scale, fmt.bits, fmt.signed, False, "ROUND")}
    shapes = {INPUT: tuple(ir.input_shape), **{layer.name: tuple(layer.out_shape) for layer in ir.layers}}
    meta = []
    for k, layer in enumerate(ir.layers):
        if layer.kind != "maxpool":
            _check_exact(layer)
        xs = [tensors[name] for name in ir.inputs_of(k)]
        if isinstance(layer, ComputeLayer):
            shape = shapes[ir.inputs_of(k)[0]]  # a dense layer's in_shape is flat; it reads this stream
            x = _compute(g, layer, xs[0], shape if layer.kind == "dense" and len(shape) == 3 else ())
            scheme = "".join("H" if h else "S" if s == SCHEME_SP2 else "F" for s, h in zip(layer.scheme, layer.high_mask))
            meta.append({"layer": layer.name, "kind": layer.kind, "weight": f"{layer.name}_weight",
                         "wbits": layer.wbits, "scheme": scheme})
        elif isinstance(layer, MergeLayer):
            x = _merge(g, layer, xs)
        else:
            x = _pool(g, layer, xs[0])
        tensors[layer.name] = x
    if len(ir.output_shape) == 3:
        x = g.node("Transpose", [x], "output_nhwc", perm=[0, 2, 3, 1])
    g.nodes[-1].output[0] = "global_out"
    graph = helper.make_graph(
        g.nodes, ir.name, [helper.make_tensor_value_info("global_in", TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info("global_out", TensorProto.FLOAT, [batch, *ir.output_shape])], g.inits)
    model = helper.make_model(graph, producer_name="msq", opset_imports=[
        helper.make_opsetid("", ONNX_OPSET), helper.make_opsetid(QONNX_DOMAIN, 1)])
    helper.set_model_props(model, {"msq.layers": json.dumps(meta), "msq.source": json.dumps(ir.source)})
    return model


def save_qonnx(ir: IRModel, path: str | Path, batch: int = 1) -> Path:
    """Write :func:`to_qonnx` of ``ir`` to ``path``, with every tensor's shape inferred (as QONNX's
    executor requires)."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.infer_shapes import InferShapes

    proto = to_qonnx(ir, batch)
    model = ModelWrapper(proto).transform(InferShapes())
    for prop in proto.metadata_props:  # shape inference rebuilds the model without them
        model.set_metadata_prop(prop.key, prop.value)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_with(path, lambda tmp: model.save(str(tmp)))
    return path
