"""docs/ir.md is the IR contract: its worked examples, constants and links are checked here.

Each ``<!-- example: KIND -->`` JSON block is rebuilt into IR layer objects and recomputed with
the integer reference, so a doc that disagrees with the code fails the build.
"""
from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest

from msq import numerics, ref
from msq.errors import MSQError
from msq.ir import arith, load_ir, save_ir
from msq.ir.arith import ActFormat
from msq.ir.model import SCHEME_SP2, ComputeLayer, IRModel, Layer, PoolLayer

DOCS = Path(__file__).resolve().parent.parent / "docs"
IR_MD = DOCS / "ir.md"
KINDS = ("dense", "conv", "maxpool", "avgpool")
CODE_ARRAYS = ("fixed", "sp2_sign", "sp2_k1", "sp2_k2")


def _examples() -> dict[str, dict]:
    """Every example block of docs/ir.md, by its marker's kind."""
    blocks = re.findall(r"<!-- example: (\w+) -->\s*```json\n(.*?)```", IR_MD.read_text(), re.S)
    return {kind: json.loads(body) for kind, body in blocks}


EXAMPLES = _examples()


def _fmt(d: dict) -> ActFormat:
    return ActFormat(bits=d["bits"], frac=d["frac"], signed=d["signed"])


def _decoded_weights(ex: dict) -> np.ndarray:
    """Integer weights from the stored arrays: SP2 codes decoded on SP2 rows, ``fixed`` elsewhere."""
    a = {k: np.array(v, dtype=np.int64) for k, v in ex["arrays"].items()}
    sp2 = (a["scheme"] == SCHEME_SP2).reshape((-1,) + (1,) * (a["fixed"].ndim - 1))
    sp2_int = numerics.sp2_decode_array(a["sp2_sign"], a["sp2_k1"], a["sp2_k2"], ex["layer"]["wbits"])
    return np.where(sp2, sp2_int, a["fixed"])


def _layer(ex: dict) -> Layer:
    """The example's layer as the IR data classes (weights from the codes, not from ``w_int``)."""
    m = ex["layer"]
    common = dict(name=m["name"], kind=m["kind"], in_shape=tuple(m["in_shape"]), out_shape=tuple(m["out_shape"]),
                  in_fmt=_fmt(m["in_fmt"]), out_fmt=_fmt(m["out_fmt"]))
    if m["kind"] in ("maxpool", "avgpool"):
        extra = {k: m[k] for k in ("mult", "shift", "acc_bits", "requant_bits") if k in m}
        return PoolLayer(**common, kernel=tuple(m["kernel"]), stride=tuple(m["stride"]), **extra)
    a = {k: np.array(v, dtype=np.int64) for k, v in ex["arrays"].items()}
    geometry = {k: tuple(m[k]) for k in ("kernel", "stride", "padding") if k in m}
    return ComputeLayer(**common, wbits=m["wbits"], relu=m["relu"], acc_bits=m["acc_bits"],
                        requant_bits=m["requant_bits"], scheme=a["scheme"], w_int=_decoded_weights(ex),
                        bias=a["bias"], mult=a["mult"], shift=a["shift"], **geometry)


def test_every_layer_kind_has_an_example():
    assert sorted(EXAMPLES) == sorted(KINDS)


@pytest.mark.parametrize("kind", KINDS)
def test_example_output_equals_reference(kind):
    ex = EXAMPLES[kind]
    y = ref.infer_layer(_layer(ex), np.array([ex["x"]], dtype=np.int64))[0]
    assert y.tolist() == ex["y"]


@pytest.mark.parametrize("kind", ("dense", "conv", "avgpool"))
def test_example_accumulators_equal_reference(kind):
    """``acc`` as written: the layer run with mult 1, shift 0, bias 0 and a wide output gives it."""
    ex = EXAMPLES[kind]
    layer = _layer(ex)
    wide = ActFormat(bits=40, frac=0, signed=True)
    if isinstance(layer, ComputeLayer):
        raw = dataclasses.replace(layer, out_fmt=wide, mult=np.ones(layer.rows, dtype=np.int64),
                                  shift=np.zeros(layer.rows, dtype=np.int64), bias=np.zeros(layer.rows, dtype=np.int64))
    else:
        raw = dataclasses.replace(layer, out_fmt=wide, mult=1, shift=0)
    assert ref.infer_layer(raw, np.array([ex["x"]], dtype=np.int64))[0].tolist() == ex["acc"]


@pytest.mark.parametrize("kind", ("dense", "conv"))
def test_example_sp2_codes_decode_to_stated_weights(kind):
    ex = EXAMPLES[kind]
    w_int = np.array(ex["w_int"], dtype=np.int64)
    assert _decoded_weights(ex).tolist() == w_int.tolist()
    a = {k: np.array(v, dtype=np.int64) for k, v in ex["arrays"].items()}
    bits = ex["layer"]["wbits"]
    sp2_rows = np.flatnonzero(a["scheme"] == SCHEME_SP2)
    fixed_rows = np.flatnonzero(a["scheme"] != SCHEME_SP2)
    assert len(sp2_rows) >= 1 and len(fixed_rows) >= 1, "an example must show both schemes"
    for r in sp2_rows:
        for idx in np.ndindex(w_int.shape[1:]):
            code = numerics.SP2Code(*(int(a[k][(r,) + idx]) for k in ("sp2_sign", "sp2_k1", "sp2_k2")))
            assert numerics.sp2_decode(code, bits) == w_int[(r,) + idx]
            assert numerics.sp2_encode(int(w_int[(r,) + idx]), bits) == code, "codes must be canonical"
        assert not a["fixed"][r].any()
    for r in fixed_rows:
        assert a["fixed"][r].tolist() == w_int[r].tolist()
        assert all(not a[k][r].any() for k in ("sp2_sign", "sp2_k1", "sp2_k2"))


