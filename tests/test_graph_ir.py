"""The graph IR: residual add and channel concat from a traced model to the integer reference
and the torch integer model, bit-exact, and equal to the fake-quant model image for image;
validated on load; refused, by name, by the hardware backends."""
import copy
import json

import numpy as np
import pytest
import torch
from torch import nn

from msq import ref
from msq.backends.torch_int import IntegerModel
from msq.backends.hls.csim import CSIM_DIR, MISMATCHES_JSON
from msq.boards import load_board
from msq.errors import MSQError
from msq.flow import Flow, FlowConfig
from msq.frontend import models
from msq.frontend.checks import check_model
from msq.frontend.export import export_model
from msq.frontend.merge import HalfUp
from msq.frontend.models import QuantConfig, build_model
from msq.frontend.train import TrainConfig, fit, predict
from msq.ir.arith import ActFormat
from msq.ir.io import load_ir, save_ir
from msq.ir.model import MergeLayer
from msq.rundir import RunDir
from random_models import ConcatNet, extreme_inputs

CFG = QuantConfig()


def _warmed(kind, seed=0):
    """A quantized model after a few training-mode passes (its activation scales set)."""
    torch.manual_seed(seed)
    net = build_model(kind, (1, 8, 8), 10, CFG)
    net.train()
    with torch.no_grad():
        for _ in range(3):
            net(torch.rand(32, 1, 8, 8))
    return net.eval()


@pytest.fixture(scope="module")
def graphs(tmp_path_factory):
    out = {}
    for name, kind in (("resnet-tiny", "resnet-tiny"), ("resnet8", "resnet8"), ("concat", lambda shape, classes, cfg, signed: ConcatNet(cfg, shape, classes))):
        net = _warmed(kind)
        path = tmp_path_factory.mktemp(name)
        save_ir(export_model(net, (1, 8, 8), model_name=name), path)
        out[name] = (net, path)
    return out


def test_residual_and_concat_graphs_export_with_named_inputs(graphs):
    kinds = {}
    for name, (_, path) in graphs.items():
        manifest = json.loads((path / "manifest.json").read_text())
        kinds[name] = [(e["kind"], e.get("inputs")) for e in manifest["layers"]]
    tiny = kinds["resnet-tiny"]
    assert [k for k, _ in tiny] == ["conv", "conv", "conv", "add", "conv", "conv", "conv", "add", "avgpool", "dense"]
    assert tiny[3][1] == ["conv3", "conv1"] and tiny[6][1] == ["add1"] and tiny[7][1] == ["conv5", "conv6"]
    assert [k for k, _ in kinds["resnet8"]].count("add") == 3
    assert ("concat", ["conv1", "conv2"]) in kinds["concat"]


@pytest.mark.parametrize("name", ["resnet-tiny", "resnet8", "concat"])
def test_graph_ir_round_trips_and_torch_integer_model_equals_reference(graphs, name, tmp_path):
    net, path = graphs[name]
    ir = load_ir(path)
    save_ir(ir, tmp_path / "again")
    assert (tmp_path / "again" / "manifest.json").read_text() == (path / "manifest.json").read_text()
    x = np.concatenate([ir.quantize_input(torch.rand(64, 1, 8, 8).numpy()), extreme_inputs(ir)])
    assert np.array_equal(IntegerModel(ir)(x), ref.infer(ir, x))


def _layout(y):
    return y.transpose(0, 2, 3, 1) if y.ndim == 4 else y


