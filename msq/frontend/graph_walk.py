"""The walk of a traced model that export runs: one :class:`~msq.frontend.export.Stream` per
tensor node, in execution order, forked where the graph branches (the forks share the list of
finished IR layers) and joined by a residual add or a channel concat.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
from brevitas.nn import QuantIdentity
from torch import fx

from msq.errors import MSQError
from msq.frontend.export import HANDLERS, PendingMerge, Stream, act_format, stream_shape
from msq.frontend.models import ACT_FIX
from msq.frontend.trace import Op, ops
from msq.ir.arith import ActFormat
from msq.ir.model import Layer


@torch.no_grad()
def _sample_shapes(gm: fx.GraphModule, input_shape: tuple[int, ...]) -> dict[fx.Node, tuple[int, ...]]:
    """Each tensor node's per-sample torch shape, from one forward pass of zeros."""
    shapes: dict[fx.Node, tuple[int, ...]] = {}

    class Recorder(fx.Interpreter):
        def run_node(self, n: fx.Node):
            out = super().run_node(n)
            if isinstance(out, torch.Tensor):
                shapes[n] = tuple(out.shape[1:])
            return out

    Recorder(gm).run(torch.zeros((1,) + tuple(input_shape)))
    return shapes


class GraphExport:
    """Walks the traced graph once, in execution order, keeping a :class:`Stream` per tensor node
    (forks share the list of finished IR layers)."""

    def __init__(self, gm: fx.GraphModule, input_shape: tuple[int, ...]):
        self.gm = gm
        self.ops = ops(gm)
        self._shapes: dict[fx.Node, tuple[int, ...]] | None = None
        self.input_shape = input_shape
        self.values: dict[fx.Node, Stream] = {}
        self.input_fmt: ActFormat | None = None

    def run(self) -> list[Layer]:
        """The IR layers in execution order (a traced graph ends with its output node)."""
        for op in self.ops[:-1]:
            getattr(self, f"_{op.kind}")(op)
        return self._output(self.ops[-1])

    def shape(self, node: fx.Node) -> tuple[int, ...]:
        """A node's per-sample torch shape (one forward pass, run only when a view or cat needs it)."""
        if self._shapes is None:
            try:
                self._shapes = _sample_shapes(self.gm, self.input_shape)
            except (RuntimeError, ValueError, IndexError) as exc:
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
                raise MSQError(f"the model cannot run on inputs shaped {self.input_shape} ({first})") from exc
        return self._shapes[node]

    def _arg(self, op: Op) -> Stream:
        args = op.tensor_args()
        if len(args) != 1:
            raise MSQError(f"{op.describe()} must take one tensor, got {len(args)}")
        st = self.values[args[0]]
        if (st.pending is not None or st.merge is not None or st.relu) and len(args[0].users) > 1:
            raise MSQError(f"'{args[0].name}' is used {len(args[0].users)} times before its activation quantizer: "
                           f"quantize it once and use the quantized value; {ACT_FIX}")
        return replace(st)

    def _input(self, op: Op) -> None:
        users = list(op.node.users)
        if any(o.kind == "input" and o.node is not op.node for o in self.ops):
            raise MSQError("the model's forward() must take one input tensor")
        if len(users) != 1 or users[0].op != "call_module" or \
                not isinstance(op.node.graph.owning_module.get_submodule(users[0].target), QuantIdentity):
            raise MSQError("the model must start with a QuantIdentity input quantizer")

    def _layer(self, op: Op) -> None:
        arg = op.tensor_args()[0] if op.tensor_args() else None
        if arg is not None and arg.op == "placeholder":  # the input quantizer opens the stream
            self.input_fmt = act_format(op.module, op.name)
            self.values[op.node] = Stream(shape=stream_shape(self.input_shape), fmt=self.input_fmt)
            return
        st = self._arg(op)
        handler = next(fn for types, fn in HANDLERS if isinstance(op.module, types))
        handler(st, op.name, op.module)
        self.values[op.node] = st

    def _relu(self, op: Op) -> None:
        st = self._arg(op)
        if st.pending is None and st.merge is None:
            raise MSQError(f"{op.describe()} must directly follow a Linear or Conv2d layer or an add/concat "
                           f"(before their activation quantizer); {ACT_FIX}")
        st.relu = True
        self.values[op.node] = st

    def _flatten(self, op: Op) -> None:
        st = self._arg(op)
        st.require_quantized(op.name)
        shape = self.shape(op.node)
        if shape != (int(np.prod(st.shape)),):
            raise MSQError(f"{op.describe()} gives each sample the shape {shape}: only flattening every sample to "
                           "a vector is supported (x.flatten(1), nn.Flatten() or x.view(x.size(0), -1))")
        if st.pending is not None:
            raise MSQError(f"{op.describe()} sits between layer '{st.pending.name}' and its activation quantizer")
        st.flatten()
        self.values[op.node] = st

    def _meta(self, op: Op) -> None:
        pass

    def _add(self, op: Op) -> None:
        self._merge(op, "add")

    def _concat(self, op: Op) -> None:
        dim = op.node.kwargs.get("dim", op.node.args[1] if len(op.node.args) > 1 else 0)
        ndim = len(self.shape(op.node)) + 1
        if dim not in (1, 1 - ndim):
            raise MSQError(f"{op.describe()} concatenates along dim {dim}: only channels (dim=1) are supported")
        self._merge(op, "concat")

    def _merge(self, op: Op, kind: str) -> None:
        args = op.tensor_args()
        if len(args) != 2 or (kind == "add" and (len(op.node.args) != 2 or op.node.kwargs)):
            raise MSQError(f"{op.describe()} must {kind} exactly two tensors (x + y, torch.cat([x, y], dim=1))")
        streams = [self.values[a] for a in args]
        for a, st in zip(args, streams):
            if st.pending is not None:
                raise MSQError(f"{op.describe()} reads layer '{st.pending.name}' before its activation quantizer: "
                               f"quantize each branch first; {ACT_FIX}")
            st.require_quantized(op.name)
            if st.torch_chw is not None:
                raise MSQError(f"{op.describe()} reads a flattened image: {kind} before flattening")
        shapes = tuple(st.shape for st in streams)
        if kind == "add" and shapes[0] != shapes[1]:
            raise MSQError(f"{op.describe()} adds shapes {shapes[0]} and {shapes[1]} (stream order): they must be "
                           "equal; give the shortcut a 1x1 projection conv where the shape changes")
        if kind == "concat" and shapes[0][:-1] != shapes[1][:-1]:
            raise MSQError(f"{op.describe()} concatenates shapes {shapes[0]} and {shapes[1]} (stream order): all "
                           "but the channels must be equal")
        first = streams[0]
        out_shape = shapes[0] if kind == "add" else shapes[0][:-1] + (shapes[0][-1] + shapes[1][-1],)
        st = replace(first, shape=out_shape, pending=None, relu=False, source="")
        st.merge = PendingMerge(first.ir_name(kind), kind, tuple(s.source for s in streams), shapes,
                                tuple(s.fmt for s in streams), out_shape)
        self.values[op.node] = st

    def _output(self, op: Op) -> list[Layer]:
        args = op.tensor_args()
        if len(args) != 1:
            raise MSQError(f"the model must return one tensor, got {len(args)}")
        st = self.values[args[0]]
        if st.pending is not None:
            raise MSQError(f"layer '{st.pending.name}' is not followed by an activation quantizer "
                           "(QuantReLU or QuantIdentity)")
        st.require_quantized("the model's output")
        if not st.layers:
            raise MSQError("the model has no Linear or Conv2d layer to export")
        if st.source != st.layers[-1].name:
            raise MSQError(f"the model's output is layer '{st.source}', not the last one computed "
                           f"('{st.layers[-1].name}'): return the last layer's output")
        return st.layers
