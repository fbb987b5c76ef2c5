"""The hostile-input battery (docs/security.md): corrupt and hostile IRs, boards, checkpoints,
datasets and command lines, run through every command in-process.

Each case builds its input inside its own directory (beside a copy of a good run with an IR, an
HLS and an RTL project), runs one command and asserts the exit code, the one-line message, that
nothing changed anywhere it can see (no file outside the case, no earlier good output, no
temporary leftover) and, for the size bombs, that the refusal stayed under 200 MiB of
allocations. Kill tests (subprocesses killed with SIGKILL at each rename of a commit) and the
generators' path checks on in-memory IRs follow.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tracemalloc
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner

from msq import atomic
from msq.boards import load_board
from msq.cli import main
from msq.errors import MSQError
from msq.frontend.export import export_run
from msq.frontend.train import TrainConfig, train_run
from msq.ir import load_ir, save_ir
from msq.rundir import RunDir
from random_models import random_ir

ROOT = Path(__file__).resolve().parent.parent
PEAK_LIMIT = 200 * 2**20
BOARD = yaml.safe_load((ROOT / "boards" / "pynq-z2.yaml").read_text())


# --- the good run every case starts from ---------------------------------------------------------

def _tiny_dataset(path: Path, features: int = 6, classes: int = 3) -> Path:
    rng = np.random.default_rng(0)
    x = rng.random((36, features)).astype(np.float32)
    y = (np.arange(36) % classes).astype(np.int64)
    np.savez(path, x_train=x[:24], y_train=y[:24], x_test=x[24:], y_test=y[24:])
    return path


@dataclass(frozen=True)
class Good:
    root: Path
    run: Path
    dataset: Path
    cnn_ir: Path
    bomb: Path  # an .npz member of 10^9 zeros (1 MiB on disk)


def _zeros_member(path: Path, key: str, n: int, chunk: int = 10**6) -> None:
    """An .npz holding one member ``key``: an honest .npy of ``n`` uint8 zeros, deflated (a zip bomb)."""
    head = io.BytesIO()
    np.lib.format.write_array_header_1_0(head, {"descr": "|u1", "fortran_order": False, "shape": (n,)})
    head = head.getvalue()
    raw = lambda: zlib.compressobj(9, zlib.DEFLATED, -15)  # noqa: E731
    c = raw()
    first = c.compress(head) + c.flush(zlib.Z_FULL_FLUSH)
    c = raw()
    block = c.compress(bytes(chunk)) + c.flush(zlib.Z_FULL_FLUSH)
    last = raw().flush(zlib.Z_FINISH)
    crc, zeros = zlib.crc32(head), bytes(chunk)
    for _ in range(n // chunk):
        crc = zlib.crc32(zeros, crc)
    size, usize, name = len(first) + n // chunk * len(block) + len(last), len(head) + n, f"{key}.npy".encode()
    local = struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 8, 0, 33, crc, size, usize, len(name), 0) + name
    central = struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 8, 0, 33, crc, size, usize, len(name),
                          0, 0, 0, 0, 0, 0) + name
    with open(path, "wb") as f:
        f.write(local + first)
        for _ in range(n // chunk):
            f.write(block)
        f.write(last)
        offset = f.tell()
        f.write(central + struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 1, 1, len(central), offset, 0))


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Good:
    root = tmp_path_factory.mktemp("good")
    data = _tiny_dataset(root / "tiny.npz")
    run = root / "run"
    train_run(TrainConfig(model="mlp", dataset=str(data), epochs=1, seed=0), run, progress=False)
    export_run(run)
    rd = RunDir(run)
    rd.write_hls(load_board("pynq-z2"))
    rd.write_rtl()
    save_ir(random_ir(3, kind="cnn"), root / "cnn_ir")
    _zeros_member(root / "bomb.npz", "x_train", 10**9)
    return Good(root, run, data, root / "cnn_ir", root / "bomb.npz")


# --- snapshots: what "nothing changed" means ---------------------------------------------------

def snapshot(*roots: Path) -> dict[str, str]:
    """Every file, directory and link below ``roots`` (hidden ones included) with its content hash."""
    out = {}
    for root in roots:
        for dirpath, dirs, files in os.walk(root):
            for d in dirs:
                out[os.path.join(dirpath, d)] = "dir"
            for f in files:
                p = os.path.join(dirpath, f)
                out[p] = "link:" + os.readlink(p) if os.path.islink(p) else hashlib.sha256(
                    Path(p).read_bytes()).hexdigest()
    return out


def diff(before: dict[str, str], after: dict[str, str]) -> list[str]:
    return sorted({k for k in before.keys() | after.keys() if before.get(k) != after.get(k)})


# --- the case table ----------------------------------------------------------------------------

@dataclass
class Ctx:
    good: Good
    case: Path  # the case's own directory: a copy of the good run in case/run
    outside: Path  # a sibling holding a canary and a would-be victim file; must never change

    @property
    def run(self) -> Path:
        return self.case / "run"

    def file(self, name: str, content: bytes | str) -> Path:
        path = self.case / name
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        return path


@dataclass
class Case:
    id: str
    setup: Callable[[Ctx], list[str]]  # writes the case's inputs, returns the command line
    match: str  # a regex the message must contain
    code: int = 2
    env: dict[str, str] = field(default_factory=dict)


CASES: list[Case] = []


def case(id: str, match: str, code: int = 2, env: dict[str, str] | None = None):
    def add(setup: Callable[[Ctx], list[str]]) -> Callable[[Ctx], list[str]]:
        CASES.append(Case(id, setup, match, code, env or {}))
        return setup
    return add


def _edit_json(path: Path, edit: Callable[[dict], None]) -> None:
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


# IR manifests: every command that reads RUN/ir goes through the same loader; 'msq eval' is the
# cheapest, 'msq rtl' and 'msq hls' add the path and source checks of the generators.

def _layer(i: int, **fields):
    def edit(m: dict) -> None:
        m["layers"][i].update(fields)
    return edit


def _set(**fields):
    return lambda m: m.update(fields)


IR_EDITS: list[tuple[str, Callable[[dict], None], str]] = [
    ("schema", _set(schema="onnx"), "field 'schema'"),
    ("version-true", _set(version=True), "unknown version True"),
    ("version-string", _set(version="1"), "unknown version '1'"),
    ("version-float", _set(version=1.0), "unknown version 1.0"),
    ("version-2", _set(version=2), "unknown version 2"),
    ("name-newline", _set(name="m\nexec touch FILE"), "field 'name'.*not a valid name"),
    ("name-traversal", _set(name="../../x"), "field 'name'.*not a valid name"),
    ("name-absolute", _set(name="/tmp/x"), "field 'name'.*not a valid name"),
    ("name-long", _set(name="m" * 65), "at most 64 characters"),
    ("name-int", _set(name=5), "field 'name'.*not a valid name"),
    ("name-quote", _set(name="a'b"), "not a valid name"),
    ("source-list", _set(source=[1]), "field 'source'"),
    ("source-nested", _set(source={"a": {"b": 1}}), "field 'source'"),
    ("layers-empty", _set(layers=[]), "field 'layers'"),
    ("layers-dict", _set(layers={}), "field 'layers'"),
    ("layers-300", lambda m: m.update(layers=m["layers"] * 100), "at most 256 layers"),
    ("layer-string", lambda m: m["layers"].__setitem__(0, "dense"), "layer 0: missing field 'name'"),
    ("layer-traversal", _layer(0, name="x/../../../name"), "layer 0 field 'name'"),
    ("layer-absolute", _layer(0, name="/abs/name"), "layer 0 field 'name'"),
    ("layer-newline", _layer(1, name="a\nb"), "layer 1 field 'name'"),
    ("layer-verilog-keyword", _layer(0, name="module"), "keyword"),
    ("layer-cpp-keyword", _layer(0, name="class"), "keyword"),
    ("layer-tcl-keyword", _layer(0, name="exec"), "keyword"),
    ("layer-duplicate", lambda m: m["layers"][1].update(name=m["layers"][0]["name"]), "duplicate layer name"),
    ("layer-empty-name", _layer(0, name=""), "layer 0 field 'name'"),
    ("layer-space", _layer(0, name="a b"), "not a valid name"),
    ("layer-unicode", _layer(0, name="lay\u00e9r"), "not a valid name"),
    ("layer-name-int", _layer(0, name=3), "not a valid name"),
    ("layer-name-null", _layer(0, name=None), "not a valid name"),
    ("layer-digit-first", _layer(0, name="1dense"), "not a valid name"),
    ("layer-long", _layer(0, name="d" * 65), "at most 64"),
    ("kind-unknown", _layer(0, kind="lstm"), "unknown kind 'lstm'"),
    ("kind-list", _layer(0, kind=["dense"]), "unknown kind"),
    ("kind-missing", lambda m: m["layers"][0].pop("kind"), "missing field 'kind'"),
    ("wbits-true", _layer(0, wbits=True), "field 'wbits' must be an integer"),
    ("wbits-9", _layer(0, wbits=9), r"field 'wbits'=9 is out of range"),
    ("wbits-float", _layer(0, wbits=4.0), "field 'wbits' must be an integer"),
    ("wbits-string", _layer(0, wbits="4"), "field 'wbits' must be an integer"),
    ("relu-int", _layer(0, relu=1), "field 'relu' must be true or false"),
    ("acc-bits-0", _layer(0, acc_bits=0), "field 'acc_bits'=0 is out of range"),
    ("acc-bits-huge", _layer(0, acc_bits=10**30), "field 'acc_bits'.*out of range"),
    ("acc-bits-short", _layer(0, acc_bits=2), "field 'acc_bits'=2 can overflow"),
    ("requant-bits-63", _layer(0, requant_bits=63), "field 'requant_bits'=63 is out of range"),
    ("in-shape-bool", _layer(0, in_shape=[True]), "field 'in_shape' must be a list"),
    ("in-shape-negative", _layer(0, in_shape=[-6]), "field 'in_shape' must be a list"),
    ("in-shape-zero", _layer(0, in_shape=[0]), "field 'in_shape' must be a list"),
    ("in-shape-huge", _layer(0, in_shape=[10**9]), "field 'in_shape'.*out of bounds"),
    ("in-shape-string", _layer(0, in_shape="6"), "field 'in_shape' must be a list"),
    ("out-shape-mismatch", _layer(0, out_shape=[7]), "shape"),
    ("in-fmt-bits-true", lambda m: m["layers"][0]["in_fmt"].update(bits=True), "field 'bits' must be an integer"),
    ("in-fmt-bits-64", lambda m: m["layers"][0]["in_fmt"].update(bits=64), "field 'bits'=64 is out of range"),
    ("in-fmt-frac-1000", lambda m: m["layers"][0]["in_fmt"].update(frac=1000), "field 'frac'=1000"),
    ("in-fmt-signed-string", lambda m: m["layers"][0]["in_fmt"].update(signed="no"), "field 'signed'"),
    ("in-fmt-missing", lambda m: m["layers"][0].pop("in_fmt"), "missing field 'in_fmt'"),
    ("in-fmt-mismatch", lambda m: m["layers"][0]["in_fmt"].update(frac=m["layers"][0]["in_fmt"]["frac"] + 1),
     "does not match the previous output format"),
    ("input-shape-huge", lambda m: m["input"].update(shape=[10**7]), "input field 'shape'.*out of bounds"),
    ("input-shape-empty", lambda m: m["input"].update(shape=[]), "field 'shape' must be a list"),
    ("input-missing", lambda m: m.pop("input"), "missing field 'input'"),
    ("wbits-nan", _layer(0, wbits=float("nan")), "field 'wbits' must be an integer"),
    ("bits-infinite", lambda m: m["input"]["fmt"].update(bits=float("inf")), "field 'bits' must be an integer"),
]


def _ir_edit_case(edit: Callable[[dict], None]) -> Callable[[Ctx], list[str]]:
    def setup(ctx: Ctx) -> list[str]:
        _edit_json(ctx.run / "ir" / "manifest.json", edit)
        return ["eval", str(ctx.run)]
    return setup


for _id, _edit, _match in IR_EDITS:
    CASES.append(Case(f"ir-{_id}", _ir_edit_case(_edit), _match))

IR_FILES: list[tuple[str, Callable[[Path], None], str]] = [
    ("manifest-not-utf8", lambda ir: (ir / "manifest.json").write_bytes(b'{"name": "\xff\xfe"}'), "not UTF-8"),
    ("manifest-not-json", lambda ir: (ir / "manifest.json").write_text("{nope"), "not valid JSON"),
    ("manifest-nested", lambda ir: (ir / "manifest.json").write_text("[" * 100000 + "]" * 100000),
     "nested too deeply"),
    ("manifest-empty", lambda ir: (ir / "manifest.json").write_text(""), "not valid JSON"),
    ("manifest-list", lambda ir: (ir / "manifest.json").write_text("[]"), "expected a JSON object"),
    ("manifest-missing", lambda ir: (ir / "manifest.json").unlink(), "no manifest.json"),
    ("manifest-huge", lambda ir: (ir / "manifest.json").write_bytes(b" " * (17 * 2**20)), "above the limit"),
    ("arrays-missing", lambda ir: (ir / "arrays.npz").unlink(), "arrays.npz: file is missing"),
    ("arrays-garbage", lambda ir: (ir / "arrays.npz").write_bytes(os.urandom(4096)), "not a readable .npz"),
    ("arrays-truncated", lambda ir: (ir / "arrays.npz").write_bytes((ir / "arrays.npz").read_bytes()[:300]),
     "not a readable .npz"),
    ("arrays-empty", lambda ir: (ir / "arrays.npz").write_bytes(b""), "not a readable .npz"),
]


def _ir_file_case(edit: Callable[[Path], None]) -> Callable[[Ctx], list[str]]:
    def setup(ctx: Ctx) -> list[str]:
        edit(ctx.run / "ir")
        return ["eval", str(ctx.run)]
    return setup


for _id, _edit, _match in IR_FILES:
    CASES.append(Case(f"ir-{_id}", _ir_file_case(_edit), _match))


def _arrays(ctx: Ctx) -> tuple[Path, dict[str, np.ndarray], str]:
    path = ctx.run / "ir" / "arrays.npz"
    with np.load(path) as f:
        arrays = dict(f)
    return path, arrays, json.loads((ctx.run / "ir" / "manifest.json").read_text())["layers"][0]["name"]


def _array_case(edit: Callable[[dict[str, np.ndarray], str], None]) -> Callable[[Ctx], list[str]]:
    def setup(ctx: Ctx) -> list[str]:
        path, arrays, first = _arrays(ctx)
        edit(arrays, first)
        np.savez(path, **arrays)
        return ["eval", str(ctx.run)]
    return setup


def _put(key: str, value: Callable[[np.ndarray], np.ndarray]) -> Callable[[dict, str], None]:
    def edit(arrays: dict, first: str) -> None:
        arrays[f"{first}/{key}"] = value(arrays[f"{first}/{key}"])
    return edit


ARRAY_EDITS = [
    ("missing-key", lambda a, first: a.pop(f"{first}/mult"), "missing array '.*/mult'"),
    ("float-dtype", _put("bias", lambda v: v.astype(np.float64)), "must be integer, got float64"),
    ("string-dtype", _put("bias", lambda v: v.astype("U4")), "dtype <U4 is not allowed"),
    ("object-dtype", _put("bias", lambda v: v.astype(object)), "dtype object is not allowed"),
    ("complex-dtype", _put("bias", lambda v: v.astype(np.complex128)), "dtype complex128 is not allowed"),
    ("wrong-shape", _put("bias", lambda v: v[:-1]), "has shape"),
    ("mult-uint64-wraps", _put("mult", lambda v: np.full(v.shape, 2**64 - 1, dtype=np.uint64)),
     "above the int64 range"),
    ("mult-range", _put("mult", lambda v: np.full_like(v, 2**15)), "exceeds the signed 16-bit range"),
    ("shift-negative", _put("shift", lambda v: np.full_like(v, -1)), "array 'shift' must lie in"),
    ("shift-huge", _put("shift", lambda v: np.full_like(v, 99)), "array 'shift' must lie in"),
    ("scheme-2", _put("scheme", lambda v: np.full_like(v, 2)), "array 'scheme' must hold 0"),
    ("fixed-range", _put("fixed", lambda v: v + 10**6), "array 'fixed' has a weight outside"),
    ("sp2-code-range", _put("sp2_k1", lambda v: v + 1000), "array 'sp2_k1' has a code outside"),
    ("bool-dtype", _put("scheme", lambda v: v.astype(bool)), "must be integer, got bool"),
    ("three-dims", _put("bias", lambda v: v.reshape(1, 1, -1)), "has shape"),
]
for _id, _edit, _match in ARRAY_EDITS:
    CASES.append(Case(f"ir-array-{_id}", _array_case(_edit), _match))


@case("ir-array-header-claims-1e9-rows", "holds .* bytes \\(truncated or corrupt\\)")
def _(ctx: Ctx) -> list[str]:
    """One member's header claims 10^9 rows; its data is the real few rows."""
    path, arrays, first = _arrays(ctx)
    head = io.BytesIO()
    np.lib.format.write_array_header_1_0(head, {"descr": "<i8", "fortran_order": False, "shape": (10**9,)})
    with zipfile.ZipFile(path, "w") as zf:
        for key, value in arrays.items():
            buf = io.BytesIO()
            np.save(buf, value)
            lie = head.getvalue() + value.astype(np.int64).tobytes()
            zf.writestr(f"{key}.npy", lie if key == f"{first}/bias" else buf.getvalue())
    return ["eval", str(ctx.run)]