@pytest.mark.parametrize("name", ["resnet-tiny", "concat"])
def test_fake_quant_merges_equal_the_integer_merges(graphs, name):
    """The quantizer after each add/concat gives the IR's integers exactly; for the residual adds
    (inputs of different formats: sums land on ties of the output grid) only with its HalfUp hook,
    since Brevitas rounds half to even."""
    net, path = graphs[name]
    net = copy.deepcopy(net)
    ir = load_ir(path)
    merges = [i for i, layer in enumerate(ir.layers) if isinstance(layer, MergeLayer)]
    quants = [m for m in net.modules() if any(isinstance(h, HalfUp) for h in m._forward_hooks.values())]
    assert len(quants) == len(merges)
    x = torch.rand(256, 1, 8, 8)
    outs = ref.infer(ir, ir.quantize_input(x.numpy()), keep=True)
    expect = [outs[i] * ir.layers[i].out_fmt.scale for i in merges]

    def merge_outputs():
        got = []
        hooks = [q.register_forward_hook(lambda m, i, o: got.append(_layout(o.detach().double().numpy())))
                 for q in quants]
        with torch.no_grad():
            net(x)
        for h in hooks:
            h.remove()
        return got

    assert all(np.array_equal(y, e) for y, e in zip(merge_outputs(), expect))
    if name == "resnet-tiny":
        for q in quants:
            for key in [k for k, h in q._forward_hooks.items() if isinstance(h, HalfUp)]:
                del q._forward_hooks[key]
        assert sum(int(np.sum(y != e)) for y, e in zip(merge_outputs(), expect)) > 0


def test_add_aligns_then_rounds_half_up_by_hand():
    """a = 3 in s4.1 (1.5), b = 5 in u4.2 (1.25): aligned 6 + 5 = 11 quarters = 2.75, to u4.1:
    5.5 halves rounds half up to 6 (3.0); the concat of the same values requantizes each."""
    fa, fb, out = ActFormat(4, 1, True), ActFormat(4, 2, False), ActFormat(4, 1, False)
    from msq.ir.arith import merge_params
    for kind, expect in (("add", [[6]]), ("concat", [[3, 3]])):
        align, mult, shift, acc, rq = merge_params(kind, [fa, fb], out)
        layer = MergeLayer("m", kind, ("input", "input"), ((1,), (1,)), (fa, fb), (1 if kind == "add" else 2,), out,
                           align, mult, shift, acc, rq)
        assert align == (1, 0)
        assert ref.merge(layer, [np.array([[3]]), np.array([[5]])]).tolist() == expect


def _edit(path, tmp_path, edit):
    target = tmp_path / "edited"
    save_ir(load_ir(path), target)
    manifest = json.loads((target / "manifest.json").read_text())
    edit(manifest["layers"])
    (target / "manifest.json").write_text(json.dumps(manifest))
    return target


@pytest.mark.parametrize("edit, message", [
    (lambda ls: ls[3].update(inputs=["conv3", "nowhere"]), r"layer 3 'add1': field 'inputs' names 'nowhere', "
                                                           r"which is neither 'input' nor an earlier layer"),
    (lambda ls: ls[3].update(inputs=["conv3"]), r"layer 3 'add1': field 'inputs' must be a list of 2 layer names"),
    (lambda ls: ls[3].update(align=[0, 5]), r"layer 3 'add1': field 'align' is \(0, 5\); the input and output "
                                            r"formats make it"),
    (lambda ls: ls[3].update(shift=3), r"layer 3 'add1': field 'shift' is 3"),
    (lambda ls: ls[3].update(in_fmts=ls[3]["in_fmts"][::-1], align=ls[3]["align"][::-1]),
     r"layer 3 'add1': field 'in_fmt' .* does not match the previous output format .* \(of 'conv3'\)"),
    (lambda ls: ls[3].update(out_shape=[8, 8, 9]), r"layer 3 'add1': fields 'in_shapes' .* do not make an add"),
    (lambda ls: ls[6].update(inputs=["conv5"]), r"layer 6 'conv6': field 'in_shape' \[8, 8, 8\] does not match the "
                                                r"previous output \[4, 4, 16\] \(of 'conv5'\)"),
    (lambda ls: ls[7].update(inputs=["conv5", "conv5"]), r"layer 'conv6' is never read"),
])
def test_graph_ir_validation_names_layer_and_field(graphs, tmp_path, edit, message):
    with pytest.raises(MSQError, match=message):
        load_ir(_edit(graphs["resnet-tiny"][1], tmp_path, edit))


