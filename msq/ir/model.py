"""The integer model IR: what every backend reads (docs/ir.md is its specification).

An IR is a directory with ``manifest.json`` (schema, version, input format, the layers in
order with their kinds, shapes, formats and widths) and ``arrays.npz`` (per compute layer: row
schemes, fixed-point integer weights, SP2 codes, bias, requantization multiplier and shift).
Tensors stream channels-last: an image is (H, W, C) and flattens in that order.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from msq import numerics
from msq.names import check_identifier, check_label
from msq.errors import MSQError
from msq.ir import arith
from msq.ir.arith import ActFormat

IR_SCHEMA = "msq-ir"
IR_VERSION = 1
SCHEME_FIXED = 0
SCHEME_SP2 = 1
COMPUTE_KINDS = ("dense", "conv")
POOL_KINDS = ("maxpool", "avgpool")
MERGE_KINDS = ("add", "concat")
INPUT = "input"  # what a layer's ``inputs`` call the network input


class OneInput:
    """A dense, conv or pooling layer reads one stream; it answers ``in_shapes`` and ``in_fmts`` as
    a merge layer does for its two, so code over every layer's inputs needs no case for either."""

    @property
    def in_shapes(self) -> tuple[tuple[int, ...], ...]:
        return (self.in_shape,)

    @property
    def in_fmts(self) -> tuple[ActFormat, ...]:
        return (self.in_fmt,)