@case("ir-array-bad-magic", "not a valid .npy array header")
def _(ctx: Ctx) -> list[str]:
    path, _, _ = _arrays(ctx)
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr("junk.npy", b"NOTNUMPY" + bytes(100))
    return ["eval", str(ctx.run)]


@case("ir-array-bad-crc", "cannot read it|not a readable|not a valid .npy")
def _(ctx: Ctx) -> list[str]:
    path = ctx.run / "ir" / "arrays.npz"
    raw = bytearray(path.read_bytes())
    end = raw.index(b"PK\x01\x02")  # corrupt the last bytes of the compressed data before the directory
    for i in range(end - 40, end - 8):
        raw[i] ^= 0x5A
    path.write_bytes(bytes(raw))
    return ["eval", str(ctx.run)]


@case("ir-array-zip-bomb", "above the limit of 64 MiB", env={"MSQ_MAX_MEMORY_MB": "64"})
def _(ctx: Ctx) -> list[str]:
    shutil.copyfile(ctx.good.bomb, ctx.run / "ir" / "arrays.npz")
    return ["eval", str(ctx.run)]


@case("ir-array-zip-bomb-wrong-shape", "array '.*' has shape \\(1000000000,\\), expected")
def _(ctx: Ctx) -> list[str]:
    _, _, first = _arrays(ctx)
    _zeros_member(ctx.run / "ir" / "arrays.npz", f"{first}/scheme", 10**9)
    return ["eval", str(ctx.run)]


