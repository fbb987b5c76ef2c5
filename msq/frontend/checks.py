"""Model checks that run before the first epoch, so a model export would refuse fails in seconds
with the layer and the fix, not after a full training run.

In order: supported layers and ops (:func:`msq.frontend.trace.check_supported`, on the torch.fx
graph), shapes (one forward pass of a copy, node by node), quantizers (MSQ weight quantizers, fixed-point
activation quantizers with a power-of-two scale), then the layer order export needs (a dry-run
export of the untrained copy).
"""
from __future__ import annotations

import copy

import torch
from brevitas.core.restrict_val import RestrictValueType
from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear, QuantReLU
from torch import fx, nn

from msq.errors import MSQError
from msq.frontend.models import ACT_FIX, INPUT_FIX, QuantConfig, WEIGHT_FIX, describe
from msq.frontend.quantizer import MSQTensorQuant
from msq.frontend.trace import check_supported, ops, trace
from msq.numerics import RowScheme

PROBE_BATCH = 2  # BatchNorm in eval mode takes any batch; two samples keep batch-dependent bugs visible


def check_model(model: nn.Module, in_shape: tuple[int, ...], classes: int, cfg: QuantConfig) -> None:
    """Every check MSQ can make before training; raises an MSQError naming the layer and the fix."""
    check_supported(model)
    probe = copy.deepcopy(model).eval()  # the probe's forward pass must not touch the model's statistics
    check_shapes(probe, in_shape, classes)
    if not cfg.quantized:
        return
    check_quantizers(model)
    if cfg.scheme != RowScheme.P2:  # the P2 baseline trains but never exports
        from msq.frontend.export import export_model

        try:
            export_model(probe, tuple(in_shape), model_name="check")
        except MSQError as exc:
            raise MSQError(f"model check before training: {exc}") from exc


@torch.no_grad()
def check_shapes(model: nn.Module, in_shape: tuple[int, ...], classes: int) -> None:
    """Run zeros through the traced graph node by node; the first that cannot take its input is named."""
    gm = trace(model)
    by_node = {op.node: op for op in ops(gm)}

    class Probe(fx.Interpreter):
        def run_node(self, n: fx.Node):
            args = [self.env[a] for a in by_node[n].tensor_args()] if n.op != "output" else []
            try:
                return super().run_node(n)
            except (RuntimeError, ValueError, IndexError) as exc:
                op = by_node[n]
                shape = tuple(args[0].shape[1:]) if args else ()
                shapes = " and ".join(str(tuple(a.shape[1:])) for a in args)
                first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
                fix = (_shape_fix(op.module, shape) if op.module is not None else
                       "make the shapes match (give the shortcut a 1x1 projection conv where the shape changes)")
                raise MSQError(f"{op.describe()} cannot take its input, shaped {shapes} per sample ({first}): "
                               f"{fix}") from exc

    x = Probe(gm).run(torch.zeros((PROBE_BATCH,) + tuple(in_shape)))
    if tuple(x.shape[1:]) != (classes,):
        raise MSQError(f"the model outputs {tuple(x.shape[1:])} per sample; the dataset has {classes} classes: "
                       f"make the last layer's out_features {classes}")


def _shape_fix(module: nn.Module, shape: tuple[int, ...]) -> str:
    if isinstance(module, nn.Linear):
        flat = 1
        for d in shape:
            flat *= d
        return (f"set in_features={flat}" if len(shape) == 1 else
                f"put nn.Flatten() before it and set in_features={flat}")
    if isinstance(module, nn.Conv2d):
        return (f"set in_channels={shape[0]}" if len(shape) == 3 else
                f"a conv layer needs (C, H, W) images, not {shape} (use an image dataset or --layout nhwc)")
    if isinstance(module, nn.BatchNorm2d | nn.BatchNorm1d) and shape:
        return f"set num_features={shape[0]}"
    return "make it match the shape the layer before it gives"


def check_quantizers(model: nn.Module) -> None:
    """Quantized training needs an input quantizer, MSQ weight quantizers and fixed-point activations."""
    graph_ops = ops(trace(model))
    first = next(iter(graph_ops[0].node.users), None)
    first_op = next((op for op in graph_ops if op.node is first), None)
    if first_op is None or not isinstance(first_op.module, QuantIdentity):
        what = first_op.describe() if first_op is not None else "the model's output"
        raise MSQError(f"{what} is the first layer: the model must start with an input quantizer; {INPUT_FIX}")
    for name, module in model.named_modules():
        if isinstance(module, (QuantLinear, QuantConv2d)):
            tq = getattr(module.weight_quant, "tensor_quant", None)
            if not isinstance(tq, MSQTensorQuant):
                raise MSQError(f"{describe(name, module)} has no MSQ weight quantizer: pass {WEIGHT_FIX}")
        if isinstance(module, (QuantReLU, QuantIdentity)):
            proxy = module.act_quant
            if not proxy.is_quant_enabled:
                raise MSQError(f"{describe(name, module)} has no activation quantizer: {ACT_FIX}")
            restrict = getattr(proxy.quant_injector, "restrict_scaling_type", None)
            if restrict != RestrictValueType.POWER_OF_TWO:
                raise MSQError(f"{describe(name, module)} uses activation quantizer {proxy.quant_injector.__name__}, "
                               f"whose scale is {getattr(restrict, 'name', restrict)}, not a power of two "
                               f"(the hardware shifts; it cannot multiply by a float scale): {ACT_FIX}")