class BadShortcut(nn.Module):
    def __init__(self):
        super().__init__()
        self.inp = models.input_quant(CFG, False)
        self.conv, self.q = models.conv(CFG, 1, 4, stride=2), models.branch_quant(CFG)
        self.out = models.relu(CFG)

    def forward(self, x):
        x = self.inp(x)
        return self.out(self.q(self.conv(x)) + x)


class Unquantized(BadShortcut):
    def __init__(self):
        super().__init__()
        self.conv = models.conv(CFG, 1, 1)

    def forward(self, x):
        x = self.inp(x)
        return self.out(self.conv(x) + x).flatten(1)


@pytest.mark.parametrize("model, message", [
    (BadShortcut, r"'add' \(add\) at test_graph_ir.py:\d+ `return self.out\(self.q\(self.conv\(x\)\) \+ x\)` cannot "
                  r"take its input, shaped \(4, 4, 4\) and \(1, 8, 8\) per sample .*1x1 projection conv"),
    (Unquantized, r"model check before training: 'add' \(add\) at test_graph_ir.py:\d+ .* reads layer 'conv1' before "
                  r"its activation quantizer: quantize each branch first"),
])
def test_graph_model_checks_name_the_source_line(model, message):
    with pytest.raises(MSQError, match=message):
        check_model(model(), (1, 8, 8), 64, CFG)


def test_resnet_tiny_trains_and_deploys_exactly_as_fake_quant(tmp_path):
    """Two epochs on digits; then the torch integer model, the integer reference and the
    fake-quant model predict the same class for every test image."""
    model, data, _, metrics = fit(TrainConfig(model="resnet-tiny", epochs=2, seed=0))
    ir = export_model(model, data.in_shape)
    assert sum(isinstance(layer, MergeLayer) for layer in ir.layers) == 2
    x = ir.quantize_input(data.x_test)
    deployed = ref.predict(ir, x)
    torch_int = IntegerModel(ir)(x).reshape(len(x), -1).argmax(axis=1)
    fake_quant = predict(model, data.x_test)
    assert np.array_equal(torch_int, deployed) and np.array_equal(fake_quant, deployed), \
        f"{int((fake_quant != deployed).sum())} images differ"
    assert 100.0 * float(np.mean(deployed == data.y_test)) == metrics["accuracy"]["test"] > 30


def test_flow_plans_and_generates_a_graph(tmp_path):
    """A residual model goes through the flow like a chain: planned for the board (merge layers
    included), its HLS project C-simulated exactly, its Verilog generated and lint clean."""
    out = tmp_path / "run"
    cfg = FlowConfig(train=TrainConfig(model="resnet-tiny", epochs=1, seed=0), out=out, baseline=False, until="rtl")
    Flow(cfg, load_board("pynq-z2")).execute()
    rd = RunDir(out)
    plan = json.loads(rd.plan_json.read_text())
    assert {"add1", "add2"} <= set(plan["layers"]) and plan["layers"]["add1"]["simd"] >= 1
    assert json.loads(rd.eval_json.read_text())["torch_int"]["mismatches"] == 0
    assert (rd.rtl_dir / "hdl" / "msq_layer_add1.v").is_file()
    assert "msq_fbuf_add1_1" in (rd.rtl_dir / "hdl" / "msq_layer_add1.v").read_text()
    assert json.loads((rd.hls_dir / CSIM_DIR / MISMATCHES_JSON).read_text())["mismatches"] == 0


@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 8, 8), (2, 5, 7)])
def test_resnet8_builds_for_any_input_shape(shape):
    net = build_model("resnet8", shape, 10, CFG)
    check_model(net, shape, 10, CFG)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [16, 16, 16, 32, 32, 32, 64, 64, 64]
    assert [c.kernel_size for c in convs].count((1, 1)) == 2