# conv and pooling geometry on a CNN IR
def _cnn_case(edit: Callable[[dict], None]) -> Callable[[Ctx], list[str]]:
    def setup(ctx: Ctx) -> list[str]:
        shutil.rmtree(ctx.run / "ir")
        shutil.copytree(ctx.good.cnn_ir, ctx.run / "ir")
        _edit_json(ctx.run / "ir" / "manifest.json", edit)
        return ["eval", str(ctx.run)]
    return setup


def _conv(**fields):
    def edit(m: dict) -> None:
        next(layer for layer in m["layers"] if layer["kind"] == "conv").update(fields)
    return edit


CNN_EDITS = [
    ("padding-300", _conv(padding=[300, 300]), r"field 'padding' \[300, 300\] must lie in \[0, kernel\]"),
    ("padding-negative", _conv(padding=[-1, 0]), "field 'padding' must be two integers >= 0"),
    ("padding-bool", _conv(padding=[True, 0]), "field 'padding' must be two integers"),
    ("kernel-0", _conv(kernel=[0, 1]), "field 'kernel' must be two integers >= 1"),
    ("kernel-100", _conv(kernel=[100, 100]), r"field 'kernel' \[100, 100\] must lie in \[1, 16\]"),
    ("stride-0", _conv(stride=[0, 1]), "field 'stride' must be two integers >= 1"),
    ("stride-1000", _conv(stride=[1000, 1]), r"field 'stride' \[1000, 1\] must lie in \[1, 16\]"),
    ("kernel-three", _conv(kernel=[1, 1, 1]), "field 'kernel' must be two integers"),
    ("in-shape-huge", _conv(in_shape=[5000, 5000, 3]), "field 'in_shape'.*out of bounds"),
    ("in-shape-2d", _conv(in_shape=[8, 8]), "field 'in_shape' must be a list of 3"),
    ("out-shape-wrong", lambda m: _conv(out_shape=[o + 1 for o in next(
        layer for layer in m["layers"] if layer["kind"] == "conv")["out_shape"]])(m), "does not follow from the input"),
    ("input-shape-huge", lambda m: m["input"].update(shape=[4096, 4096, 4]), "input field 'shape'.*out of bounds"),
]
for _id, _edit, _match in CNN_EDITS:
    CASES.append(Case(f"cnn-{_id}", _cnn_case(_edit), _match))


