"""HLS backend on graph IRs (residual add, channel concat): forks, per-edge width converters, the
merge kernels and the skip streams' depth; C-simulated bit-exact against the integer reference.

These tests need g++ and the hls4ml package (ap_types headers); without them they fail, by design.
"""
from __future__ import annotations

import copy
import dataclasses
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from msq import ref
from msq.backends.hls import csim
from msq.backends.hls.graph import DEFAULT_DEPTH
from msq.backends.hls.layers import struct_name
from msq.backends.hls.project import generate_project, read_project
from msq.backends.hls import sources
from msq.boards import load_board
from msq.design.calibrate import synthetic_dense
from msq.ir.arith import ActFormat, merge_params
from msq.ir.io import load_ir, save_ir
from msq.ir.model import IRModel, MergeLayer
from msq.ir.plan import LayerPlan, Plan, default_plan
from random_models import extreme_inputs, random_graph_ir, random_plan
from test_hls import _check_csim, _csim_output


THREADED = Path(__file__).parent / "data" / "threaded_hls"  # a bounded, blocking hls::stream


def _threaded_top(top: str, depths: dict[str, int]) -> str:
    """msq_top.cpp with each process started as a thread and every stream it declares bounded: by
    ``depths``, else its STREAM pragma, else Vitis's default depth."""
    depths = {**_skip_pragmas(top), **depths}
    out = ["#include <thread>", "#include <vector>"]
    for line in top.splitlines():
        stream = re.match(r'    hls::stream<.*> (\w+)\("\w+"\);$', line)
        if stream:
            out += [line, f"    {stream.group(1)}.set_depth({depths.get(stream.group(1), DEFAULT_DEPTH)});"]
        elif re.match(r"    (msq::|L\d+_)\S.*\);$", line):
            out.append(f"    threads.emplace_back([&] {{ {line.strip()} }});")
        elif line == "}":
            out += ["    for (std::thread& t : threads) t.join();", line]
        else:
            out.append(line)
        if line == "#pragma HLS DATAFLOW":
            out.append("    std::vector<std::thread> threads;")
    return "\n".join(out) + "\n"


def _threaded_csim(project: Path, depths: dict[str, int] | None = None) -> subprocess.CompletedProcess:
    """The project's testbench on a top whose processes run concurrently over bounded FIFOs
    (tests/data/threaded_hls/hls_stream.h): what Vitis's DATAFLOW does, so a deadlock shows (exit 3)."""
    work = project / "threaded"
    work.mkdir(exist_ok=True)
    (work / sources.TOP_CPP).write_text(_threaded_top((project / sources.TOP_CPP).read_text(), depths or {}))
    binary = work / "tb_msq"
    subprocess.run([shutil.which("g++"), *csim.CXXFLAGS, "-O0", "-pthread", "-I", str(THREADED), "-isystem",
                    str(csim.ap_types_dir()), "-I", str(project), str(work / sources.TOP_CPP),
                    str(project / sources.TESTBENCH), "-o", str(binary)], check=True)
    return subprocess.run([str(binary), sources.TB_INPUTS, sources.TB_EXPECTED, str(work / "outputs.txt")],
                          cwd=project, capture_output=True, text=True, timeout=300)


def _runs_threaded(project: Path) -> None:
    run = _threaded_csim(project)
    assert run.returncode == 0 and "mismatches: 0" in run.stdout, run.stderr


def _csim_exact(ir: IRModel, plan: Plan, tmp_path, seed: int = 0, threaded: bool = True) -> str:
    """Generate the project on random inputs (+ the extreme ones it appends), C-simulate it: every
    output element and every traced layer equals the reference, and (``threaded``) also with the
    processes running concurrently over bounded FIFOs (no deadlock). Returns the top function."""
    rng = np.random.default_rng(seed)
    x = rng.integers(ir.input_fmt.lo, ir.input_fmt.hi + 1, size=(12,) + tuple(ir.input_shape))
    project = generate_project(ir, tmp_path / "hls", load_board("pynq-z2"), x, plan=plan)
    meta = read_project(project)
    assert meta["samples"]["extreme"] == len(extreme_inputs(ir)) > 0
    _check_csim(project, meta["samples"]["total"])
    assert (project / sources.TOP_CPP).read_text().isascii()
    if threaded:  # and with concurrent processes over FIFOs bounded as in Vitis
        _runs_threaded(project)
    both = np.concatenate([x, extreme_inputs(ir)])
    np.testing.assert_array_equal(_csim_output(project), ref.infer(ir, both).reshape(len(both), -1))
    return (project / sources.TOP_CPP).read_text()


