"""Freeze a trained Brevitas/MSQ model into the integer IR (docs/ir.md is its contract).

Any ``nn.Module`` that torch.fx traces into supported ops exports (msq.frontend.trace checks the
ops, msq.frontend.graph_walk walks the graph); the :class:`Stream` here follows one tensor.

Integer weights come from the frozen quantizers (``value / scale`` of the quantized weight);
BatchNorm and the float bias fold into the per-row integer bias and requantization multiplier;
accumulator widths follow from the weights and the input format. Conv weights and the dense
layer after a Flatten are permuted from torch's (C, H, W) order into the channels-last stream
order.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear, QuantReLU
from torch import nn

from msq import limits, numerics
from msq.errors import MSQError
from msq.names import check_label
from msq.numerics import RowScheme
from msq.frontend.fold import fold_row
from msq.frontend.models import ACT_FIX
from msq.frontend.quantizer import MSQTensorQuant
from msq.frontend.trace import check_supported
from msq.ir import arith
from msq.ir.arith import ActFormat
from msq.ir.io import save_ir
from msq.ir.model import (INPUT, SCHEME_FIXED, SCHEME_SP2, ComputeLayer, IRModel, Layer, MergeLayer,
                          PoolLayer)


def act_format(module: nn.Module, name: str) -> ActFormat:
    """Fixed-point format of a Brevitas activation quantizer (its scale must be a power of two)."""
    proxy = module.act_quant
    if not proxy.is_quant_enabled:
        raise MSQError(f"layer '{name}' ({type(module).__name__}) has no activation quantizer: "
                       "export needs fixed-point activations (train with a quantized scheme)")
    scale = float(proxy.scale().detach())
    frac = -np.log2(scale)
    if abs(frac - round(frac)) > 1e-9:
        raise MSQError(f"layer '{name}': activation scale {scale} is not a power of two: {ACT_FIX}")
    return ActFormat(bits=int(round(float(proxy.bit_width()))), frac=int(round(frac)), signed=bool(proxy.is_signed))


def _pair(value, what: str, name: str) -> tuple[int, int]:
    pair = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(pair) != 2 or not all(isinstance(v, int) for v in pair):
        raise MSQError(f"layer '{name}': {what} must be integers, got {value!r}")
    return int(pair[0]), int(pair[1])


@dataclass
class PendingLayer:
    """A linear/conv layer waiting for its BatchNorm and activation quantizer."""

    name: str
    kind: str
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    in_fmt: ActFormat
    wbits: int
    scheme: np.ndarray
    w_int: np.ndarray
    w_scale: np.ndarray
    bias: np.ndarray
    geometry: dict = field(default_factory=dict)
    row_bits: np.ndarray | None = None
    bn_a: np.ndarray | None = None
    bn_c: np.ndarray | None = None
    source: str = INPUT  # the IR name of what the layer reads


@dataclass
class PendingMerge:
    """An add or concat waiting for the activation quantizer that sets its output format."""

    name: str
    kind: str
    sources: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    fmts: tuple[ActFormat, ...]
    out_shape: tuple[int, ...]


def _quantized_weight(module: nn.Module, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, np.ndarray | None]:
    """(w_int, per-row weight scale, scheme per row, bits, per-row bits or None when uniform) from
    the layer's frozen MSQ quantizer."""
    tq = getattr(getattr(module, "weight_quant", None), "tensor_quant", None)
    if not isinstance(tq, MSQTensorQuant):
        raise MSQError(f"layer '{name}' has no MSQ weight quantizer: export needs a model trained with "
                       "--scheme msq, fixed or sp2 (float models have no integer form)")
    if tq.alt_scheme == RowScheme.P2:
        raise MSQError(f"layer '{name}' uses the P2 baseline: export supports msq, fixed and sp2 rows")
    with torch.no_grad():
        q = tq.normalized_levels(module.weight).double()
        view = (-1,) + (1,) * (q.dim() - 1)
        ratio = (q * tq.row_denominator().double().view(view)).numpy()
        scale = (tq.row_alpha().double() / tq.row_denominator().double()).numpy()
    w_int = np.rint(ratio).astype(np.int64)
    if np.abs(ratio - w_int).max(initial=0) > 1e-3:
        raise MSQError(f"layer '{name}': quantized weights are not integer multiples of their scale")
    sp2, bits = tq.sp2_mask.numpy(), tq.row_bits()
    high = bits > tq.bits
    for scheme, rows, b in ((RowScheme.SP2, sp2 & ~high, tq.bits), (RowScheme.FIXED, ~sp2 & ~high, tq.bits),
                            (RowScheme.FIXED, high, tq.high_bits)):
        if rows.any() and not np.isin(w_int[rows], numerics.integer_levels(scheme, b)).all():
            raise MSQError(f"layer '{name}': a {scheme} row has a weight off the {b}-bit {scheme} levels")
    scheme = np.where(sp2 & ~high, SCHEME_SP2, SCHEME_FIXED).astype(np.int64)
    return w_int, scale, scheme, tq.bits, (bits if high.any() else None)