# boards: --board FILE of 'msq plan' (and the name on the command line)
BOARD_EDITS: list[tuple[str, object, str]] = [
    ("name-newline", {"name": "b\nexec touch FILE"}, "field 'name'.*not a valid name"),
    ("name-traversal", {"name": "../../b"}, "field 'name'.*not a valid name"),
    ("name-absolute", {"name": "/tmp/b"}, "not a valid name"),
    ("name-long", {"name": "b" * 65}, "at most 64"),
    ("name-int", {"name": 7}, "not a valid name"),
    ("name-brace", {"name": "b}{"}, "not a valid name"),
    ("part-newline", {"part": "xc7z020\nexec touch FILE"}, "field 'part'.*not a valid name"),
    ("part-bracket", {"part": "[exec touch FILE]"}, "field 'part'.*not a valid name"),
    ("family-unknown", {"family": "ice40"}, "field 'family' must be one of"),
    ("family-list", {"family": ["xc7"]}, "field 'family' must be one of"),
    ("lut-true", {"lut": True}, "field 'lut' must be a non-negative integer"),
    ("lut-negative", {"lut": -1}, "field 'lut' must be a non-negative integer"),
    ("lut-huge", {"lut": 10**12}, "field 'lut' must be a non-negative integer at most"),
    ("lut-string", {"lut": "many"}, "field 'lut' must be a non-negative integer"),
    ("lut-float", {"lut": 1.5}, "field 'lut' must be a non-negative integer"),
    ("dsp-null", {"dsp": None}, "field 'dsp' must be a non-negative integer"),
    ("bram-both", {"bram18": 10}, "give only one of the fields"),
    ("clock-nan", {"clock_mhz": float("nan")}, "field 'clock_mhz' must be a finite number"),
    ("clock-inf", {"clock_mhz": float("inf")}, "field 'clock_mhz' must be a finite number"),
    ("clock-negative", {"clock_mhz": -100}, "field 'clock_mhz' must be a finite number"),
    ("clock-zero", {"clock_mhz": 0}, "field 'clock_mhz' must be a finite number"),
    ("clock-true", {"clock_mhz": True}, "field 'clock_mhz' must be a finite number"),
    ("clock-string", {"clock_mhz": "100"}, "field 'clock_mhz' must be a finite number"),
    ("clock-huge", {"clock_mhz": 1e9}, "field 'clock_mhz' must be a finite number"),
    ("ecp5-part", {"family": "ecp5", "part": "xc7z020"}, "Lattice ECP5 ordering code"),
]


def _board_case(edit: dict) -> Callable[[Ctx], list[str]]:
    def setup(ctx: Ctx) -> list[str]:
        path = ctx.file("board.yaml", yaml.safe_dump({**BOARD, **edit}))
        return ["plan", str(ctx.run), "--board", str(path), "--out", str(ctx.case / "plan.json")]
    return setup


for _id, _edit, _match in BOARD_EDITS:
    CASES.append(Case(f"board-{_id}", _board_case(_edit), _match))