@pytest.mark.parametrize("kind", ("dense", "conv"))
def test_example_widths_are_what_export_computes(kind):
    layer = _layer(EXAMPLES[kind])
    assert isinstance(layer, ComputeLayer)
    lo, hi = arith.accumulator_range(layer.w_int, layer.in_fmt)
    assert layer.acc_bits == arith.accumulator_bits(layer.w_int, layer.in_fmt)
    assert layer.requant_bits == arith.requant_bits(lo, hi, layer.mult, layer.shift, layer.bias)


def test_avgpool_example_is_what_export_writes():
    layer = _layer(EXAMPLES["avgpool"])
    assert isinstance(layer, PoolLayer)
    area = layer.kernel[0] * layer.kernel[1]
    lo, hi = area * layer.in_fmt.lo, area * layer.in_fmt.hi
    assert (layer.mult, layer.shift) == arith.multiplier(1.0 / area)
    assert layer.out_fmt == layer.in_fmt
    assert layer.acc_bits == arith.signed_width(lo, hi)
    assert layer.requant_bits == arith.requant_bits(lo, hi, layer.mult, layer.shift, 0)


def _one_layer_ir(layer: Layer) -> IRModel:
    return IRModel(name="doc", input_shape=layer.in_shape, input_fmt=layer.in_fmt, layers=[layer])


@pytest.mark.parametrize("kind", KINDS)
def test_example_is_the_stored_format(kind, tmp_path):
    """The block's ``layer`` is the manifest entry and its ``arrays`` are arrays.npz, byte for byte."""
    ex = EXAMPLES[kind]
    layer = _layer(ex)
    save_ir(_one_layer_ir(layer), tmp_path / "ir")
    entry = json.loads((tmp_path / "ir" / "manifest.json").read_text())["layers"][0]
    expected = dict(ex["layer"])
    if isinstance(layer, ComputeLayer):
        expected.update(sp2_rows=int(len(layer.sp2_rows)), fixed_rows=int(len(layer.fixed_rows)))
        with np.load(tmp_path / "ir" / "arrays.npz") as npz:
            stored = {key.split("/", 1)[1]: npz[key].tolist() for key in npz.files}
        assert stored == ex["arrays"]
    assert entry == expected
    loaded = load_ir(tmp_path / "ir").layers[0]
    assert ref.infer_layer(loaded, np.array([ex["x"]], dtype=np.int64))[0].tolist() == ex["y"]


def test_stated_ranges_match_the_code():
    text = IR_MD.read_text()
    limit = 2 ** (arith.MULT_BITS - 1) - 1
    assert f"−{limit} ≤ mult ≤ {limit}" in text
    assert f"0 ≤ n ≤ {arith.MAX_SHIFT}" in text
    assert f"acc_bits ≤ {arith.MAX_ACC_BITS}" in text
    assert f"requant_bits ≤ {arith.MAX_REQUANT_BITS}" in text


def test_multiplier_minus_2_pow_15_is_rejected_as_stated(tmp_path):
    layer = _layer(EXAMPLES["dense"])
    save_ir(_one_layer_ir(dataclasses.replace(layer, mult=np.array([-(2**15), 13, 25]), requant_bits=40)),
            tmp_path / "low")
    with pytest.raises(MSQError, match="mult"):
        load_ir(tmp_path / "low")
    save_ir(_one_layer_ir(dataclasses.replace(layer, mult=np.array([-(2**15) + 1, 13, 25]), requant_bits=40)),
            tmp_path / "ok")
    assert load_ir(tmp_path / "ok").layers[0].mult[0] == -(2**15) + 1


def test_sp2_table_matches_numerics():
    rows = re.findall(r"^\| (\d) \| (\d), (\d) \| (\d) \| ([\d, ]+) \|$", IR_MD.read_text(), re.M)
    assert len(rows) >= 4
    for m, m1, m2, e, mags in rows:
        bits = int(m)
        assert numerics.sp2_split(bits) == (int(m1), int(m2))
        assert numerics.sp2_exponent(bits) == int(e)
        levels = numerics.integer_levels("sp2", bits)
        assert [int(v) for v in mags.split(",")] == levels[levels >= 0].tolist()


def _anchors(md: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    heads = re.findall(r"^#+ (.+)$", md.read_text(), re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in heads}


def test_doc_links_resolve():
    """Every relative link in docs/ names an existing file and, if it has one, an existing heading."""
    broken = []
    for md in sorted(DOCS.glob("*.md")):
        for target in re.findall(r"\]\(([^)\s]+)\)", md.read_text()):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            dest = (md.parent / path).resolve() if path else md
            if not dest.exists() or (anchor and dest.suffix == ".md" and anchor not in _anchors(dest)):
                broken.append(f"{md.name}: {target}")
    assert not broken, broken


def test_docs_cite_nothing_outside_the_repository():
    for md in sorted(DOCS.glob("*.md")):
        text = md.read_text()
        assert "DESIGN" not in text, md.name
        assert "/work/" not in text and "../shared" not in text, md.name