def _bias(module: nn.Module, rows: int) -> np.ndarray:
    return np.zeros(rows) if module.bias is None else module.bias.detach().double().numpy()


def close_layer(p: PendingLayer, out_fmt: ActFormat, relu: bool, rounding: str = "half_up") -> ComputeLayer:
    """Fold bias and BatchNorm into per-row (mult, shift, bias) that round every reachable accumulator
    as the real arithmetic does (:func:`msq.frontend.fold.fold_row`); derive accumulator and requant widths.

    ``rounding`` is how the layer's output rounds (``arith.rounding_offset``): an imported QONNX
    model may floor or ceil where MSQ's own quantizers round half up.
    """
    rows = len(p.scheme)
    a = np.ones(rows) if p.bn_a is None else p.bn_a
    c = np.zeros(rows) if p.bn_c is None else p.bn_c
    step = a * p.in_fmt.scale * p.w_scale  # real value of one accumulator unit, per row
    acc_bits = arith.accumulator_bits(p.w_int, p.in_fmt)
    acc_lo, acc_hi = arith.accumulator_range(p.w_int, p.in_fmt)
    rows_folded = [fold_row(float(r), float(o), int(l), int(h), out_fmt.lo, out_fmt.hi, rounding)
                   for r, o, l, h in zip(step / out_fmt.scale, (a * p.bias + c) / out_fmt.scale, acc_lo, acc_hi)]
    mult, shift, bias = (np.array(v, dtype=np.int64) for v in zip(*rows_folded))  # bias in 2^-n output steps
    rq_bits = arith.requant_bits(acc_lo, acc_hi, mult, shift, bias)
    if acc_bits > arith.MAX_ACC_BITS or rq_bits > arith.MAX_REQUANT_BITS:
        raise MSQError(f"layer '{p.name}': needs a {acc_bits}-bit accumulator and {rq_bits}-bit requantization "
                       f"(max {arith.MAX_ACC_BITS} and {arith.MAX_REQUANT_BITS}); its bias or BatchNorm "
                       "shift is out of proportion to its weights")
    return ComputeLayer(name=p.name, kind=p.kind, in_shape=p.in_shape, out_shape=p.out_shape, wbits=p.wbits,
                        in_fmt=p.in_fmt, out_fmt=out_fmt, relu=relu, acc_bits=acc_bits, requant_bits=rq_bits,
                        scheme=p.scheme, w_int=p.w_int, bias=bias, mult=mult, shift=shift, row_bits=p.row_bits,
                        **p.geometry)


