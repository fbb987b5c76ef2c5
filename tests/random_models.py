"""Random small MSQ models and their IRs, for property-based tests of every backend.

Each model is a real Brevitas model (random shapes, random per-row schemes, 2–8-bit weights and
activations, random BatchNorm statistics), its activation scales initialised from a few
training-mode passes, then exported through the product's own exporter.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from msq.ir.vectors import extreme_inputs  # noqa: F401  (re-exported for the tests)
from msq.frontend import models
from msq.frontend.export import export_model
from msq.frontend.models import QuantConfig
from msq.frontend.quantizer import msq_quantizers
from msq.ir.model import IRModel
from msq.ir.plan import LayerPlan, Plan, divisors, in_width_unit, simd_unit


def random_model(seed: int, kind: str | None = None, high: bool = False) -> tuple[nn.Sequential, tuple[int, ...]]:
    """A random Brevitas model and its torch input shape; ``high``: with high-precision rows in
    every layer (intra-layer multi-precision: 2-7-bit rows, and some rows wider, up to 8 bits)."""
    rng = np.random.default_rng(seed)
    high_rng = np.random.default_rng(seed + 7919) if high else None  # its own stream: the other draws stay
    torch.manual_seed(seed)
    kind = kind or str(rng.choice(["mlp", "cnn"]))
    wbits = int(rng.integers(2, 9))
    high_bits = 0
    if high_rng is not None:
        wbits = min(wbits, 7)
        high_bits = int(high_rng.integers(wbits + 1, 9))
    cfg = QuantConfig(wbits=wbits, abits=int(rng.integers(2, 9)), scheme="msq",
                      out_bits=int(rng.integers(2, 9)), high_bits=high_bits)
    signed = bool(rng.integers(2))
    if kind == "mlp":
        in_shape: tuple[int, ...] = (int(rng.integers(1, 20)),)
        widths = [int(w) for w in rng.integers(1, 24, size=rng.integers(0, 3))]
        layers: list[nn.Module] = [models.input_quant(cfg, signed)]
        fan_in = in_shape[0]
        for w in widths:
            layers += [models.linear(cfg, fan_in, w)]
            if rng.integers(2):
                layers += [nn.BatchNorm1d(w)]
            layers += [models.relu(cfg)]
            fan_in = w
        layers += [models.linear(cfg, fan_in, int(rng.integers(1, 12))), models.logits_quant(cfg)]
    else:
        cin, h, w = int(rng.integers(1, 4)), int(rng.integers(4, 10)), int(rng.integers(4, 10))
        in_shape = (cin, h, w)
        layers = [models.input_quant(cfg, signed)]
        for _ in range(int(rng.integers(1, 3))):
            k = int(rng.choice([1, 2, 3]))
            stride, pad = int(rng.integers(1, 3)), int(rng.integers(0, 2))
            if (h + 2 * pad - k) // stride + 1 < 2 or (w + 2 * pad - k) // stride + 1 < 2:
                stride, pad = 1, 1
            cout = int(rng.integers(1, 8))
            conv = models.conv(cfg, cin, cout, kernel=k, padding=pad)
            conv.stride = (stride, stride)
            layers += [conv, nn.BatchNorm2d(cout), models.relu(cfg)]
            h, w, cin = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1, cout
            if h >= 2 and w >= 2 and rng.integers(2):
                layers += [nn.MaxPool2d(2) if rng.integers(2) else nn.AvgPool2d(2)]
                h, w = h // 2, w // 2
        layers += [nn.Flatten(), models.linear(cfg, cin * h * w, int(rng.integers(1, 12))), models.logits_quant(cfg)]
    model = nn.Sequential(*layers)
    _randomize(model, rng, in_shape, signed, high_rng)
    return model, in_shape


@torch.no_grad()
def _randomize(model: nn.Module, rng: np.random.Generator, in_shape, signed: bool,
               high_rng: np.random.Generator | None = None) -> None:
    for name, tq in msq_quantizers(model).items():
        layer = model.get_submodule(name)
        rows = layer.weight.shape[0]
        dist = rng.choice(["normal", "uniform", "laplace"], size=rows)
        w = np.stack([getattr(rng, d)(size=layer.weight[0].numel()) if d != "uniform"
                      else rng.uniform(-1, 1, size=layer.weight[0].numel()) for d in dist])
        layer.weight.copy_(torch.as_tensor(w * rng.uniform(0.05, 1.0), dtype=torch.float32).view_as(layer.weight))
        if layer.bias is not None:
            layer.bias.copy_(torch.as_tensor(rng.normal(0, 0.3, rows), dtype=torch.float32))
        tq.sp2_mask.copy_(torch.as_tensor(rng.random(rows) < rng.random()))
        if high_rng is not None:
            hi = high_rng.random(rows) < high_rng.uniform(0.1, 0.6)
            hi[high_rng.integers(rows)] = True
            tq.hi_mask.copy_(torch.as_tensor(hi))
            tq.sp2_mask &= ~tq.hi_mask
        tq.reset_scales(layer.weight)
        tq.scale.mul_(torch.as_tensor(rng.uniform(0.7, 1.3, rows), dtype=torch.float32))
    for module in model.modules():
        if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            n = module.num_features
            module.running_mean.copy_(torch.as_tensor(rng.normal(0, 0.5, n), dtype=torch.float32))
            module.running_var.copy_(torch.as_tensor(rng.uniform(0.2, 3.0, n), dtype=torch.float32))
            sign = np.where(rng.random(n) < 0.2, -1.0, 1.0)
            module.weight.copy_(torch.as_tensor(sign * rng.uniform(0.3, 2.0, n), dtype=torch.float32))
            module.bias.copy_(torch.as_tensor(rng.normal(0, 0.5, n), dtype=torch.float32))
    model.train()
    lo = -1.0 if signed else 0.0
    for _ in range(3):  # activation quantizers initialise their power-of-two scales from these
        x = torch.as_tensor(rng.uniform(lo, 1.0, size=(16,) + tuple(in_shape)), dtype=torch.float32)
        bn_state = [(m, m.running_mean.clone(), m.running_var.clone()) for m in model.modules()
                    if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))]
        model(x)
        for m, mean, var in bn_state:  # keep the random BatchNorm statistics
            m.running_mean.copy_(mean)
            m.running_var.copy_(var)
    model.eval()


def random_ir(seed: int, kind: str | None = None, high: bool = False) -> IRModel:
    """The IR of :func:`random_model` (``high``: with high-precision rows); a model with a dead layer (every ReLU output zero during
    calibration, so no power-of-two scale) is redrawn from the next seed."""
    for attempt in range(seed, seed + 20):
        model, in_shape = random_model(attempt, kind, high)
        if all(_live(m) for m in model if hasattr(m, "act_quant") and m.act_quant.is_quant_enabled):
            return export_model(model, in_shape, model_name=f"random{attempt}", source={"random_seed": attempt})
    raise AssertionError(f"no live random model from seed {seed}")


class ConcatNet(nn.Module):
    """Two conv branches (3x3 and 1x1) concatenated on the channels, a ReLU quantizer, a dense."""

    def __init__(self, cfg: QuantConfig, in_shape: tuple[int, int, int], classes: int, widths: tuple[int, int] = (3, 2),
                 signed: bool = False):
        super().__init__()
        cin, h, w = in_shape
        self.inp = models.input_quant(cfg, signed)
        self.a, self.qa = models.conv(cfg, cin, widths[0]), models.branch_quant(cfg)
        self.b, self.qb = models.conv(cfg, cin, widths[1], kernel=1, padding=0), models.branch_quant(cfg)
        self.q = models.relu(cfg)
        self.fc, self.out = models.linear(cfg, sum(widths) * h * w, classes), models.logits_quant(cfg)

    def forward(self, x):
        x = self.inp(x)
        y = self.q(torch.relu(torch.cat([self.qa(self.a(x)), self.qb(self.b(x))], dim=1)))
        return self.out(self.fc(torch.flatten(y, 1)))


GRAPH_KINDS = ("resnet-tiny", "concat")


def random_graph_ir(seed: int, kind: str | None = None) -> IRModel:
    """The IR of a random small graph model: ``resnet-tiny`` (residual adds, identity and 1x1
    projection shortcuts) or ``concat`` (two branches of random widths concatenated), random
    image shape, bits and weights (as :func:`random_model`); redrawn from the next seed while a
    layer is dead."""
    for attempt in range(seed, seed + 20):
        rng = np.random.default_rng(attempt)
        torch.manual_seed(attempt)
        pick = kind or str(rng.choice(GRAPH_KINDS))
        cfg = QuantConfig(wbits=int(rng.integers(2, 9)), abits=int(rng.integers(2, 9)), scheme="msq",
                          out_bits=int(rng.integers(2, 9)))
        signed = bool(rng.integers(2))
        in_shape = (int(rng.integers(1, 4)), int(rng.integers(3, 8)), int(rng.integers(3, 8)))
        classes = int(rng.integers(1, 8))
        if pick == "resnet-tiny":
            model: nn.Module = models.build_resnet_tiny(in_shape, classes, cfg, signed)
        else:
            model = ConcatNet(cfg, in_shape, classes, (int(rng.integers(1, 5)), int(rng.integers(1, 5))), signed)
        _randomize(model, rng, in_shape, signed)
        if all(_live(m) for m in model.modules() if hasattr(m, "act_quant") and m.act_quant.is_quant_enabled):
            return export_model(model, in_shape, model_name=f"graph{attempt}", source={"random_seed": attempt})
    raise AssertionError(f"no live random graph model from seed {seed}")


def _live(module: nn.Module) -> bool:
    scale = float(module.act_quant.scale().detach())
    return abs(np.log2(scale) - round(np.log2(scale))) < 1e-9



def random_plan(ir: IRModel, seed: int) -> Plan:
    """A random legal plan: simd a random divisor of each layer's unit, 1..rows per fold in each
    scheme, the fixed-point ones split at random between the DSP and the LUT engine, 1..rows of the
    high-precision rows per fold in their engine, random stream widths."""
    rng = np.random.default_rng(seed)
    split = np.random.default_rng(seed + 1000)  # its own stream: the other draws stay as they were

    def pick(values: list[int]) -> int:
        return int(rng.choice(values))

    def pe(n: int) -> int:
        return int(rng.integers(1, n + 1)) if n else 0

    layers = {}
    for layer in ir.layers:
        simd = pick(divisors(simd_unit(layer)))
        if hasattr(layer, "scheme"):
            fixed = pe(len(layer.fixed_rows))
            in_luts = int(split.integers(0, fixed + 1))
            layers[layer.name] = LayerPlan(simd, pe(len(layer.sp2_rows)), fixed - in_luts, in_luts,
                                           int(split.integers(1, len(layer.high_rows) + 1)) if len(layer.high_rows) else 0)
        else:
            layers[layer.name] = LayerPlan(simd)
    return Plan(layers, pick(divisors(in_width_unit(ir))), pick(divisors(int(np.prod(ir.output_shape)))))
