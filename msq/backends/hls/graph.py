"""The stream graph of a generated top function: who reads each stream, the width converter of
each edge, and the depth of each skip stream (docs/hls.md § Graphs).

A stream is the network input (:data:`INPUT`) or a layer's output. A stream with several readers
is copied to each by a chain of two-way ``msq::fork`` processes; every edge (stream, reader) gets
its own width converter where the producer's word differs from what the reader takes. Where two
branches from one fork meet again at an add or concat, the fork output into the branch that
delivers sooner (the skip stream) must hold what the longer branch lags behind it, or the fork
stalls on it while the longer branch still waits for input: a deadlock under Vitis DATAFLOW.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from msq.backends.hls.layers import line_rows, out_elems
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
    """Elements per frame of a stream."""
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


def needed_input(layer: Layer, slot: int, n: int, ahead: bool = False) -> int:
    """Elements of input ``slot`` a layer has read when it emits its first ``n`` output elements.
    At least (``ahead`` false): a dense layer all of them; a conv or pool up to the last pixel of
    the window of the output pixel holding element ``n``; an add the same ``n``; a concat its share
    of them. At most (``ahead``): the same, except that a dense or conv layer's mvau emits a pixel
    while it reads the next pixel's first words, and a sliding window reads on, a word a cycle,
    while its line buffer has room: up to the row ``LINES`` below its current window's top."""
    if n <= 0:
        return 0
    if isinstance(layer, ComputeLayer) and layer.kind == "dense":
        return layer.fan_in
    if isinstance(layer, MergeLayer):
        if layer.kind == "add":
            return n
        c0, c1 = (int(shape[-1]) for shape in layer.in_shapes)
        pixels, rest = divmod(n, c0 + c1)
        return pixels * (c0, c1)[slot] + (min(rest, c0) if slot == 0 else max(0, rest - c0))
    pixel = (n - 1) // int(layer.out_shape[-1])
    if ahead and isinstance(layer, ComputeLayer):
        pixel = min(pixel + 1, int(np.prod(layer.out_shape[:-1])) - 1)
    h, w, c = layer.in_shape
    ho, wo = divmod(pixel, layer.out_shape[1])
    ph, pw = getattr(layer, "padding", (0, 0))
    top = ho * layer.stride[0] - ph
    if ahead:
        return min(h, top + line_rows(layer.kernel, layer.stride)) * w * c
    row = min(h - 1, top + layer.kernel[0] - 1)
    col = min(w - 1, wo * layer.stride[1] - pw + layer.kernel[1] - 1)
    return max(1, row * w + col + 1) * c


@dataclass
class Leads:
    """What the streams computed from stream ``fork`` need of it (``ancestors``: per stream, the
    streams it is computed from, itself included), memoized."""

    ir: IRModel
    plan: Plan
    fork: str
    ancestors: dict[str, set[str]]
    known: dict[tuple[str, int, bool], int] = field(default_factory=dict)

    def of(self, src: str, n: int, ahead: bool) -> int:
        """Elements of ``fork`` stream ``src`` needs to deliver its first ``n`` elements (at most
        with ``ahead``, else at least): :func:`needed_input` composed along every path back to
        ``fork``, each stream's need rounded up to its whole words (a reader takes a word at once)."""
        if n <= 0:
            return 0
        words = word_elems(self.ir, self.plan, src)
        n = min(-(-n // words) * words, frame_elems(self.ir, src))
        if src == self.fork:
            return n
        key = (src, n, ahead)
        if key not in self.known:
            i = index_of(self.ir, src)
            self.known[key] = max((self.of(s, needed_input(self.ir.layers[i], slot, n, ahead), ahead)
                                   for slot, s in enumerate(self.ir.inputs_of(i)) if self.fork in self.ancestors[s]),
                                  default=0)
        return self.known[key]


def frame_buffers(ir: IRModel, fork: str, src: str, ancestors: dict[str, set[str]]) -> int:
    """The dense layers between stream ``fork`` and stream ``src`` (``src`` included): each reads a
    whole frame before its first output word, so each holds back one frame of the branch."""
    return sum(1 for layer in ir.layers if isinstance(layer, ComputeLayer) and layer.kind == "dense"
               and layer.name != fork and fork in ancestors[layer.name] and layer.name in ancestors[src])


def skip_depths(ir: IRModel, plan: Plan) -> dict[Edge, tuple[int, str]]:
    """The skip streams: per fork output (an :class:`Edge` of the forked stream) its FIFO depth in
    words and why (docs/hls.md, Graphs). For each add or concat, the fork is the latest stream both
    inputs are computed from. The fork output into input ``s``'s branch needs, over the merge's
    words ``k``, ``lag = max_k (words of the fork input o needs at most for its word k - words
    input s has read at least for word k - 1)``: if the fork stalls on it, full, while the merge
    waits for input ``o``'s word ``k``, input ``o`` has all it needs, so no deadlock. One frame more
    per dense layer on input ``o``'s branch (each holds back a frame) keeps successive frames
    overlapping. Outputs needing no more than :data:`DEFAULT_DEPTH` get no pragma."""
    ancestors = _ancestors(ir)
    readers = edges(ir)
    order = {src: k for k, src in enumerate(readers)}
    out: dict[Edge, tuple[int, str]] = {}
    for j, layer in enumerate(ir.layers):
        if not isinstance(layer, MergeLayer):
            continue
        inputs = ir.inputs_of(j)
        fork = max(ancestors[inputs[0]] & ancestors[inputs[1]], key=order.__getitem__)
        leads = Leads(ir, plan, fork, ancestors)
        word = word_elems(ir, plan, fork)
        frame = frame_elems(ir, fork) // word
        simd, total = plan[layer.name].simd, int(np.prod(layer.out_shape))

        def need(slot: int, ahead: bool) -> np.ndarray:
            """Words of the fork input ``slot`` needs for the merge's first 0, 1, 2, ... words."""
            return np.array([-(-leads.of(inputs[slot], needed_input(layer, slot, n), ahead) // word)
                             for n in range(0, total + 1, simd)])

        for slot, src in enumerate(inputs):
            other = inputs[1 - slot]
            lag = int(np.max(need(1 - slot, True)[1:] - need(slot, False)[:-1]))
            dense = frame_buffers(ir, fork, other, ancestors)
            depth = max(lag, dense * frame)
            if depth <= DEFAULT_DEPTH:
                continue
            why = (f"{depth}: '{layer.name}' reads input {slot} ('{src}') while input {1 - slot} ('{other}') still "
                   f"waits for up to {lag} more words of '{fork}' ({frame} a frame)"
                   + (f"; {dense} dense layer(s) on that branch, a frame each" if dense else ""))
            for edge in readers[fork]:
                on_path = (edge.reader, edge.slot) == (j, slot) or (
                    edge.reader < len(ir.layers) and ir.layers[edge.reader].name in ancestors[src]
                    and ir.layers[edge.reader].name not in ancestors[other])
                if on_path and out.get(edge, (0, ""))[0] < depth:
                    out[edge] = (depth, why)
    return out
