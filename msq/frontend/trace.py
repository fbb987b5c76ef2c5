"""torch.fx tracing of a user's model: any ``nn.Module`` whose forward() is built from the layers
MSQ can freeze, not only an ``nn.Sequential``.

The tracer keeps Brevitas and MSQ layers whole (leaves), so the graph has one node per layer plus
the functions between them (residual ``+``, ``torch.cat``, flatten/view, ``F.relu``). Every node
is classified into an :data:`Op` kind once, here; export, the model checks and the training-time
rewrites read the kinds, never torch's functions. An unsupported op stops with the op, the line of
the model's source that called it and the supported alternative.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import fx, nn

from msq.errors import MSQError
from msq.frontend.models import ACT_FIX, LAYER_FIXES, SUPPORTED_LAYERS

ACTIVATIONS = ("QuantReLU", "QuantIdentity")
MERGE_FIX = "write the residual add as x + y (or torch.add) and the channel concat as torch.cat([x, y], dim=1)"
FUNCTION_KINDS = {operator.add: "add", torch.add: "add", torch.cat: "concat", torch.concat: "concat",
                  torch.flatten: "flatten", F.relu: "relu", torch.relu: "relu"}
METHOD_KINDS = {"add": "add", "view": "flatten", "reshape": "flatten", "flatten": "flatten", "relu": "relu",
                "size": "meta", "dim": "meta"}
FUNCTION_FIXES = {
    "max_pool2d": "use nn.MaxPool2d as a layer", "avg_pool2d": "use nn.AvgPool2d as a layer",
    "adaptive_avg_pool2d": LAYER_FIXES[nn.AdaptiveAvgPool2d], "linear": LAYER_FIXES[nn.Linear],
    "conv2d": LAYER_FIXES[nn.Conv2d], "dropout": LAYER_FIXES[nn.Dropout],
}
SUPPORTED_TEXT = ("supported: " + ", ".join(t.__name__ for t in SUPPORTED_LAYERS)
                  + ", nn.ReLU / F.relu before an activation quantizer, x + y, torch.cat(dim=1), flatten/view")


@dataclass(frozen=True)
class Op:
    """A traced node as MSQ sees it: its kind ('input', 'output', 'layer', 'add', 'concat',
    'flatten', 'relu', 'meta' for size queries) and, for a layer, the module."""

    kind: str
    node: fx.Node
    module: nn.Module | None = None

    @property
    def name(self) -> str:
        return str(self.node.target) if self.module is not None else self.node.name

    def describe(self) -> str:
        """How errors name the node: ``layer 'body.0' (QuantConv2d)`` or ``'add_1' (add)``, then where."""
        what = type(self.module).__name__ if self.module is not None else self.kind
        return f"{'layer ' if self.module is not None else ''}'{self.name}' ({what}){source_line(self.node)}"

    def tensor_args(self) -> list[fx.Node]:
        """The tensors the node reads, in order (torch.cat's list flattened)."""
        args = self.node.args[0] if self.kind == "concat" else self.node.args
        return [a for a in args if isinstance(a, fx.Node) and classify_kind(a) != "meta"]


class MSQTracer(fx.Tracer):
    """Treats every supported layer (and any torch.nn layer, for the error) as one node."""

    def __init__(self) -> None:
        super().__init__()
        self.record_stack_traces = True

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return isinstance(m, SUPPORTED_LAYERS) or super().is_leaf_module(m, module_qualified_name)


def source_line(node: fx.Node) -> str:
    """`` at FILE:LINE `code``` of the model's source that created the node ('' when unknown)."""
    lines = (node.stack_trace or "").strip().splitlines()
    for i in range(len(lines) - 1, -1, -1):
        text = lines[i].strip()
        if text.startswith("File ") and "/torch/" not in text:
            parts = [p.strip() for p in text.split(",")]
            path = parts[0][len("File "):].strip('"').rsplit("/", 1)[-1]
            code = lines[i + 1].strip() if i + 1 < len(lines) else ""
            return f" at {path}:{parts[1].replace('line ', '')}" + (f" `{code}`" if code else "")
    return ""


def trace(model: nn.Module) -> fx.GraphModule:
    """The model's fx graph (sharing the model's modules); an untraceable forward() is an MSQError."""
    try:
        graph = MSQTracer().trace(model)
    except Exception as exc:  # any failure of a user's forward() under symbolic tracing
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise MSQError(f"model {type(model).__name__} cannot be traced by torch.fx ({first}): forward() must "
                       "not branch on tensor values or call non-torch code on tensors") from exc
    gm = fx.GraphModule(model, graph, class_name=type(model).__name__)
    if gm.graph.eliminate_dead_code():
        gm.recompile()
    return gm


def classify_kind(node: fx.Node) -> str | None:
    """The op kind of a non-module node, or None when MSQ does not support it."""
    if node.op in ("placeholder", "output"):
        return "input" if node.op == "placeholder" else "output"
    if node.op == "call_function":
        if node.target is getattr and node.args[1] == "shape" or node.target is operator.getitem and \
                isinstance(node.args[0], fx.Node) and classify_kind(node.args[0]) == "meta":
            return "meta"
        return FUNCTION_KINDS.get(node.target)
    if node.op == "call_method":
        return METHOD_KINDS.get(str(node.target))
    return None


def ops(gm: fx.GraphModule) -> list[Op]:
    """Every node of the graph as an :class:`Op`, in execution order; fails on the first
    unsupported one, naming it, its source line and the supported alternative."""
    modules = dict(gm.named_modules())
    out = []
    for node in gm.graph.nodes:
        if node.op == "call_module":
            op = Op("layer", node, modules[node.target])
            if not isinstance(op.module, SUPPORTED_LAYERS) and not (type(op.module) is nn.ReLU):
                fix = next((f for t, f in LAYER_FIXES.items() if type(op.module) is t), SUPPORTED_TEXT)
                raise MSQError(f"{op.describe()} is not supported: {fix}")
            if type(op.module) is nn.ReLU:
                op = Op("relu", node, op.module)
        else:
            kind = classify_kind(node)
            if kind is None:
                target = getattr(node.target, "__name__", str(node.target))
                fix = FUNCTION_FIXES.get(target, MERGE_FIX if target in ("mul", "sub", "stack") else SUPPORTED_TEXT)
                raise MSQError(f"'{node.name}' ({node.op} {target}){source_line(node)} is not supported: {fix}")
            op = Op(kind, node)
        if op.kind == "relu":
            _check_relu(op)
        out.append(op)
    return out


def _check_relu(op: Op) -> None:
    """A plain ReLU is exported as part of the activation quantizer right after it."""
    users = list(op.node.users)
    if len(users) != 1 or users[0].op != "call_module" or \
            type(op.node.graph.owning_module.get_submodule(users[0].target)).__name__ not in ACTIVATIONS:
        raise MSQError(f"{op.describe()} is not supported: {ACT_FIX}; a ReLU directly before such an activation "
                       "quantizer is accepted")


def check_supported(model: nn.Module) -> fx.GraphModule:
    """Trace ``model`` and fail, naming the op and its supported replacement, on anything export
    cannot freeze; returns the graph."""
    gm = trace(model)
    ops(gm)
    return gm