KINDS = {"resnet-tiny": "add", "concat": "concat"}  # the merge each random graph kind has


@pytest.mark.parametrize("seed,kind,plan_seed", [(2, "resnet-tiny", 5), (1, "concat", 3),
                                                 (6, "concat", 2)])
def test_hls_random_graph_csim_equals_reference(seed, kind, plan_seed, tmp_path):
    ir = random_graph_ir(seed, kind)
    assert {layer.kind for layer in ir.layers if isinstance(layer, MergeLayer)} == {KINDS[kind]}
    top = _csim_exact(ir, random_plan(ir, plan_seed), tmp_path, seed)
    if kind == "concat":  # the network input feeds both branches through one fork
        assert top.count("msq::fork<in_t, ") == 1


def _skip_pragmas(top: str) -> dict[str, int]:
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"#pragma HLS STREAM variable=(\w+) depth=(\d+)", top)}


def test_hls_graph_forks_every_multi_reader_stream_and_sizes_the_skip(tmp_path):
    """resnet-tiny: conv1 is read by conv2 and by add1 (identity shortcut), add1 by conv4 and by
    conv6 (projection shortcut): one fork each; the fork output into the identity shortcut holds
    the words conv1 emits before conv3 delivers its first pixel, and without it the design
    deadlocks; concat: the input feeds a 3x3 and a 1x1 conv, the 1x1 branch is the skip."""
    ir = random_graph_ir(0, "resnet-tiny")
    names = {layer.name: struct_name(i, layer) for i, layer in enumerate(ir.layers)}
    layer = {layer.name: layer for layer in ir.layers}
    plan = random_plan(ir, 3)
    project = generate_project(ir, tmp_path / "a", load_board("pynq-z2"), extreme_inputs(ir), plan=plan)
    top = (project / sources.TOP_CPP).read_text()
    multi = [name for name, readers in ir.consumers().items() if len(readers) > 1]
    assert multi == ["conv1", "add1"]
    assert top.count("msq::fork<") == len(multi)
    conv1_words = int(np.prod(layer["conv1"].out_shape)) // layer["conv1"].rows  # a pixel a word
    add1_words = int(np.prod(layer["add1"].out_shape)) // plan["add1"].simd
    assert f"msq::fork<{names['conv1']}::out_word_t, {conv1_words}>(s_{names['conv1']}_out, " in top
    assert f"msq::fork<{names['add1']}::out_word_t, {add1_words}>(s_{names['add1']}_out, " in top
    pragmas = _skip_pragmas(top)
    # 3x3 image, 3x3 convs, padding 1: conv3's sliding window reads on while its 4-row line buffer
    # has room, the whole 3-row image of conv2, before conv3's first pixel leaves; conv2's likewise
    # reads all of conv1: the shortcut holds conv1's whole frame, 9 pixel words, meanwhile
    assert layer["conv1"].out_shape[:2] == (3, 3) and conv1_words == 9
    assert pragmas.pop(f"s_{names['conv1']}_out_to_{names['add1']}_1") == 9
    assert set(pragmas) <= {f"s_{names['add1']}_out_to_{names[n]}_0" for n in ("conv4", "conv6")}
    assert 2 < pragmas[f"s_{names['add1']}_out_to_{names['conv6']}_0"] <= add1_words
    comment = " ".join(re.sub(r"//", " ", top[:top.index("#pragma HLS STREAM")].rsplit(";\n", 1)[-1]).split())
    assert comment.startswith("Skip stream, depth 9: 'add1' reads input 1 ('conv1') while input 0 ('conv3') "
                              "still waits for up to 9 more words of 'conv1' (9 a frame)")
    assert comment.endswith("The depth matters for synthesis and co-simulation only: C-sim streams are unbounded.")
    for src in ("conv1", "add1"):  # each fork output is read by one process: a reader's converter or itself
        for edge in re.findall(rf"msq::fork<[^>]*>\(s_{names[src]}_out, (\w+), (\w+)\);", top)[0]:
            assert len(re.findall(rf"\({edge}, ", top)) == 1
    # every process a thread, every FIFO bounded as Vitis bounds it: the design runs every input to
    # the reference; with the identity shortcut at the default depth, the fork stalls on it while
    # conv2 and conv3 still wait for input: a deadlock
    _runs_threaded(project)
    stuck = _threaded_csim(project, {f"s_{names['conv1']}_out_to_{names['add1']}_1": DEFAULT_DEPTH})
    assert stuck.returncode == 3 and "deadlock" in stuck.stderr, (stuck.returncode, stuck.stderr)

    concat = random_graph_ir(1, "concat")
    cnames = [struct_name(i, layer) for i, layer in enumerate(concat.layers)]
    conv1 = concat.layers[0]
    assert (conv1.kernel, conv1.padding, concat.layers[1].kernel) == ((3, 3), (1, 1), (1, 1))
    project = generate_project(concat, tmp_path / "b", load_board("pynq-z2"), extreme_inputs(concat),
                               plan=default_plan(concat))
    top = (project / sources.TOP_CPP).read_text()
    h, w, c = concat.input_shape
    assert f"msq::fork<in_t, {h * w * c}>(s_x, s_x_to_{cnames[0]}_0, s_x_to_{cnames[1]}_0);" in top  # in_width 1
    # conv1's sliding window (a 4-row line buffer) reads the whole 3-row image before conv1's
    # first pixel leaves: the 1x1 branch holds the input frame meanwhile; conv2's window (2 rows)
    # reads a row ahead of its pixel: the 3x3 branch holds at most a row
    pragmas = _skip_pragmas(top)
    assert h == 3 and pragmas.pop(f"s_x_to_{cnames[1]}_0") == h * w * c
    assert set(pragmas) <= {f"s_x_to_{cnames[0]}_0"} and all(d <= w * c for d in pragmas.values())
    _runs_threaded(project)


