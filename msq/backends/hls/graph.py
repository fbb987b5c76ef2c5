"""The stream graph of a generated top function: who reads each stream, the width converter of
each edge, and the depth of each skip stream (docs/hls.md § Graphs).

A stream is the network input (:data:`INPUT`) or a layer's output. A stream with several readers
is copied to each by a chain of two-way ``msq::fork`` processes; every edge (stream, reader) gets
its own width converter where the producer's word differs from what the reader takes. Where two
branches from one fork meet again at an add or concat, the fork output into the branch that
delivers its first word sooner (the skip stream) must hold one whole frame, or the fork stalls on
it while the longer branch still waits for input: a deadlock under Vitis DATAFLOW.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from msq.backends.hls.layers import out_elems
from msq.ir.model import INPUT, ComputeLayer, IRModel, Layer, MergeLayer
from msq.ir.plan import Plan


DEFAULT_DEPTH = 2  # Vitis HLS's depth of a stream without a STREAM pragma: a skip stream never gets less


@dataclass(frozen=True)
class Edge:
    """One reader of a stream: ``reader`` is a layer index (``slot`` its input), or the number of
    layers for the output port."""

    src: str
    reader: int
    slot: int


@dataclass(frozen=True)
class Regroup:
    """A width converter on an edge: elements per input and per output word, element bits, elements
    per frame."""

    edge: Edge
    n_in: int
    n_out: int
    bits: int
    total: int


def edges(ir: IRModel) -> dict[str, list[Edge]]:
    """Per stream (in stream order: the input, then each layer's output), its readers in layer
    order; the last layer's only reader is the output port."""
    out = {src: [Edge(src, i, slot) for i, slot in readers] for src, readers in ir.consumers().items()}
    out[ir.layers[-1].name] = [Edge(ir.layers[-1].name, len(ir.layers), 0)]
    return out


def index_of(ir: IRModel, src: str) -> int:
    """A stream's producer: the layer index, -1 for the network input."""
    return -1 if src == INPUT else [layer.name for layer in ir.layers].index(src)


def word_elems(ir: IRModel, plan: Plan, src: str) -> int:
    """Elements per word of a stream: the input port's beat, or the layer's output word."""
    if src == INPUT:
        return plan.in_width
    layer = ir.layers[index_of(ir, src)]
    return out_elems(layer, plan[layer.name])


def frame_elems(ir: IRModel, src: str) -> int:
    return int(np.prod(ir.input_shape if src == INPUT else ir.layers[index_of(ir, src)].out_shape))


def regroups(ir: IRModel, plan: Plan) -> list[Regroup]:
    """The width converters of the top function, in stream order. The input port's stream (bytes
    padded) is converted for each reader, and each reader of the output port; between layers a
    converter exists only where the producer's word and the reader's ``simd`` differ."""
    out = []
    for src, readers in edges(ir).items():
        n_in = word_elems(ir, plan, src)
        bits = (ir.input_fmt if src == INPUT else ir.layers[index_of(ir, src)].out_fmt).bits
        for edge in readers:
            port = edge.reader == len(ir.layers)
            n_out = plan.out_width if port else plan[ir.layers[edge.reader].name].simd
            if src == INPUT or port or n_in != n_out:
                out.append(Regroup(edge, n_in, n_out, bits, frame_elems(ir, src)))
    return out


def _ancestors(ir: IRModel) -> dict[str, set[str]]:
    """Per stream, every stream it is computed from, itself included."""
    out: dict[str, set[str]] = {INPUT: {INPUT}}
    for i, layer in enumerate(ir.layers):
        out[layer.name] = {layer.name}.union(*(out[src] for src in ir.inputs_of(i)))
    return out


def needed_input(layer: Layer, slot: int, n: int) -> int:
    """Elements of input ``slot`` a layer reads before it can emit its first ``n`` output elements
    (at pixel granularity): a dense layer all of them; a conv or pool up to the last pixel of the
    window of the output pixel holding element ``n``; an add or concat up to that pixel."""
    if isinstance(layer, ComputeLayer) and layer.kind == "dense":
        return layer.fan_in
    pixel = (n - 1) // int(layer.out_shape[-1])
    if isinstance(layer, MergeLayer):
        return (pixel + 1) * int(layer.in_shapes[slot][-1])
    h, w, c = layer.in_shape
    ho, wo = divmod(pixel, layer.out_shape[1])
    ph, pw = getattr(layer, "padding", (0, 0))
    row = min(h - 1, ho * layer.stride[0] - ph + layer.kernel[0] - 1)
    col = min(w - 1, wo * layer.stride[1] - pw + layer.kernel[1] - 1)
    return max(1, row * w + col + 1) * c


def lead(ir: IRModel, fork: str, src: str, n: int, ancestors: dict[str, set[str]]) -> int:
    """Elements of stream ``fork`` the stream ``src`` (computed from it) needs before it delivers
    its first ``n`` elements: :func:`needed_input` composed along every path back to ``fork``."""
    if src == fork:
        return n
    i = index_of(ir, src)
    return max((lead(ir, fork, s, needed_input(ir.layers[i], slot, n), ancestors)
                for slot, s in enumerate(ir.inputs_of(i)) if fork in ancestors[s]), default=0)


def skip_depths(ir: IRModel, plan: Plan) -> dict[Edge, tuple[int, str]]:
    """The skip streams: per fork output (an :class:`Edge` of the forked stream) its FIFO depth in
    words and why. For each add or concat, the fork is the latest stream both inputs are computed
    from, and each input's lead is what it needs of the fork's stream before each of its pixels
    (:func:`lead`). An input whose lead is at most the other's at every pixel, and below it at some,
    is the shorter branch: the fork outputs into it hold one frame of the forked stream (at least
    :data:`DEFAULT_DEPTH` words). Every
    process handles one frame per call, so with that depth the fork never waits on the skip within
    a frame and the longer branch always receives the whole frame it needs (a dense layer on it
    needs all of it before its first word). Where neither lead bounds the other, both branches get
    the depth; equal leads need none."""
    ancestors = _ancestors(ir)
    order = {src: k for k, src in enumerate(edges(ir))}
    out: dict[Edge, tuple[int, str]] = {}
    for j, layer in enumerate(ir.layers):
        if not isinstance(layer, MergeLayer):
            continue
        inputs = ir.inputs_of(j)
        fork = max(ancestors[inputs[0]] & ancestors[inputs[1]], key=order.__getitem__)
        pixels = range(1, int(np.prod(layer.out_shape[:-1])) + 1)
        leads = [np.array([lead(ir, fork, src, p * int(layer.in_shapes[slot][-1]), ancestors) for p in pixels])
                 for slot, src in enumerate(inputs)]
        words = max(frame_elems(ir, fork) // word_elems(ir, plan, fork), DEFAULT_DEPTH)
        for slot, src in enumerate(inputs):
            mine, other = leads[slot], leads[1 - slot]
            if np.all(mine >= other):
                continue
            why = (f"{words}, one frame of '{fork}': '{layer.name}' input {slot} ('{src}') needs {mine[0]} "
                   f"element(s) of '{fork}' before its first word, input {1 - slot} ('{inputs[1 - slot]}') {other[0]}")
            for edge in edges(ir)[fork]:
                on_path = (edge.reader, edge.slot) == (j, slot) or (
                    edge.reader < len(ir.layers) and ir.layers[edge.reader].name in ancestors[src]
                    and ir.layers[edge.reader].name not in ancestors[inputs[1 - slot]])
                if on_path and out.get(edge, (0, ""))[0] < words:
                    out[edge] = (words, why)
    return out
