"""Saving and loading the IR, with validation that names the layer and field at fault.

Writing is atomic: both files are written to a temporary directory beside the target, which is
then renamed into place (an existing IR is replaced only once the new one is complete).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from msq import atomic, limits, numerics
from msq.errors import MSQError
from msq.names import check_identifier, check_label
from msq.ir import arith
from msq.ir.arith import ActFormat
from msq.ir.model import (COMPUTE_KINDS, INPUT, IR_SCHEMA, IR_VERSION, MERGE_KINDS, POOL_KINDS, SCHEME_FIXED,
                          SCHEME_SP2, ComputeLayer, IRModel, Layer, MergeLayer, PoolLayer)

MANIFEST = "manifest.json"
ARRAYS = "arrays.npz"
_ROW_ARRAYS = ("scheme", "bias", "mult", "shift")
_CODE_ARRAYS = ("fixed", "sp2_sign", "sp2_k1", "sp2_k2")


def _layer_manifest(layer: Layer) -> dict[str, Any]:
    if isinstance(layer, MergeLayer):
        return {"name": layer.name, "kind": layer.kind, "inputs": list(layer.inputs),
                "in_shapes": [list(s) for s in layer.in_shapes], "in_fmts": [f.as_dict() for f in layer.in_fmts],
                "out_shape": list(layer.out_shape), "out_fmt": layer.out_fmt.as_dict(), "align": list(layer.align),
                "mult": layer.mult, "shift": layer.shift, "acc_bits": layer.acc_bits,
                "requant_bits": layer.requant_bits}
    entry: dict[str, Any] = {"name": layer.name, "kind": layer.kind, "in_shape": list(layer.in_shape),
                             "out_shape": list(layer.out_shape), "in_fmt": layer.in_fmt.as_dict(),
                             "out_fmt": layer.out_fmt.as_dict()}
    if isinstance(layer, ComputeLayer):
        entry.update(wbits=layer.wbits, relu=layer.relu, acc_bits=layer.acc_bits, requant_bits=layer.requant_bits,
                     sp2_rows=int(len(layer.sp2_rows)), fixed_rows=int(len(layer.fixed_rows)))
        if layer.high_bits:
            entry.update(high_bits=layer.high_bits, high_rows=int(len(layer.high_rows)))
        if layer.kind == "conv":
            entry.update(kernel=list(layer.kernel), stride=list(layer.stride), padding=list(layer.padding))
    else:
        entry.update(kernel=list(layer.kernel), stride=list(layer.stride))
        if layer.kind == "avgpool":
            entry.update(mult=layer.mult, shift=layer.shift, acc_bits=layer.acc_bits,
                         requant_bits=layer.requant_bits)
    if layer.inputs:
        entry["inputs"] = list(layer.inputs)
    return entry


def _layer_arrays(layer: ComputeLayer) -> dict[str, np.ndarray]:
    sp2 = (layer.scheme == SCHEME_SP2).reshape((-1,) + (1,) * (layer.w_int.ndim - 1))
    sign, k1, k2 = layer.sp2_codes()
    arrays = {"scheme": layer.scheme, "bias": layer.bias, "mult": layer.mult, "shift": layer.shift,
              "fixed": np.where(sp2, 0, layer.w_int), "sp2_sign": sign, "sp2_k1": k1, "sp2_k2": k2}
    if layer.high_bits:
        arrays["row_bits"] = layer.row_bits
    return {f"{layer.name}/{key}": np.asarray(value, dtype=np.int64) for key, value in arrays.items()}


def save_ir(ir: IRModel, path: str | Path) -> None:
    """Write ``path/manifest.json`` and ``path/arrays.npz`` atomically (as one directory)."""
    path = Path(path)
    ir.check_names()
    manifest = {"schema": IR_SCHEMA, "version": IR_VERSION, "name": ir.name, "source": ir.source,
                "input": {"shape": list(ir.input_shape), "fmt": ir.input_fmt.as_dict()},
                "output": {"shape": list(ir.output_shape), "fmt": ir.output_fmt.as_dict()},
                "layers": [_layer_manifest(layer) for layer in ir.layers]}
    arrays: dict[str, np.ndarray] = {}
    for layer in ir.compute_layers():
        arrays.update(_layer_arrays(layer))
    with atomic.atomic_dir(path) as tmp:
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        np.savez_compressed(tmp / ARRAYS, **arrays)


class _Reader:
    """Field access with errors that say which file, layer and field is wrong."""

    def __init__(self, path: Path):
        self.path = path

    def fail(self, where: str, msg: str) -> MSQError:
        return MSQError(f"IR {self.path}: {where}: {msg}")

    def get(self, obj: dict, key: str, where: str) -> Any:
        if not isinstance(obj, dict) or key not in obj:
            raise self.fail(where, f"missing field '{key}'")
        return obj[key]

    def int_(self, obj: dict, key: str, where: str, lo: int | None = None, hi: int | None = None) -> int:
        value = self.get(obj, key, where)
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.fail(where, f"field '{key}' must be an integer, got {value!r}")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise self.fail(where, f"field '{key}'={value} is out of range [{lo}, {hi}]")
        return value

    def shape(self, obj: dict, key: str, where: str, ndim: tuple[int, ...]) -> tuple[int, ...]:
        value = self.get(obj, key, where)
        if (not isinstance(value, list) or len(value) not in ndim
                or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)):
            raise self.fail(where, f"field '{key}' must be a list of {' or '.join(map(str, ndim))} "
                                   f"positive integers, got {value!r}")
        return tuple(value)

    def pair(self, obj: dict, key: str, where: str, lo: int) -> tuple[int, int]:
        value = self.get(obj, key, where)
        if (not isinstance(value, list) or len(value) != 2
                or not all(isinstance(v, int) and not isinstance(v, bool) and v >= lo for v in value)):
            raise self.fail(where, f"field '{key}' must be two integers >= {lo}, got {value!r}")
        return value[0], value[1]

    def fmt(self, obj: dict, key: str, where: str) -> ActFormat:
        f = self.get(obj, key, where)
        where = f"{where} field '{key}'"
        bits = self.int_(f, "bits", where, numerics.MIN_BITS, 32)
        frac = self.int_(f, "frac", where, -64, 64)
        signed = self.get(f, "signed", where)
        if not isinstance(signed, bool):
            raise self.fail(where, f"field 'signed' must be true or false, got {signed!r}")
        return ActFormat(bits, frac, signed)

    def array(self, npz: limits.NpzArrays, key: str, where: str, shape: tuple[int, ...]) -> np.ndarray:
        """An integer array of the expected shape, checked on its header before its data is read."""
        if key not in npz:
            raise self.fail(where, f"missing array '{key}' in {ARRAYS}")
        got, dtype = npz.headers[key]
        if dtype.kind not in "iu":
            raise self.fail(where, f"array '{key}' must be integer, got {dtype}")
        if got != shape:
            raise self.fail(where, f"array '{key}' has shape {got}, expected {shape}")
        a = npz.read(key)
        if dtype.kind == "u" and a.max(initial=0) > np.iinfo(np.int64).max:
            raise self.fail(where, f"array '{key}' has a value above the int64 range")
        return a.astype(np.int64)


def _conv_out(size: int, k: int, s: int, p: int) -> int:
    return (size + 2 * p - k) // s + 1


def _read_compute(r: _Reader, entry: dict, npz, where: str) -> ComputeLayer:
    kind = entry["kind"]
    name = entry["name"]
    wbits = r.int_(entry, "wbits", where, numerics.MIN_BITS, numerics.MAX_BITS)
    acc_bits = r.int_(entry, "acc_bits", where, 1, arith.MAX_ACC_BITS)
    rq_bits = r.int_(entry, "requant_bits", where, 1, arith.MAX_REQUANT_BITS)
    relu = r.get(entry, "relu", where)
    if not isinstance(relu, bool):
        raise r.fail(where, f"field 'relu' must be true or false, got {relu!r}")
    if kind == "dense":
        in_shape = r.shape(entry, "in_shape", where, (1,))
        out_shape = r.shape(entry, "out_shape", where, (1,))
        rows, w_shape = out_shape[0], (out_shape[0], in_shape[0])
        kernel, stride, padding = (1, 1), (1, 1), (0, 0)
        limits.check_tensor_shape(in_shape, f"IR {r.path}: {where} field 'in_shape'")
        limits.check_tensor_shape(out_shape, f"IR {r.path}: {where} field 'out_shape'")
    else:
        in_shape = r.shape(entry, "in_shape", where, (3,))
        out_shape = r.shape(entry, "out_shape", where, (3,))
        kernel = r.pair(entry, "kernel", where, 1)
        stride = r.pair(entry, "stride", where, 1)
        padding = r.pair(entry, "padding", where, 0)
        limits.check_geometry(kernel, stride, padding, f"IR {r.path}: {where}")
        limits.check_tensor_shape(in_shape, f"IR {r.path}: {where} field 'in_shape'")
        expect = (_conv_out(in_shape[0], kernel[0], stride[0], padding[0]),
                  _conv_out(in_shape[1], kernel[1], stride[1], padding[1]), out_shape[2])
        if out_shape != expect:
            raise r.fail(where, f"field 'out_shape' {list(out_shape)} does not follow from the input and "
                                f"kernel/stride/padding (expected {list(expect)})")
        rows, w_shape = out_shape[2], (out_shape[2], kernel[0], kernel[1], in_shape[2])
        limits.check_tensor_shape(out_shape, f"IR {r.path}: {where} field 'out_shape'")
    if int(np.prod(w_shape)) > limits.MAX_LAYER_WEIGHTS:
        raise r.fail(where, f"{int(np.prod(w_shape)):,} weights, at most {limits.MAX_LAYER_WEIGHTS:,} per layer")
    arrays = {k: r.array(npz, f"{name}/{k}", where, (rows,)) for k in _ROW_ARRAYS}
    codes = {k: r.array(npz, f"{name}/{k}", where, w_shape) for k in _CODE_ARRAYS}
    scheme = arrays["scheme"]
    if not np.isin(scheme, (0, 1)).all():
        raise r.fail(where, "array 'scheme' must hold 0 (fixed) or 1 (SP2) per row")
    sp2 = (scheme == SCHEME_SP2).reshape((-1,) + (1,) * (len(w_shape) - 1))
    row_bits = _read_row_bits(r, entry, npz, where, wbits, scheme)
    bits = np.full(rows, wbits) if row_bits is None else row_bits
    for b in np.unique(bits):
        kmax = numerics.fixed_max(int(b))
        if np.abs(codes["fixed"][bits == b]).max(initial=0) > kmax:
            raise r.fail(where, f"array 'fixed' has a weight outside the {b}-bit range [-{kmax}, {kmax}] "
                                f"on a {b}-bit row")
    m1, m2 = numerics.sp2_split(wbits)
    for key, top in (("sp2_sign", 1), ("sp2_k1", 2**m1 - 1), ("sp2_k2", 2**m2 - 1)):
        if codes[key].min(initial=0) < 0 or codes[key].max(initial=0) > top:
            raise r.fail(where, f"array '{key}' has a code outside [0, {top}] for {wbits}-bit SP2")
    for key in _CODE_ARRAYS:
        stray = (codes[key] != 0) & (sp2 if key == "fixed" else ~sp2)
        if stray.any():
            raise r.fail(where, f"array '{key}' is non-zero on a row of the other scheme")
    sp2_int = numerics.sp2_decode_array(codes["sp2_sign"], codes["sp2_k1"], codes["sp2_k2"], wbits)
    w_int = np.where(sp2, sp2_int, codes["fixed"])
    if np.abs(arrays["mult"]).max(initial=0) >= 2 ** (arith.MULT_BITS - 1):
        raise r.fail(where, f"array 'mult' exceeds the signed {arith.MULT_BITS}-bit range")
    if arrays["shift"].min(initial=0) < 0 or arrays["shift"].max(initial=0) > arith.MAX_SHIFT:
        raise r.fail(where, f"array 'shift' must lie in [0, {arith.MAX_SHIFT}]")
    in_fmt, out_fmt = r.fmt(entry, "in_fmt", where), r.fmt(entry, "out_fmt", where)
    if relu and out_fmt.signed:
        raise r.fail(where, "field 'out_fmt' must be unsigned when 'relu' is true")
    need = arith.accumulator_bits(w_int, in_fmt)
    if acc_bits < need:
        raise r.fail(where, f"field 'acc_bits'={acc_bits} can overflow: the weights and input range need {need}")
    need = arith.requant_bits(*arith.accumulator_range(w_int, in_fmt), arrays["mult"], arrays["shift"], arrays["bias"])
    if rq_bits < need:
        raise r.fail(where, f"field 'requant_bits'={rq_bits} can overflow: the multiplier and bias need {need}")
    return ComputeLayer(name=name, kind=kind, in_shape=in_shape, out_shape=out_shape, wbits=wbits, in_fmt=in_fmt,
                        out_fmt=out_fmt, relu=relu, acc_bits=acc_bits, requant_bits=rq_bits, scheme=scheme,
                        w_int=w_int, bias=arrays["bias"], mult=arrays["mult"], shift=arrays["shift"],
                        kernel=kernel, stride=stride, padding=padding, row_bits=row_bits)


def _read_row_bits(r: _Reader, entry: dict, npz: limits.NpzArrays, where: str, wbits: int,
                   scheme: np.ndarray) -> np.ndarray | None:
    """Per-row weight widths of a layer with high-precision rows (field 'high_bits' and array
    'row_bits' together), or None for a uniform layer."""
    key = f"{entry['name']}/row_bits"
    if "high_bits" not in entry:
        if key in npz:
            raise r.fail(where, "array 'row_bits' needs field 'high_bits' (the high rows' width)")
        return None
    high = r.int_(entry, "high_bits", where, wbits + 1, numerics.MAX_BITS)
    row_bits = r.array(npz, key, where, (len(scheme),))
    if not np.isin(row_bits, (wbits, high)).all() or not (row_bits == high).any():
        raise r.fail(where, f"array 'row_bits' must hold {wbits} (wbits) or {high} (high_bits) per row, "
                            f"with at least one {high}")
    if (scheme[row_bits == high] != SCHEME_FIXED).any():
        raise r.fail(where, f"array 'scheme' marks a {high}-bit high-precision row as SP2: high rows are fixed point")
    return row_bits


def _read_pool(r: _Reader, entry: dict, where: str) -> PoolLayer:
    in_shape = r.shape(entry, "in_shape", where, (3,))
    out_shape = r.shape(entry, "out_shape", where, (3,))
    kernel = r.pair(entry, "kernel", where, 1)
    stride = r.pair(entry, "stride", where, 1)
    limits.check_geometry(kernel, stride, (0, 0), f"IR {r.path}: {where}")
    limits.check_tensor_shape(in_shape, f"IR {r.path}: {where} field 'in_shape'")
    expect = (_conv_out(in_shape[0], kernel[0], stride[0], 0), _conv_out(in_shape[1], kernel[1], stride[1], 0),
              in_shape[2])
    if out_shape != expect:
        raise r.fail(where, f"field 'out_shape' {list(out_shape)} does not follow from the input and "
                            f"kernel/stride (expected {list(expect)})")
    layer = PoolLayer(name=entry["name"], kind=entry["kind"], in_shape=in_shape, out_shape=out_shape,
                      in_fmt=r.fmt(entry, "in_fmt", where), out_fmt=r.fmt(entry, "out_fmt", where),
                      kernel=kernel, stride=stride)
    if layer.kind == "avgpool":
        layer.mult = r.int_(entry, "mult", where, -(2 ** (arith.MULT_BITS - 1)) + 1, 2 ** (arith.MULT_BITS - 1) - 1)
        layer.shift = r.int_(entry, "shift", where, 0, arith.MAX_SHIFT)
        layer.acc_bits = r.int_(entry, "acc_bits", where, 1, arith.MAX_ACC_BITS)
        layer.requant_bits = r.int_(entry, "requant_bits", where, 1, arith.MAX_REQUANT_BITS)
        area = layer.kernel[0] * layer.kernel[1]
        lo, hi = area * layer.in_fmt.lo, area * layer.in_fmt.hi
        if layer.acc_bits < arith.signed_width(lo, hi):
            raise r.fail(where, f"field 'acc_bits'={layer.acc_bits} cannot hold a window sum")
        if layer.requant_bits < arith.requant_bits(lo, hi, layer.mult, layer.shift, 0):
            raise r.fail(where, f"field 'requant_bits'={layer.requant_bits} cannot hold the requantization")
    elif layer.out_fmt != layer.in_fmt:
        raise r.fail(where, "max pooling must keep its input format (field 'out_fmt')")
    return layer


def _read_inputs(r: _Reader, entry: dict, where: str, count: int | None) -> tuple[str, ...]:
    """Field 'inputs' (names of earlier layers or 'input'); optional for a one-input layer."""
    if "inputs" not in entry and count is None:
        return ()
    value = r.get(entry, "inputs", where)
    want = count or 1
    if not isinstance(value, list) or len(value) != want or not all(isinstance(v, str) for v in value):
        raise r.fail(where, f"field 'inputs' must be a list of {want} layer names, got {value!r}")
    return tuple(value)


def _read_merge(r: _Reader, entry: dict, where: str) -> MergeLayer:
    """An add or concat; every number must be the one its formats imply (arith.merge_params)."""
    kind = entry["kind"]
    inputs = _read_inputs(r, entry, where, 2)
    shapes, fmts = r.get(entry, "in_shapes", where), r.get(entry, "in_fmts", where)
    if not isinstance(shapes, list) or len(shapes) != 2 or not isinstance(fmts, list) or len(fmts) != 2:
        raise r.fail(where, "fields 'in_shapes' and 'in_fmts' must list one shape and one format per input")
    in_shapes = tuple(r.shape({"in_shapes": s}, "in_shapes", f"{where} input {j}", (1, 3)) for j, s in enumerate(shapes))
    in_fmts = tuple(r.fmt({"in_fmts": f}, "in_fmts", f"{where} input {j}") for j, f in enumerate(fmts))
    out_shape = r.shape(entry, "out_shape", where, (1, 3))
    for key, shape in (("in_shapes", in_shapes[0]), ("in_shapes", in_shapes[1]), ("out_shape", out_shape)):
        limits.check_tensor_shape(shape, f"IR {r.path}: {where} field '{key}'")
    a, b = in_shapes
    expect = a if kind == "add" else a[:-1] + (a[-1] + b[-1],)
    if (a != b if kind == "add" else a[:-1] != b[:-1]) or out_shape != expect:
        raise r.fail(where, f"fields 'in_shapes' {[list(s) for s in in_shapes]} and 'out_shape' {list(out_shape)} "
                            f"do not make an {kind}" + (" (equal shapes)" if kind == "add" else
                                                        " (equal but for the channels, which add up)"))
    out_fmt = r.fmt(entry, "out_fmt", where)
    try:
        derived = arith.merge_params(kind, list(in_fmts), out_fmt)
    except ValueError as exc:
        raise r.fail(where, str(exc)) from exc
    got = (tuple(r.get(entry, "align", where)) if isinstance(entry.get("align"), list) else entry.get("align"),
           *(r.int_(entry, k, where) for k in ("mult", "shift", "acc_bits", "requant_bits")))
    for key, value, want in zip(("align", "mult", "shift", "acc_bits", "requant_bits"), got, derived):
        if value != want:
            raise r.fail(where, f"field '{key}' is {value!r}; the input and output formats make it {want!r} "
                                "(docs/ir.md: add and concat)")
    return MergeLayer(name=entry["name"], kind=kind, inputs=inputs, in_shapes=in_shapes, in_fmts=in_fmts,
                      out_shape=out_shape, out_fmt=out_fmt, align=derived[0], mult=derived[1], shift=derived[2],
                      acc_bits=derived[3], requant_bits=derived[4])


def _check_links(r: _Reader, layer: Layer, where: str, sources: tuple[str, ...],
                 outputs: dict[str, tuple[tuple[int, ...], ActFormat]]) -> None:
    """Each input a layer names is an earlier layer (or the network input) of its shape and format."""
    for source, in_shape, in_fmt in zip(sources, layer.in_shapes, layer.in_fmts):
        if source not in outputs:
            raise r.fail(where, f"field 'inputs' names {source!r}, which is neither '{INPUT}' nor an earlier layer")
        shape, fmt = outputs[source]
        flat = (int(np.prod(shape)),)
        if in_shape != shape and not (layer.kind == "dense" and in_shape == flat):
            raise r.fail(where, f"field 'in_shape' {list(in_shape)} does not match the previous output "
                                f"{list(shape)} (of '{source}')")
        if in_fmt != fmt:
            raise r.fail(where, f"field 'in_fmt' {in_fmt.as_dict()} does not match the previous output format "
                                f"{fmt.as_dict()} (of '{source}')")


def load_ir(path: str | Path) -> IRModel:
    """Load and validate an IR directory; any inconsistency raises an MSQError naming layer and field."""
    path = Path(path)
    r = _Reader(path)
    if not (path / MANIFEST).is_file():
        raise MSQError(f"IR {path}: no {MANIFEST} (expected a directory written by 'msq export')")
    manifest = atomic.read_json(path / MANIFEST, "expected an IR manifest written by 'msq export'")
    if not isinstance(manifest, dict):
        raise r.fail(MANIFEST, "expected a JSON object")
    if r.get(manifest, "schema", MANIFEST) != IR_SCHEMA:
        raise r.fail(MANIFEST, f"field 'schema' is {manifest['schema']!r}, expected {IR_SCHEMA!r}")
    version = r.get(manifest, "version", MANIFEST)
    if type(version) is not int or version != IR_VERSION:
        raise r.fail(MANIFEST, f"unknown version {version!r}: this MSQ reads version {IR_VERSION}")
    name = check_label(manifest.get("name", path.name), f"IR {path}: {MANIFEST} field 'name'")
    source = manifest.get("source", {})
    if not isinstance(source, dict) or not all(isinstance(v, (str, int, float, bool, type(None)))
                                               for v in source.values()):
        raise r.fail(MANIFEST, "field 'source' must be an object of plain values")
    inp = r.get(manifest, "input", MANIFEST)
    input_shape = r.shape(inp, "shape", "input", (1, 3))
    limits.check_tensor_shape(input_shape, f"IR {path}: input field 'shape'")
    input_fmt = r.fmt(inp, "fmt", "input")
    entries = r.get(manifest, "layers", MANIFEST)
    if not isinstance(entries, list) or not entries or len(entries) > limits.MAX_LAYERS:
        raise r.fail(MANIFEST, f"field 'layers' must be a non-empty list of at most {limits.MAX_LAYERS} layers")
    if not (path / ARRAYS).is_file():
        raise r.fail(ARRAYS, "file is missing")
    layers: list[Layer] = []
    outputs = {INPUT: (input_shape, input_fmt)}
    used: set[str] = set()
    with limits.NpzArrays(path / ARRAYS, "IR") as npz:
        for i, entry in enumerate(entries):
            name_i = check_identifier(r.get(entry, "name", f"layer {i}"), f"IR {path}: layer {i} field 'name'")
            if name_i in outputs:
                raise r.fail(f"layer {i}", f"duplicate layer name {name_i!r}" if name_i != INPUT else
                             f"layer name {INPUT!r} is reserved for the network input")
            where = f"layer {i} '{name_i}'"
            kind = r.get(entry, "kind", where)
            if kind in COMPUTE_KINDS:
                layer: Layer = _read_compute(r, entry, npz, where)
            elif kind in POOL_KINDS:
                layer = _read_pool(r, entry, where)
            elif kind in MERGE_KINDS:
                layer = _read_merge(r, entry, where)
            else:
                raise r.fail(where, f"unknown kind {kind!r}: expected one of "
                                    f"{', '.join(COMPUTE_KINDS + POOL_KINDS + MERGE_KINDS)}")
            if not isinstance(layer, MergeLayer):
                layer.inputs = _read_inputs(r, entry, where, None)
            sources = layer.inputs or ((layers[-1].name,) if layers else (INPUT,))
            _check_links(r, layer, where, sources, outputs)
            used.update(sources)
            outputs[name_i] = (layer.out_shape, layer.out_fmt)
            layers.append(layer)
    unused = [layer.name for layer in layers[:-1] if layer.name not in used]
    if unused:
        raise r.fail(MANIFEST, f"layer '{unused[0]}' is never read: every layer but the last (the output) must "
                               "feed a later one")
    return IRModel(name=name, input_shape=input_shape, input_fmt=input_fmt, layers=layers, source=source)