@dataclass
class ComputeLayer(OneInput):
    """A dense or conv layer: per-row schemes, integer weights and per-row requantization.

    ``w_int`` is (rows, K) for dense and (rows, kh, kw, C) for conv: row r's weights in the order
    the input stream delivers them. Output row r: ``clamp(round_half_up((Σ x·w_int[r] * mult[r]
    + bias[r]) * 2^-shift[r]), out_fmt.lo, out_fmt.hi)``; ``relu`` layers have an unsigned output.
    ``acc_bits`` holds every partial sum; ``requant_bits`` holds ``acc * mult + bias + rounding``.
    ``row_bits`` (intra-layer multi-precision) gives each row's weight width: ``wbits``, or one
    higher width for fixed-point *high* rows; ``None`` means every row has ``wbits``.
    """

    name: str
    kind: str
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    wbits: int
    in_fmt: ActFormat
    out_fmt: ActFormat
    relu: bool
    acc_bits: int
    requant_bits: int
    scheme: np.ndarray
    w_int: np.ndarray
    bias: np.ndarray
    mult: np.ndarray
    shift: np.ndarray
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    row_bits: np.ndarray | None = None
    inputs: tuple[str, ...] = ()  # empty: the layer before it (see IRModel.inputs_of)

    @property
    def rows(self) -> int:
        return int(self.w_int.shape[0])

    @property
    def fan_in(self) -> int:
        return int(np.prod(self.w_int.shape[1:]))

    @property
    def sp2_rows(self) -> np.ndarray:
        return np.flatnonzero(self.scheme == SCHEME_SP2)

    @property
    def fixed_rows(self) -> np.ndarray:
        """The fixed-point rows at ``wbits`` (high rows excluded: they have their own engine)."""
        return np.flatnonzero((self.scheme == SCHEME_FIXED) & ~self.high_mask)

    @property
    def high_mask(self) -> np.ndarray:
        """Per row, True if it is a high-precision fixed-point row."""
        if self.row_bits is None:
            return np.zeros(self.rows, dtype=bool)
        return np.asarray(self.row_bits) > self.wbits

    @property
    def high_rows(self) -> np.ndarray:
        return np.flatnonzero(self.high_mask)

    @property
    def high_bits(self) -> int:
        """Weight width of the high rows (0 when there are none)."""
        return int(np.max(self.row_bits)) if len(self.high_rows) else 0

    def acc_bits_of(self, rows: np.ndarray) -> int:
        """Accumulator width a group of rows needs (``acc_bits`` holds every row's)."""
        return arith.accumulator_bits(self.w_int[rows], self.in_fmt)

    def group_acc_bits(self, high: bool) -> int:
        """Accumulator width of the high rows (``high``) or of the ``wbits`` rows, what their
        engines are built with: ``acc_bits`` for a layer without high rows (or a group without
        rows), else :meth:`acc_bits_of` the group, so the narrow rows' engines do not widen to
        the high rows' accumulator (and the DSP engine keeps its two-rows-per-DSP packing)."""
        rows = self.high_rows if high else np.flatnonzero(~self.high_mask)
        return self.acc_bits_of(rows) if len(self.high_rows) and len(rows) else self.acc_bits

    def sp2_codes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(sign, k1, k2) arrays shaped like ``w_int``; zero on fixed rows."""
        w = np.where((self.scheme == SCHEME_SP2).reshape((-1,) + (1,) * (self.w_int.ndim - 1)), self.w_int, 0)
        return numerics.sp2_encode_array(w, self.wbits)


@dataclass
class PoolLayer(OneInput):
    """Max or average pooling on integers, channels-last, no padding, floor mode.

    Average pooling sums the window (``acc_bits``), then requantizes with one ``mult``/``shift`` per
    layer and no bias (``requant_bits``).
    """

    name: str
    kind: str
    in_shape: tuple[int, int, int]
    out_shape: tuple[int, int, int]
    in_fmt: ActFormat
    out_fmt: ActFormat
    kernel: tuple[int, int]
    stride: tuple[int, int]
    mult: int = 1
    shift: int = 0
    acc_bits: int = 0
    requant_bits: int = 0
    inputs: tuple[str, ...] = ()


@dataclass
class MergeLayer:
    """Residual ``add`` or channel ``concat`` of the layers named in ``inputs`` (docs/ir.md § add
    and concat): each input ``i`` is shifted left by ``align[i]`` to the common fraction
    ``max(in_fmts[i].frac)``; ``add`` sums them, ``concat`` stacks them along the channels; then one
    requantization ``mult``/``shift`` (no bias) to ``out_fmt``. Every field follows from the formats
    (:func:`msq.ir.arith.merge_params`); the loader checks that it does.
    """

    name: str
    kind: str
    inputs: tuple[str, ...]
    in_shapes: tuple[tuple[int, ...], ...]
    in_fmts: tuple[ActFormat, ...]
    out_shape: tuple[int, ...]
    out_fmt: ActFormat
    align: tuple[int, ...]
    mult: int
    shift: int
    acc_bits: int
    requant_bits: int

    @property
    def in_shape(self) -> tuple[int, ...]:
        return self.in_shapes[0]

    @property
    def in_fmt(self) -> ActFormat:
        return self.in_fmts[0]


Layer = ComputeLayer | PoolLayer | MergeLayer


@dataclass
class IRModel:
    """A whole network: input format and shape, then the layers in stream order."""

    name: str
    input_shape: tuple[int, ...]
    input_fmt: ActFormat
    layers: list[Layer]
    source: dict = field(default_factory=dict)

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.layers[-1].out_shape

    @property
    def output_fmt(self) -> ActFormat:
        return self.layers[-1].out_fmt

    def check_names(self) -> None:
        """The model and layer names follow the name rule (msq.names) and layer names are unique:
        generators call this on any IR, loaded or built in memory, before a name reaches a path."""
        check_label(self.name, "IR field 'name'")
        seen: set[str] = set()
        for i, layer in enumerate(self.layers):
            check_identifier(layer.name, f"IR '{self.name}': layer {i} field 'name'")
            if layer.name in seen:
                raise MSQError(f"IR '{self.name}': layer {i}: duplicate layer name {layer.name!r}")
            seen.add(layer.name)

    def inputs_of(self, i: int) -> tuple[str, ...]:
        """The names of what layer ``i`` reads: its ``inputs``, or by default the layer before it
        (:data:`INPUT`, the network input, for the first)."""
        return self.layers[i].inputs or ((self.layers[i - 1].name,) if i else (INPUT,))

    def consumers(self) -> dict[str, list[tuple[int, int]]]:
        """Who reads each stream: for :data:`INPUT` and every layer name, the (layer index, input
        slot) of each reader, in layer order; the last layer's list is empty (the output stream reads
        it)."""
        out: dict[str, list[tuple[int, int]]] = {INPUT: [], **{layer.name: [] for layer in self.layers}}
        for i in range(len(self.layers)):
            for slot, name in enumerate(self.inputs_of(i)):
                out[name].append((i, slot))
        return out

    def compute_layers(self) -> list[ComputeLayer]:
        return [layer for layer in self.layers if isinstance(layer, ComputeLayer)]

    def quantize_input(self, x: np.ndarray) -> np.ndarray:
        """Real-valued inputs (N, *shape in the dataset's layout) → integer stream tensors.

        ``x_int = clamp(round_half_even(x * 2^frac), lo, hi)``, the rounding of PyTorch and Brevitas
        (this is host-side, before the hardware); images (N, C, H, W) become (N, H, W, C).
        """
        x = np.asarray(x, dtype=np.float64)
        if x.ndim == 4:
            x = x.transpose(0, 2, 3, 1)
        x_int = np.rint(x * 2.0**self.input_fmt.frac)
        x_int = np.clip(x_int, self.input_fmt.lo, self.input_fmt.hi).astype(np.int64)
        return x_int.reshape((len(x_int),) + tuple(self.input_shape))