@dataclass
class Stream:
    """What export knows between two layers: the stream's shape and format, the compute layer
    waiting for its activation quantizer, and the IR layers closed so far. Shared by the Brevitas
    exporter and the QONNX importer, which both feed it torch-layout weights."""

    shape: tuple[int, ...]
    fmt: ActFormat
    pending: PendingLayer | None = None
    torch_chw: tuple[int, int, int] | None = None  # (C, H, W) of a flattened image until a dense layer reads it
    layers: list[Layer] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    source: str = INPUT  # the IR name of the layer whose output the stream is
    relu: bool = False  # a plain ReLU waits for the activation quantizer after it
    merge: PendingMerge | None = None

    def ir_name(self, kind: str) -> str:
        self.counts[kind] = self.counts.get(kind, 0) + 1
        return f"{kind}{self.counts[kind]}"

    def open_compute(self, name: str) -> None:
        if self.pending is not None:
            raise MSQError(f"layer '{name}' follows layer '{self.pending.name}' without an activation quantizer: "
                           f"put one between them; {ACT_FIX}")
        self.require_quantized(name)

    def require_quantized(self, name: str) -> None:
        """``name`` must read a quantized value, not an add/concat or ReLU before its quantizer."""
        if self.merge is not None or self.relu:
            what = f"the {self.merge.kind} '{self.merge.name}'" if self.merge else "a ReLU"
            raise MSQError(f"'{name}' reads {what} that has no activation quantizer: pass it through one "
                           f"(e.g. self.act(x + y)); {ACT_FIX}")

    def append(self, layer: Layer, sources: tuple[str, ...]) -> None:
        """Add a finished IR layer reading ``sources``; ``inputs`` stays empty when that is the
        layer before it (so a chain's IR is what it always was)."""
        default = (self.layers[-1].name,) if self.layers else (INPUT,)
        if sources != default or isinstance(layer, MergeLayer):
            layer.inputs = tuple(sources)
        self.layers.append(layer)
        self.source = layer.name

    def add_dense(self, name: str, w_int: np.ndarray, w_scale: np.ndarray, scheme: np.ndarray, bits: int,
                  bias: np.ndarray, row_bits: np.ndarray | None = None) -> None:
        """Open a dense layer from torch-layout (rows, in_features) integer weights."""
        self.open_compute(name)
        if int(np.prod(self.shape)) != w_int.shape[1]:
            raise MSQError(f"layer '{name}' expects {w_int.shape[1]} inputs, the stream has {self.shape}")
        if self.torch_chw is not None:  # torch flattened (C, H, W); the stream is (H, W, C)
            c, h, w = self.torch_chw
            w_int = w_int.reshape(-1, c, h, w).transpose(0, 2, 3, 1).reshape(len(w_int), -1)
            self.torch_chw = None
        self.pending = PendingLayer(self.ir_name("dense"), "dense", (int(np.prod(self.shape)),), (len(w_int),),
                                    self.fmt, bits, scheme, w_int, w_scale, bias, row_bits=row_bits,
                                    source=self.source)
        self.shape = self.pending.out_shape

    def add_conv(self, name: str, w_int: np.ndarray, w_scale: np.ndarray, scheme: np.ndarray, bits: int,
                 bias: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int],
                 padding: tuple[int, int], row_bits: np.ndarray | None = None) -> None:
        """Open a conv layer from torch-layout (rows, C, kh, kw) integer weights."""
        self.open_compute(name)
        shape = self.shape
        limits.check_geometry(kernel, stride, padding, f"layer '{name}'")
        if len(shape) != 3 or w_int.shape[1:] != (shape[2],) + tuple(kernel):
            raise MSQError(f"layer '{name}': weights {w_int.shape} do not fit a {kernel} kernel on the stream {shape}")
        ho = (shape[0] + 2 * padding[0] - kernel[0]) // stride[0] + 1
        wo = (shape[1] + 2 * padding[1] - kernel[1]) // stride[1] + 1
        self.pending = PendingLayer(self.ir_name("conv"), "conv", shape, (ho, wo, len(w_int)), self.fmt, bits,
                                    scheme, w_int.transpose(0, 2, 3, 1).copy(), w_scale, bias,
                                    geometry={"kernel": kernel, "stride": stride, "padding": padding},
                                    row_bits=row_bits, source=self.source)
        self.shape = self.pending.out_shape

    def close(self, name: str, out_fmt: ActFormat, relu: bool, rounding: str = "half_up") -> None:
        """The activation quantizer ``name`` ends the pending compute layer."""
        relu = relu or self.relu
        if self.pending is None and self.merge is None:
            raise MSQError(f"layer '{name}': an activation quantizer must follow a Linear or Conv2d layer"
                           " (or a residual add / concat)")
        if relu and out_fmt.signed:
            raise MSQError(f"layer '{name}': a ReLU must use an unsigned quantizer")
        if self.merge is not None:
            self.append(merge_layer(self.merge, out_fmt, name), self.merge.sources)
        else:
            self.append(close_layer(self.pending, out_fmt, relu, rounding), (self.pending.source,))
        self.fmt, self.pending, self.merge, self.relu = out_fmt, None, None, False

    def add_pool(self, name: str, module: nn.MaxPool2d | nn.AvgPool2d) -> None:
        self.require_quantized(name)
        layer = pool_layer(module, name, self.shape, self.fmt, self.pending)
        layer.name = self.ir_name(layer.kind)
        self.append(layer, (self.source,))
        self.shape = layer.out_shape

    def flatten(self) -> None:
        if len(self.shape) == 3:
            self.torch_chw = (self.shape[2], self.shape[0], self.shape[1])
        self.shape = (int(np.prod(self.shape)),)