BOARD_FILES: list[tuple[str, bytes | str, str]] = [
    ("missing-field", "name: b\npart: p\n", "missing field"),
    ("not-utf8", b"name: \xff\xfe\n", "not valid UTF-8 YAML"),
    ("not-yaml", "name: [unclosed\n", "not valid UTF-8 YAML"),
    ("nested", "[" * 20000 + "]" * 20000, "not valid UTF-8 YAML|expected a mapping"),
    ("list", "- 1\n- 2\n", "expected a mapping"),
    ("empty", "", "expected a mapping"),
    ("huge", "# " + "x" * 70000 + "\n", "above the limit"),
    ("python-tag", "!!python/object/apply:os.system ['touch FILE']\n", "not valid UTF-8 YAML"),
    ("alias-bomb", "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                   "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nname: [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n",
     "missing field|not a valid name"),
]


def _board_file_case(content: bytes | str) -> Callable[[Ctx], list[str]]:
    def setup(ctx: Ctx) -> list[str]:
        path = ctx.file("board.yaml", content)
        return ["plan", str(ctx.run), "--board", str(path), "--out", str(ctx.case / "plan.json")]
    return setup


for _id, _content, _match in BOARD_FILES:
    CASES.append(Case(f"board-file-{_id}", _board_file_case(_content), _match))

for _id, _name, _match in [("traversal", "../../../etc/passwd", "not a valid name"),
                           ("newline", "pynq\nz2", "not a valid name"),
                           ("unknown", "nosuchboard", "unknown board 'nosuchboard'"),
                           ("missing-file", "/nonexistent/b.yaml", "does not exist")]:
    CASES.append(Case(f"board-arg-{_id}", lambda ctx, n=_name: ["rtl", str(ctx.run), "--board", n,
                                                                 "--plan", "auto"], _match))


# datasets: 'msq train --dataset FILE' refuses before training
def _npz(ctx: Ctx, **overrides) -> Path:
    with np.load(ctx.good.dataset) as f:
        arrays = dict(f)
    for key, value in overrides.items():
        if value is None:
            arrays.pop(key)
        else:
            arrays[key] = value
    path = ctx.case / "data.npz"
    np.savez(path, **arrays)
    return path


def _train_args(ctx: Ctx, data: Path) -> list[str]:
    return ["train", "--dataset", str(data), "--epochs", "1", "--out", str(ctx.case / "new")]


DATASETS: list[tuple[str, dict, str]] = [
    ("missing-key", {"y_test": None}, "missing array\\(s\\) y_test"),
    ("x-3d", {"x_train": np.zeros((24, 2, 3), np.float32)}, "x_train must be numeric, shaped"),
    ("x-strings", {"x_train": np.array(["a"] * 24)}, "dtype <U1 is not allowed"),
    ("x-object", {"x_train": np.array([{}] * 24, dtype=object)}, "dtype object is not allowed"),
    ("x-bool", {"x_train": np.zeros((24, 6), bool)}, "x_train must be numeric"),
    ("y-float", {"y_train": np.zeros(24)}, "y_train must be integer labels"),
    ("y-length", {"y_train": np.zeros(23, np.int64)}, "y_train must be integer labels shaped \\(24,\\)"),
    ("y-2d", {"y_train": np.zeros((24, 1), np.int64)}, "y_train must be integer labels"),
    ("empty", {"x_train": np.zeros((0, 6), np.float32), "y_train": np.zeros(0, np.int64)}, "x_train is empty"),
    ("label-1e9", {"y_train": np.full(24, 10**9)}, "labels in \\[1000000000, 1000000000\\]"),
    ("label-negative", {"y_test": np.full(12, -1)}, "y_test has labels in \\[-1, -1\\]"),
    ("label-uint64", {"y_train": np.full(24, 2**64 - 1, dtype=np.uint64)}, "y_train has labels"),
    ("nan", {"x_train": np.full((24, 6), np.nan, np.float32)}, "x_train contains NaN"),
    ("inf", {"x_test": np.full((12, 6), np.inf)}, "x_test contains NaN, infinite"),
    ("huge-values", {"x_test": np.full((12, 6), 1e30)}, "x_test contains NaN, infinite or huge"),
    ("shapes-differ", {"x_test": np.zeros((12, 7), np.float32)}, "sample shapes differ"),
    ("side-too-long", {"x_train": np.zeros((24, 1, 5000, 1), np.float32)}, "x_train sample: shape .* out of bounds"),
]
for _id, _over, _match in DATASETS:
    CASES.append(Case(f"dataset-{_id}", lambda ctx, o=_over: _train_args(ctx, _npz(ctx, **o)), _match))

DATASET_FILES: list[tuple[str, Callable[[Ctx], Path], str]] = [
    ("missing", lambda ctx: ctx.case / "nope.npz", "does not exist"),
    ("garbage", lambda ctx: ctx.file("d.npz", os.urandom(2000)), "not a readable .npz"),
    ("truncated", lambda ctx: ctx.file("d.npz", ctx.good.dataset.read_bytes()[:400]), "not a readable .npz"),
    ("directory", lambda ctx: ctx.case / "run", "unknown dataset"),
    ("zip-bomb", lambda ctx: ctx.good.bomb, "missing array\\(s\\) y_train, x_test, y_test"),
]
for _id, _make, _match in DATASET_FILES:
    CASES.append(Case(f"dataset-file-{_id}", lambda ctx, m=_make: _train_args(ctx, m(ctx)), _match))
CASES.append(Case("dataset-zip-bomb-memory", lambda ctx: _train_args(ctx, ctx.good.bomb), "above the limit of 100 MiB",
                  env={"MSQ_MAX_MEMORY_MB": "100"}))


# checkpoints: 'msq export RUN' (and --out)
def _ckpt_case(edit: Callable[[dict, Ctx], None]) -> Callable[[Ctx], list[str]]:
    def setup(ctx: Ctx) -> list[str]:
        path = ctx.run / "model.pt"
        ckpt = torch.load(path, weights_only=True)
        edit(ckpt, ctx)
        torch.save(ckpt, path)
        return ["export", str(ctx.run)]
    return setup


def _evil_model(ckpt: dict, ctx: Ctx) -> None:
    ckpt["train_config"]["model"] = f"{ctx.outside / 'evil.py'}:build"


CKPT_EDITS: list[tuple[str, Callable[[dict, Ctx], None], str]] = [
    ("model-file", _evil_model, "never imports a file a checkpoint names"),
    ("model-int", lambda c, _: c["train_config"].update(model=3), "field 'train_config.model' must be a string"),
    ("model-other-builtin", lambda c, _: c["train_config"].update(model="resnet"), "never imports"),
    ("format", lambda c, _: c.update(format="other"), "is not an MSQ checkpoint"),
    ("version-true", lambda c, _: c.update(version=True), "checkpoint version True"),
    ("version-2", lambda c, _: c.update(version=2), "checkpoint version 2"),
    ("in-shape-huge", lambda c, _: c["data"].update(in_shape=[10**9]), "field 'data.in_shape'.*out of bounds"),
    ("in-shape-bool", lambda c, _: c["data"].update(in_shape=[True]), "field 'data.in_shape'"),
    ("in-shape-2d", lambda c, _: c["data"].update(in_shape=[2, 3]), "field 'data.in_shape' must be a list of 1 or 3"),
    ("classes-huge", lambda c, _: c["data"].update(classes=10**9), "field 'data.classes'"),
    ("classes-true", lambda c, _: c["data"].update(classes=True), "field 'data.classes'"),
    ("signed-string", lambda c, _: c["data"].update(signed="no"), "field 'data.signed'"),
    ("quant-extra", lambda c, _: c["quant_config"].update(evil=1), "field 'quant_config' must hold"),
    ("quant-wbits", lambda c, _: c["quant_config"].update(wbits=99), "wbits=99 is out of range"),
    ("quant-scheme", lambda c, _: c["quant_config"].update(scheme=["msq"]), "unknown scheme"),
    ("state-missing", lambda c, _: c["state_dict"].pop(next(iter(c["state_dict"]))), "field 'state_dict' does not fit"),
    ("state-shape", lambda c, _: c["state_dict"].update({k: torch.zeros(2, 2) for k in list(c["state_dict"])[:1]}),
     "field 'state_dict' does not fit"),
    ("train-config-list", lambda c, _: c.update(train_config=[]), "must be objects"),
    ("seed-string", lambda c, _: c["train_config"].update(seed="0"), "field 'train_config.seed'"),
    ("data-missing", lambda c, _: c.pop("data"), "must be objects"),
]
for _id, _edit, _match in CKPT_EDITS:
    CASES.append(Case(f"ckpt-{_id}", _ckpt_case(_edit), _match))


class _Evil:
    """A pickle that runs a command when loaded without weights_only."""

    def __init__(self, canary: Path):
        self.canary = canary

    def __reduce__(self):
        return os.system, (f"touch {self.canary}",)


CKPT_FILES: list[tuple[str, Callable[[Ctx], None], str]] = [
    ("garbage", lambda ctx: (ctx.run / "model.pt").write_bytes(os.urandom(3000)), "not a readable checkpoint"),
    ("truncated", lambda ctx: (ctx.run / "model.pt").write_bytes((ctx.run / "model.pt").read_bytes()[:5000]),
     "not a readable checkpoint"),
    ("empty", lambda ctx: (ctx.run / "model.pt").write_bytes(b""), "not a readable checkpoint"),
    ("pickle-exec", lambda ctx: torch.save({"format": "msq-checkpoint", "x": _Evil(ctx.outside / "canary2")},
                                           ctx.run / "model.pt"), "not a readable checkpoint"),
    ("plain-list", lambda ctx: torch.save([1, 2], ctx.run / "model.pt"), "is not an MSQ checkpoint"),
    ("missing", lambda ctx: (ctx.run / "model.pt").unlink(), "model.pt does not exist"),
    ("directory", lambda ctx: ((ctx.run / "model.pt").unlink(), (ctx.run / "model.pt").mkdir()),
     "model.pt does not exist"),
]
for _id, _edit, _match in CKPT_FILES:
    CASES.append(Case(f"ckpt-file-{_id}", lambda ctx, e=_edit: (e(ctx), ["export", str(ctx.run)])[1], _match))
CASES.append(Case("ckpt-model-arg-missing-file",
                  lambda ctx: ["export", str(ctx.run), "--model", str(ctx.case / "none.py:f")],
                  "trained with model 'mlp', not"))


# command-line arguments, output directories and other files the commands read
def _user_dir(ctx: Ctx) -> Path:
    mine = ctx.case / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work\n")
    return mine


CLI: list[tuple[str, Callable[[Ctx], list[str]], str]] = [
    ("seed-huge", lambda ctx: ["train", "--seed", str(2**70), "--epochs", "1", "--out", str(ctx.case / "n")],
     "seed must be an integer in"),
    ("seed-negative", lambda ctx: ["train", "--seed", "-1", "--epochs", "1", "--out", str(ctx.case / "n")],
     "seed must be an integer in"),
    ("epochs-0", lambda ctx: ["train", "--epochs", "0", "--out", str(ctx.case / "n")], "epochs must be an integer"),
    ("epochs-huge", lambda ctx: ["train", "--epochs", str(10**9), "--out", str(ctx.case / "n")],
     "epochs must be an integer"),
    ("wbits-99", lambda ctx: ["train", "--wbits", "99", "--out", str(ctx.case / "n")], "wbits=99 is out of range"),
    ("sp2-nan", lambda ctx: ["train", "--sp2-ratio", "nan", "--out", str(ctx.case / "n")], "SP2 ratio must be"),
    ("sp2-inf", lambda ctx: ["train", "--sp2-ratio", "inf", "--out", str(ctx.case / "n")], "SP2 ratio must be"),
    ("train-out-user-dir", lambda ctx: ["train", "--epochs", "1", "--out", str(_user_dir(ctx))],
     "is not a run directory MSQ wrote"),
    ("train-out-file", lambda ctx: ["train", "--epochs", "1", "--out", str(ctx.file("f.txt", "x"))],
     "exists and is not a directory"),
    ("flow-out-user-dir", lambda ctx: ["flow", "--epochs", "1", "--out", str(_user_dir(ctx))],
     "is not a run directory MSQ wrote"),
    ("export-out-user-dir", lambda ctx: ["export", str(ctx.run), "--out", str(_user_dir(ctx))],
     "was not written by MSQ"),
    ("export-out-file", lambda ctx: ["export", str(ctx.run), "--out", str(ctx.file("f.txt", "x"))],
     "is not a directory MSQ wrote"),
    ("export-out-under-file", lambda ctx: ["export", str(ctx.run), "--out", str(ctx.file("f.txt", "x") / "ir")],
     "f.txt.*Not a directory|File exists"),
    ("export-out-symlink", lambda ctx: (os.symlink(ctx.outside, ctx.case / "link"),
                                        ["export", str(ctx.run), "--out", str(ctx.case / "link")])[1],
     "is not a directory MSQ wrote"),
    ("hls-out-user-dir", lambda ctx: ["hls", str(ctx.run), "--out", str(_user_dir(ctx))], "was not written by MSQ"),
    ("rtl-out-user-dir", lambda ctx: ["rtl", str(ctx.run), "--out", str(_user_dir(ctx))], "was not written by MSQ"),
    ("explore-out-user-dir", lambda ctx: ["explore", str(ctx.run), "--out", str(_user_dir(ctx))],
     "was not written by MSQ"),
    ("hls-out-root", lambda ctx: ["hls", str(ctx.run), "--out", "/"], "file system root|was not written by MSQ"),
    ("plan-not-json", lambda ctx: ["hls", str(ctx.run), "--plan", str(ctx.file("p.json", "{x"))], "not valid JSON"),
    ("plan-not-utf8", lambda ctx: ["hls", str(ctx.run), "--plan", str(ctx.file("p.json", b"\xff\xfe"))], "not UTF-8"),
    ("plan-nested", lambda ctx: ["rtl", str(ctx.run), "--plan", str(ctx.file("p.json", "[" * 50000))],
     "nested too deeply|not valid JSON"),
    ("plan-version-true", lambda ctx: ["rtl", str(ctx.run), "--plan", str(ctx.file("p.json", '{"version": true}'))],
     "expected a plan of version 2"),
    ("plan-layer-names", lambda ctx: ["rtl", str(ctx.run), "--plan", str(ctx.file(
        "p.json", '{"version": 2, "io": {"in_width": 1, "out_width": 1}, "layers": {"../x": {"simd": 1}}}'))],
     "layers must match the IR's"),
    ("plan-missing", lambda ctx: ["hls", str(ctx.run), "--plan", str(ctx.case / "none.json")], "does not exist"),
    ("eval-not-a-run", lambda ctx: ["eval", str(ctx.case)], r"(metrics\.json|ir) does not exist"),
    ("eval-metrics-garbage", lambda ctx: ((ctx.run / "metrics.json").write_text("{"), ["eval", str(ctx.run)])[1],
     "metrics.json: not valid JSON"),
    ("eval-metrics-not-utf8", lambda ctx: ((ctx.run / "metrics.json").write_bytes(b"\x80"), ["eval", str(ctx.run)])[1],
     "metrics.json: not UTF-8"),
    ("eval-metrics-dataset-int", lambda ctx: (_edit_json(ctx.run / "metrics.json",
                                                         lambda m: m["settings"].update(dataset=5)),
                                              ["eval", str(ctx.run)])[1], "field 'settings.dataset' must be a string"),
    ("eval-metrics-list", lambda ctx: ((ctx.run / "metrics.json").write_text("[]"), ["eval", str(ctx.run)])[1],
     "cannot read fields"),
    ("eval-memory-limit", lambda ctx: (_edit_json(ctx.run / "metrics.json", lambda m: m["settings"].update(
        dataset=str(_npz(ctx, x_test=np.zeros((3000, 6), np.float32), y_test=np.zeros(3000, np.int64))))),
        ["eval", str(ctx.run)])[1], "integer reference .* on 3000 inputs needs about 2 MiB, above the limit of 1 MiB"),
    ("memory-env-garbage", lambda ctx: ["eval", str(ctx.run)], "MSQ_MAX_MEMORY_MB='lots'"),
    ("csim-not-project", lambda ctx: ["csim", str(ctx.case)], "is not an MSQ HLS project"),
    ("csim-project-garbage", lambda ctx: ((ctx.run / "hls" / "project.json").write_bytes(b"\xff"),
                                          ["csim", str(ctx.run / "hls")])[1], "project.json: not UTF-8"),
    ("sim-not-project", lambda ctx: ["sim", str(ctx.case)], "is not an MSQ RTL project"),
    ("sim-hostile-sources", lambda ctx: (_edit_json(ctx.run / "rtl" / "design.json",
                                                    lambda d: d.update(sources=["../../../../etc/passwd"])),
                                         ["sim", str(ctx.run / "rtl")])[1], "resolves outside the directory"),
    ("sim-sources-not-list", lambda ctx: (_edit_json(ctx.run / "rtl" / "design.json", lambda d: d.update(sources=5)),
                                          ["sim", str(ctx.run / "rtl")])[1], "field 'sources' must be a list"),
    ("synth-not-project", lambda ctx: ["synth", str(ctx.case)], "has no Verilog files"),
    ("synth-hostile-file-name", lambda ctx: ((ctx.run / "rtl" / "hdl" / "a}\nexec touch X.v").write_text(""),
                                             ["synth", str(ctx.run / "rtl")])[1], "file name.*not a valid name"),
    ("report-no-summary", lambda ctx: ["report", str(ctx.run)], "summary.json does not exist"),
    ("headroom-nan", lambda ctx: ["plan", str(ctx.run), "--headroom", "nan"], "expected a fraction in"),
    ("headroom-zero", lambda ctx: ["plan", str(ctx.run), "--headroom", "0"], "expected a fraction in"),
    ("flow-state-garbage", lambda ctx: ((ctx.run / "flow_state.json").write_bytes(b"\xff"),
                                        ["flow", "--epochs", "1", "--out", str(ctx.run)])[1], "flow_state.json: not UTF-8"),
    ("export-run-name", lambda ctx: (shutil.copytree(ctx.run, ctx.case / "bad name"),
                                     ["export", str(ctx.case / "bad name"), "--out", str(ctx.case / "ir2")])[1],
     "run directory .* its name: 'bad name' is not a valid name"),
    ("journal-hostile", lambda ctx: ((ctx.run / atomic.JOURNAL).write_text('{"from": "../../x", "files": ["a"]}'),
                                     ["export", str(ctx.run)])[1], "not a commit journal MSQ wrote"),
]
_CLI_ENV = {"eval-memory-limit": {"MSQ_MAX_MEMORY_MB": "1"}, "memory-env-garbage": {"MSQ_MAX_MEMORY_MB": "lots"}}
for _id, _setup, _match in CLI:
    CASES.append(Case(f"cli-{_id}", _setup, _match, env=_CLI_ENV.get(_id, {})))


def test_the_battery_is_large():
    assert len(CASES) >= 150
    assert len({c.id for c in CASES}) == len(CASES)


def _prepare(good: Good, tmp_path: Path) -> Ctx:
    ctx = Ctx(good, tmp_path / "case", tmp_path / "outside")
    ctx.case.mkdir()
    shutil.copytree(good.run, ctx.run, symlinks=True)
    ctx.outside.mkdir()
    (ctx.outside / "victim.txt").write_text("must survive\n")
    (ctx.outside / "evil.py").write_text(f"open({str(ctx.outside / 'canary')!r}, 'w').close()\n"
                                         "def build(*a):\n    raise SystemExit('imported')\n")
    return ctx


@pytest.mark.parametrize("c", CASES, ids=lambda c: c.id)
def test_hostile_input_is_refused_cleanly(good, tmp_path, monkeypatch, c: Case):
    ctx = _prepare(good, tmp_path)
    args = c.setup(ctx)
    before = snapshot(tmp_path, good.root)
    for key, value in c.env.items():
        monkeypatch.setenv(key, value)
    tracemalloc.start()
    try:
        result = CliRunner().invoke(main, args)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    out = result.output
    assert result.exit_code == c.code, out
    assert not isinstance(result.exception, Exception), repr(result.exception)
    assert "Traceback" not in out
    assert re.search(c.match, out), out
    assert sum(line.startswith(("error: ", "Error: ")) for line in out.splitlines()) == 1, out  # one message
    assert diff(before, snapshot(tmp_path, good.root)) == []  # nothing written, nothing lost, no leftovers
    assert peak < PEAK_LIMIT, f"{peak / 2**20:.0f} MiB allocated to refuse it"


def test_debug_shows_the_traceback(good, tmp_path):
    ctx = _prepare(good, tmp_path)
    (ctx.run / "ir" / "manifest.json").write_text("{")
    result = CliRunner().invoke(main, ["--debug", "eval", str(ctx.run)])
    assert isinstance(result.exception, MSQError) and "not valid JSON" in str(result.exception)


# --- good outputs: replaced only when MSQ's own, whole, and leftovers cleaned --------------------

def _ir_files(ir: Path) -> dict[str, str]:
    return {k: v for k, v in snapshot(ir).items() if not k.endswith(atomic.OUTPUT_MARKER)}


def test_out_replaces_an_earlier_msq_output_and_an_empty_directory(good, tmp_path):
    ctx = _prepare(good, tmp_path)
    (ctx.case / "empty").mkdir()
    for out in (ctx.run / "hls", ctx.case / "empty"):
        result = CliRunner().invoke(main, ["export", str(ctx.run), "--out", str(out)])
        assert result.exit_code == 0, result.output
        assert load_ir(out).name == "run" and not (out / "project.json").exists()
        assert (out / atomic.OUTPUT_MARKER).is_file()
    assert sorted(p.name for p in ctx.run.iterdir() if p.name.startswith(".")) == [atomic.RUN_MARKER]


def test_leftovers_of_killed_writers_are_removed(good, tmp_path):
    ctx = _prepare(good, tmp_path)
    dead = 2**22 + 12345  # above the default pid_max of small systems: no such process
    assert not atomic._alive(dead)
    (ctx.run / f".ir.msq-{dead}-abc").mkdir()
    (ctx.run / f".ir.msq-{os.getpid()}-live").mkdir()  # a live writer's: kept
    (ctx.run / f".group.msq-{dead}-x").mkdir()
    assert CliRunner().invoke(main, ["export", str(ctx.run)]).exit_code == 0
    assert not (ctx.run / f".ir.msq-{dead}-abc").exists()
    assert (ctx.run / f".ir.msq-{os.getpid()}-live").exists()
    train_run(TrainConfig(model="mlp", dataset=str(good.dataset), epochs=1, seed=0), ctx.run, progress=False)
    assert not (ctx.run / f".group.msq-{dead}-x").exists()


def test_a_swap_interrupted_without_renameat2_is_undone(good, tmp_path):
    ctx = _prepare(good, tmp_path)
    before = _ir_files(ctx.run / "ir")
    (ctx.run / "ir").rename(ctx.run / ".ir.msq-old")  # killed between the two renames of the fallback
    assert CliRunner().invoke(main, ["export", str(ctx.run), "--out", str(ctx.case / "other")]).exit_code == 0
    save_ir(load_ir(ctx.case / "other"), ctx.run / "ir")  # the next write puts the old one back, then swaps
    assert not (ctx.run / ".ir.msq-old").exists()
    assert _ir_files(ctx.run / "ir").keys() == before.keys()


def test_outputs_never_leave_the_output_directory(good, tmp_path):
    """Generators refuse hostile names of IRs built in memory (not through the loader) and any path
    that resolves outside their output directory."""
    from msq.backends.hls.project import generate_project
    from msq.backends.rtl.generate import generate_rtl

    ir = load_ir(good.run / "ir")
    board = load_board("pynq-z2")
    x = np.zeros((1,) + ir.input_shape, np.int64)
    outside = tmp_path / "outside"
    outside.mkdir()
    before = snapshot(tmp_path)
    for bad in ("x/../../../name", str(outside / "abs"), "a\nb", "module"):
        ir.layers[0].name = bad
        for gen in (lambda: generate_rtl(ir, tmp_path / "rtl", x), lambda: generate_project(ir, tmp_path / "hls", board, x)):
            with pytest.raises(MSQError, match="layer 0 field 'name'|keyword"):
                gen()
    ir = load_ir(good.run / "ir")
    ir.name = "m\nexec touch FILE"
    with pytest.raises(MSQError, match="IR field 'name'"):
        generate_rtl(ir, tmp_path / "rtl", x)
    ir.name = "m"
    for hostile in (dict(name="b\nexec touch FILE"), dict(part="p\nexec touch FILE")):
        with pytest.raises(MSQError, match="not a valid name"):
            generate_project(ir, tmp_path / "hls", board.__class__(**{**board.__dict__, **hostile}), x)
    assert diff(before, snapshot(tmp_path)) == []
    for rel in ("../x", "/etc/x", "a/../../x", "."):
        with pytest.raises(MSQError, match="resolves outside the directory"):
            atomic.inside(tmp_path / "rtl", rel)


def test_a_hostile_source_path_stays_inside_one_comment_line(good, tmp_path):
    from msq.backends.hls.project import generate_project
    from msq.backends.rtl.generate import generate_rtl

    ir = load_ir(good.run / "ir")
    x = np.zeros((1,) + ir.input_shape, np.int64)
    source = "runs/x\nexec touch FILE\n`define evil\n"
    for out in (generate_rtl(ir, tmp_path / "rtl", x, source=source),
                generate_project(ir, tmp_path / "hls", load_board("pynq-z2"), x, source=source)):
        for path in out.rglob("*"):
            if path.suffix in (".v", ".h", ".cpp", ".tcl"):
                lines = path.read_text().splitlines()
                assert not any(line.startswith(("exec", "`define evil")) for line in lines), path


# --- kills: a run killed at any rename leaves the previous good output or the new one ------------

_KILLER = """
import os, signal, sys, types
from msq import atomic
n, calls = int(os.environ["KILL_AT"]), [0]
def replace(*args, **kwargs):
    calls[0] += 1
    if calls[0] == n:
        os.kill(os.getpid(), signal.SIGKILL)
    return os.replace(*args, **kwargs)
atomic.os = types.SimpleNamespace(**{**vars(os), "replace": replace})  # only msq.atomic's renames
real_exchange = atomic._exchange
def exchange(a, b):
    if os.environ.get("KILL_EXCHANGE"):
        os.kill(os.getpid(), signal.SIGKILL)
    return real_exchange(a, b)
atomic._exchange = exchange
from msq.cli import main
main(sys.argv[1:])
"""


def _killed(args: list[str], **env: str) -> int:
    proc = subprocess.run([sys.executable, "-c", _KILLER, *args], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=300)
    return proc.returncode


def _train_state(run: Path) -> tuple[int, int, str]:
    """(seed in model.pt, seed in metrics.json, assignment) as a reader sees them after recovery."""
    from msq.frontend.train import load_run

    _, ckpt = load_run(run)
    metrics = json.loads((run / "metrics.json").read_text())
    return ckpt["train_config"]["seed"], metrics["settings"]["seed"], (run / "assignment.json").read_text()


@pytest.mark.parametrize("kill_at", [1, 2, 3])
def test_training_killed_at_each_rename_never_mixes_runs(good, tmp_path, kill_at):
    """Rename 1 commits the journal; 2 and 3 move the first files into place (then a reader finishes)."""
    ctx = _prepare(good, tmp_path)
    old = _train_state(ctx.run)
    code = _killed(["train", "--dataset", str(good.dataset), "--epochs", "1", "--seed", "1", "--out", str(ctx.run)],
                   KILL_AT=str(kill_at))
    assert code == -signal.SIGKILL
    seed_pt, seed_metrics, assignment = _train_state(ctx.run)
    assert seed_pt == seed_metrics  # never a mix
    assert seed_pt == (0 if kill_at == 1 else 1)
    if kill_at == 1:
        assert (seed_pt, seed_metrics, assignment) == old
    result = CliRunner().invoke(main, ["train", "--dataset", str(good.dataset), "--epochs", "1", "--seed", "2",
                                       "--out", str(ctx.run)])
    assert result.exit_code == 0, result.output
    assert [p.name for p in ctx.run.iterdir() if ".msq-" in p.name and p.name != atomic.RUN_MARKER] == []


def test_export_killed_before_the_swap_keeps_the_previous_ir(good, tmp_path):
    ctx = _prepare(good, tmp_path)
    before = snapshot(ctx.run / "ir")
    assert _killed(["export", str(ctx.run)], KILL_AT="0", KILL_EXCHANGE="1") == -signal.SIGKILL
    assert snapshot(ctx.run / "ir") == before
    leftovers = [p for p in ctx.run.iterdir() if p.name.startswith(".ir.msq-")]
    assert leftovers  # named after the dead process ...
    assert CliRunner().invoke(main, ["export", str(ctx.run)]).exit_code == 0
    assert not any(p.exists() for p in leftovers)  # ... and removed by the next run


def test_the_longest_valid_names_generate_and_synthesize_cleanly(good, tmp_path):
    """The rule's edge: 64-character names pass every generator and the synthesis file-name check."""
    from msq.backends.hls.project import generate_project
    from msq.backends.rtl.generate import generate_rtl
    from msq.backends.synth.driver import rtl_sources

    ir = load_ir(good.run / "ir")
    ir.name = "m" * 63 + "-"
    for i, layer in enumerate(ir.layers):
        layer.name = f"L{i}" + "x" * 62
    x = np.zeros((1,) + ir.input_shape, np.int64)
    assert any(len(p.stem) > 64 for p in rtl_sources(generate_rtl(ir, tmp_path / "rtl", x)))
    assert (generate_project(ir, tmp_path / "hls", load_board("pynq-z2"), x) / "project.json").is_file()
