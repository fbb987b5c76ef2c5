"""Property-based fuzzing of the loaders of untrusted files (IR, board, dataset): whatever the
bytes, a loader returns a valid object or raises MSQError, never anything else; what it accepts
is usable (docs/security.md)."""
from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

import numpy as np
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from msq import ref
from msq.boards import load_board
from msq.errors import MSQError
from msq.frontend.data import load_npz
from msq.ir import load_ir, save_ir, vectors
from msq.limits import MAX_CLASSES
from msq.names import check_identifier, check_label
from random_models import random_ir

ROOT = Path(__file__).resolve().parent.parent
FUZZ = settings(max_examples=80, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12) | st.sampled_from(["dense", "conv", "maxpool", "x/../../y", "module", "a\nb"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=8)


def _paths(node, prefix=()):
    """Every location in a JSON document, as a tuple of keys and indices."""
    yield prefix
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        yield from _paths(value, prefix + (key,))


def _replace(doc, path, value):
    if not path:
        return value
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return doc


_TEMPLATES: dict[str, Path] = {}


def _template(kind: str) -> Path:
    """A valid IR of each kind, saved once for the whole module."""
    if kind not in _TEMPLATES:
        path = Path(tempfile.mkdtemp(prefix="msq-fuzz-")) / kind
        save_ir(random_ir(5 if kind == "mlp" else 3, kind=kind), path)
        _TEMPLATES[kind] = path
    return _TEMPLATES[kind]


def _accepted_ir_is_usable(path: Path) -> None:
    try:
        ir = load_ir(path)
    except MSQError:
        return
    check_label(ir.name, "name")
    for layer in ir.layers:
        check_identifier(layer.name, "layer")
    out = ref.infer(ir, vectors.extreme_inputs(ir, n_random=2))
    assert out.min() >= ir.output_fmt.lo and out.max() <= ir.output_fmt.hi


@FUZZ
@given(kind=st.sampled_from(["mlp", "cnn"]), data=st.data())
def test_ir_manifest_mutations_load_or_fail_cleanly(tmp_path_factory, kind, data):
    src = _template(kind)
    manifest = json.loads((src / "manifest.json").read_text())
    where = data.draw(st.sampled_from(list(_paths(manifest))))
    manifest = _replace(manifest, where, data.draw(json_values))
    out = tmp_path_factory.mktemp("ir")
    (out / "manifest.json").write_text(json.dumps(manifest))
    (out / "arrays.npz").write_bytes((src / "arrays.npz").read_bytes())
    _accepted_ir_is_usable(out)


arrays = st.tuples(st.sampled_from(["int8", "int64", "uint64", "float64", "bool", "complex64", "<U2"]),
                   st.lists(st.integers(0, 4), max_size=3),
                   st.integers(-2**63, 2**63 - 1))


@FUZZ
@given(data=st.data())
def test_ir_array_mutations_load_or_fail_cleanly(tmp_path_factory, data):
    src = _template("mlp")
    with np.load(src / "arrays.npz") as f:
        content = dict(f)
    key = data.draw(st.sampled_from(sorted(content)))
    dtype, shape, fill = data.draw(arrays)
    if data.draw(st.booleans()):
        content[key] = np.full(content[key].shape, fill % 3 if dtype != "uint64" else fill % 2**64).astype(dtype)
    else:
        content[key] = np.full(shape, fill % 100).astype(dtype)
    out = tmp_path_factory.mktemp("ir")
    (out / "manifest.json").write_text((src / "manifest.json").read_text())
    np.savez(out / "arrays.npz", **content)
    _accepted_ir_is_usable(out)


@FUZZ
@given(raw=st.binary(max_size=400))
def test_ir_files_of_random_bytes_fail_cleanly(tmp_path_factory, raw):
    out = tmp_path_factory.mktemp("ir")
    (out / "manifest.json").write_bytes((_template("mlp") / "manifest.json").read_bytes())
    (out / "arrays.npz").write_bytes(raw)
    _accepted_ir_is_usable(out)
    (out / "manifest.json").write_bytes(raw)
    _accepted_ir_is_usable(out)


BOARD = yaml.safe_load((ROOT / "boards" / "pynq-z2.yaml").read_text())


@FUZZ
@given(edits=st.dictionaries(st.sampled_from([*BOARD, "bram18", "extra"]), json_values, max_size=3),
       drop=st.sets(st.sampled_from(sorted(BOARD)), max_size=2))
def test_board_mutations_load_or_fail_cleanly(tmp_path_factory, edits, drop):
    path = tmp_path_factory.mktemp("b") / "b.yaml"
    path.write_text(yaml.safe_dump({k: v for k, v in {**BOARD, **edits}.items() if k not in drop}))
    try:
        board = load_board(path)
    except MSQError:
        return
    check_label(board.name, "name")
    check_label(board.part, "part")
    assert math.isfinite(board.clock_mhz) and board.clock_mhz > 0
    assert all(type(getattr(board, k)) is int and getattr(board, k) >= 0 for k in ("lut", "ff", "dsp", "bram18"))


@FUZZ
@given(raw=st.binary(max_size=300))
def test_board_files_of_random_bytes_fail_cleanly(tmp_path_factory, raw):
    path = tmp_path_factory.mktemp("b") / "b.yaml"
    path.write_bytes(raw)
    try:
        load_board(path)
    except MSQError:
        pass


dataset_arrays = st.tuples(st.sampled_from(["float32", "float64", "int8", "int64", "uint64", "bool", "complex64"]),
                           st.lists(st.integers(0, 5), min_size=0, max_size=4),
                           st.sampled_from([0.0, 0.5, 1.0, -3.0, 1e9, 2.0**64 - 1, float("nan"), float("inf")]))


@FUZZ
@given(spec=st.dictionaries(st.sampled_from(["x_train", "y_train", "x_test", "y_test"]), dataset_arrays,
                            min_size=3, max_size=4))
def test_dataset_files_load_or_fail_cleanly(tmp_path_factory, spec):
    path = tmp_path_factory.mktemp("d") / "d.npz"
    content = {}
    for key, (dtype, shape, fill) in spec.items():
        with np.errstate(invalid="ignore", over="ignore"):
            content[key] = np.full(shape, fill).astype(dtype)
    np.savez(path, **content)
    try:
        data = load_npz(path)
    except MSQError:
        return
    assert len(data.x_train) >= 1 and len(data.x_test) >= 1
    assert 1 <= data.classes <= MAX_CLASSES
    assert np.isfinite(data.x_train).all() and np.isfinite(data.x_test).all()