def _linear(st: Stream, name: str, module: QuantLinear) -> None:
    w_int, w_scale, scheme, bits, row_bits = _quantized_weight(module, name)
    st.add_dense(name, w_int, w_scale, scheme, bits, _bias(module, len(w_int)), row_bits)


def _conv(st: Stream, name: str, module: QuantConv2d) -> None:
    w_int, w_scale, scheme, bits, row_bits = _quantized_weight(module, name)
    if module.groups != 1 or _pair(module.dilation, "dilation", name) != (1, 1):
        raise MSQError(f"layer '{name}': only ungrouped, undilated Conv2d on images is supported")
    if isinstance(module.padding, str):
        raise MSQError(f"layer '{name}': padding must be integers, got {module.padding!r}")
    st.add_conv(name, w_int, w_scale, scheme, bits, _bias(module, len(w_int)),
                _pair(module.kernel_size, "kernel_size", name), _pair(module.stride, "stride", name),
                _pair(module.padding, "padding", name), row_bits)


def _batchnorm(st: Stream, name: str, module: nn.BatchNorm1d | nn.BatchNorm2d) -> None:
    pending = st.pending
    if pending is None or pending.bn_a is not None:
        raise MSQError(f"layer '{name}' (BatchNorm) must directly follow a Linear or Conv2d layer")
    var = module.running_var.double().numpy()
    gamma = module.weight.detach().double().numpy() if module.affine else np.ones_like(var)
    beta = module.bias.detach().double().numpy() if module.affine else np.zeros_like(var)
    pending.bn_a = gamma / np.sqrt(var + module.eps)
    pending.bn_c = beta - module.running_mean.double().numpy() * pending.bn_a


def _activation(st: Stream, name: str, module: QuantReLU | QuantIdentity) -> None:
    st.close(name, act_format(module, name), isinstance(module, QuantReLU))


def _pooling(st: Stream, name: str, module: nn.MaxPool2d | nn.AvgPool2d) -> None:
    st.add_pool(name, module)


def _flatten(st: Stream, name: str, module: nn.Flatten) -> None:
    st.flatten()


# One handler per module type, in the order they are tried; a new layer type adds a row.
HANDLERS = (
    (QuantLinear, _linear),
    (QuantConv2d, _conv),
    ((nn.BatchNorm1d, nn.BatchNorm2d), _batchnorm),
    ((QuantReLU, QuantIdentity), _activation),
    ((nn.MaxPool2d, nn.AvgPool2d), _pooling),
    (nn.Flatten, _flatten),
)


def merge_layer(m: PendingMerge, out_fmt: ActFormat, quant: str) -> MergeLayer:
    """The add/concat ``m`` closed by the activation quantizer ``quant`` (its output format)."""
    try:
        align, mult, shift, acc_bits, rq_bits = arith.merge_params(m.kind, list(m.fmts), out_fmt)
    except ValueError as exc:
        raise MSQError(f"layer '{quant}' after the {m.kind} '{m.name}': {exc}") from exc
    return MergeLayer(name=m.name, kind=m.kind, inputs=m.sources, in_shapes=m.shapes, in_fmts=m.fmts,
                      out_shape=m.out_shape, out_fmt=out_fmt, align=align, mult=mult, shift=shift,
                      acc_bits=acc_bits, requant_bits=rq_bits)