def test_hls_graph_simd_differs_between_a_producer_and_its_readers(tmp_path):
    """conv1's word is a whole pixel (its rows); conv2 reads 2 channels a word, add1 4: each edge of
    the fork has its own converter, and C-sim stays exact."""
    ir = random_graph_ir(0, "resnet-tiny")
    conv1 = ir.layers[0]
    assert conv1.rows == 8
    base = random_plan(ir, 3)
    layers = {**base.layers, "conv2": dataclasses.replace(base["conv2"], simd=2), "add1": LayerPlan(4)}
    plan = Plan(layers, base.in_width, base.out_width)
    top = _csim_exact(ir, plan, tmp_path, threaded=False)
    bits, total = conv1.out_fmt.bits, int(np.prod(conv1.out_shape))
    assert (f"msq::regroup<L0_conv1::out_word_t, L1_conv2::in_word_t, {bits}, 8, 2, {total}>"
            f"(s_L0_conv1_out_to_L1_conv2_0, s_L1_conv2_in);") in top
    assert (f"msq::regroup<L0_conv1::out_word_t, L3_add1::in1_word_t, {bits}, 8, 4, {total}>"
            f"(s_L0_conv1_out_to_L3_add1_1, s_L3_add1_in1);") in top
    assert top.count("msq::regroup<") == len(sources.regroups(ir, plan))


def _merge(name: str, kind: str, inputs: list, out_fmt: ActFormat) -> MergeLayer:
    """An add or concat of ``inputs`` (layers, or ``(name, shape, format)`` of the network input),
    every field derived from their formats."""
    srcs = [src if isinstance(src, tuple) else (src.name, tuple(src.out_shape), src.out_fmt) for src in inputs]
    shapes, fmts = tuple(s[1] for s in srcs), tuple(s[2] for s in srcs)
    out_shape = shapes[0] if kind == "add" else shapes[0][:-1] + (sum(s[-1] for s in shapes),)
    align, mult, shift, acc, rq = merge_params(kind, list(fmts), out_fmt)
    return MergeLayer(name, kind, tuple(s[0] for s in srcs), shapes, fmts, out_shape, out_fmt,
                      align, mult, shift, acc, rq)