def export_model(model: nn.Module, input_shape: tuple[int, ...], model_name: str = "model",
                 source: dict | None = None) -> IRModel:
    """Freeze ``model`` (inputs shaped ``input_shape`` in torch layout: (C, H, W) or (F,)) into an IR.
    Any module torch.fx can trace into supported ops exports (msq.frontend.trace)."""
    from msq.frontend.graph_walk import GraphExport

    gm = check_supported(model)
    model.eval()
    walk = GraphExport(gm, tuple(input_shape))
    layers = walk.run()
    return IRModel(name=model_name, input_shape=stream_shape(input_shape), input_fmt=walk.input_fmt,
                   layers=layers, source=source or {})


def stream_shape(input_shape: tuple[int, ...]) -> tuple[int, ...]:
    """Torch (C, H, W) → stream (H, W, C); vectors unchanged."""
    return (input_shape[1], input_shape[2], input_shape[0]) if len(input_shape) == 3 else tuple(input_shape)


def pool_layer(module: nn.Module, name: str, shape: tuple[int, ...], fmt: ActFormat, pending: PendingLayer | None) -> PoolLayer:
    if pending is not None:
        raise MSQError(f"layer '{name}' ({type(module).__name__}) sits between layer '{pending.name}' and its "
                       "activation quantizer; pool after the QuantReLU/QuantIdentity")
    if len(shape) != 3:
        raise MSQError(f"layer '{name}' ({type(module).__name__}) needs an image input, the stream has {shape}")
    kernel = _pair(module.kernel_size, "kernel_size", name)
    stride = _pair(module.stride if module.stride is not None else module.kernel_size, "stride", name)
    if _pair(module.padding, "padding", name) != (0, 0) or module.ceil_mode:
        raise MSQError(f"layer '{name}': pooling must have padding 0 and ceil_mode=False")
    if isinstance(module, nn.MaxPool2d) and _pair(module.dilation, "dilation", name) != (1, 1):
        raise MSQError(f"layer '{name}': dilated max pooling is not supported")
    out = ((shape[0] - kernel[0]) // stride[0] + 1, (shape[1] - kernel[1]) // stride[1] + 1, shape[2])
    layer = PoolLayer(name=name, kind="maxpool" if isinstance(module, nn.MaxPool2d) else "avgpool",
                      in_shape=tuple(shape), out_shape=out, in_fmt=fmt, out_fmt=fmt, kernel=kernel, stride=stride)
    if layer.kind == "avgpool":
        if isinstance(module, nn.AvgPool2d) and module.divisor_override is not None:
            raise MSQError(f"layer '{name}': AvgPool2d divisor_override is not supported")
        area = kernel[0] * kernel[1]
        layer.mult, layer.shift = arith.multiplier(1.0 / area)
        layer.acc_bits = arith.signed_width(area * fmt.lo, area * fmt.hi)
        layer.requant_bits = arith.requant_bits(area * fmt.lo, area * fmt.hi, layer.mult, layer.shift, 0)
    return layer


def export_run(run: str | Path, out: str | Path | None = None, model: str | None = None) -> tuple[IRModel, Path]:
    """Export ``run/model.pt`` to ``out`` (default ``run/ir``); returns the IR and its path.
    ``model`` is the user's model spec from the command line, needed for a run of a user model."""
    from msq.frontend.train import load_run

    name = check_label(Path(run).resolve().name, f"run directory {run}: its name")
    net, ckpt = load_run(run, model)
    settings = ckpt["train_config"]
    source = {"run": str(run), "model": settings["model"], "dataset": settings["dataset"],
              "scheme": settings["scheme"], "wbits": settings["wbits"], "abits": settings["abits"],
              "board": settings["board"], "seed": settings["seed"]}
    ir = export_model(net, tuple(ckpt["data"]["in_shape"]), model_name=name, source=source)
    path = Path(out) if out else Path(run) / "ir"
    save_ir(ir, path)
    return ir, path