def _loaded(ir: IRModel, tmp_path) -> IRModel:
    """``ir`` saved and loaded again: the loader accepts it, every field consistent."""
    save_ir(ir, tmp_path / "ir")
    return load_ir(tmp_path / "ir")


def test_hls_graph_three_readers_vector_concat_and_one_stream_read_twice(tmp_path):
    """A hand-built graph: the input read by three convs (two chained forks), an add of two 1x1
    branches, a concat of it with the 3x3 branch, and the logits concatenated with themselves (a
    vector concat, the last layer, reading one stream on both inputs)."""
    base = random_graph_ir(1, "concat")  # conv1 (3x3), conv2 (1x1), concat1, dense1
    conv1, conv2, concat1, dense1 = base.layers
    conv3 = dataclasses.replace(copy.deepcopy(conv2), name="conv3")
    add3 = _merge("add3", "add", [conv2, conv3], conv2.out_fmt)
    cat = _merge("concat1", "concat", [conv1, add3], concat1.out_fmt)
    assert cat.out_shape == concat1.out_shape
    cat2 = _merge("cat2", "concat", [dense1, dense1], dense1.out_fmt)
    for layer, inputs in ((conv1, ("input",)), (conv2, ("input",)), (conv3, ("input",)), (dense1, ("concat1",))):
        layer.inputs = inputs
    ir = IRModel("fan", base.input_shape, base.input_fmt, [conv1, conv2, conv3, add3, cat, dense1, cat2])
    ir = _loaded(ir, tmp_path)
    plan = dataclasses.replace(random_plan(ir, 4), in_width=1)
    top = _csim_exact(ir, plan, tmp_path)
    assert top.count("msq::fork<") == 3  # input: 3 readers, dense1: 2
    assert "msq::fork<in_t, " in top and "s_x_fork0" in top
    # concat1: both 1x1 branches (add3) hold what the 3x3 branch needs ahead of them (as in
    # test_hls_graph_forks_every_multi_reader_stream_and_sizes_the_skip); add3's two identical
    # branches and cat2's one-word stream need no more than the default depth
    h, w, c = ir.input_shape
    pragmas = _skip_pragmas(top)
    assert [pragmas.pop(f"s_x_to_L{i}_conv{i + 1}_0") for i in (1, 2)] == [h * w * c] * 2
    assert set(pragmas) <= {"s_x_to_L0_conv1_0"} and all(d <= w * c for d in pragmas.values())
    assert "msq::concat<L6_cat2>(" in top and "msq::add<L3_add3>(" in top


def test_hls_graph_residual_mlp_skip_holds_a_frame_per_dense_layer(tmp_path):
    """A vector residual: the input feeds dense1 -> dense2 and, directly, the add; two dense layers
    on the longer branch, each reading its whole input before its first word: the skip stream holds
    two input frames, so the next frame can enter while they work; C-sim exact."""
    f = 6
    d1, d2, d3 = (dataclasses.replace(synthetic_dense(f, rows, seed), name=f"dense{seed}")
                  for seed, rows in ((1, f), (2, f), (3, 3)))
    add1 = _merge("add1", "add", [d2, ("input", (f,), d1.in_fmt)], d1.out_fmt)
    d3.inputs = ("add1",)
    ir = _loaded(IRModel("mlpres", (f,), d1.in_fmt, [d1, d2, add1, d3]), tmp_path)
    plan = Plan({"dense1": LayerPlan(2, 2, 1), "dense2": LayerPlan(3, 1, 1), "add1": LayerPlan(3),
                 "dense3": LayerPlan(1, 1, 1)}, in_width=2, out_width=3)
    top = _csim_exact(ir, plan, tmp_path)
    assert _skip_pragmas(top) == {"s_x_to_L2_add1_1": 2 * f // plan.in_width}
    assert "2 dense layer(s) on that branch, a frame each" in " ".join(re.sub(r"//", " ", top).split())

