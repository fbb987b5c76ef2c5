"""Model builders (MLP, small CNN, residual networks) from Brevitas layers.

Every quantized model starts with an input quantizer and is built from :data:`SUPPORTED_LAYERS`,
residual adds and channel concats (msq.frontend.trace checks a model's traced graph). Weights use :class:`~msq.frontend.quantizer.MSQWeightQuant`;
activations use Brevitas fixed-point quantizers (power-of-two scale, so ``x = x_int * 2^-f`` maps
straight to ``ap_fixed``/``ap_ufixed``): unsigned after ReLU, signed for the logits.
A user's own ``nn.Module`` (an ``nn.Sequential`` or its own forward()) built from the same layers
trains and exports the same way.
"""
from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear, QuantReLU
from brevitas.proxy.quant_proxy import QuantProxyFromInjector
from brevitas.quant import Int8ActPerTensorFixedPoint, Int8ActPerTensorFixedPointMSE, Uint8ActPerTensorFixedPoint
from torch import nn

from msq import numerics
from msq.errors import MSQError
from msq.frontend.avgpool import integer_avgpools
from msq.frontend.merge import exact_merges
from msq.frontend.quantizer import TRAINING_SCHEMES, MSQWeightQuant, check_high_bits

OUT_BITS = 8  # the logits leave the network as signed 8-bit fixed point
HIGH_PRECISION_SCHEMES = ("msq", "fixed")  # the schemes whose layers may hold high-precision fixed rows
SUPPORTED_LAYERS = (QuantLinear, QuantConv2d, QuantReLU, QuantIdentity, nn.BatchNorm1d, nn.BatchNorm2d,
                    nn.MaxPool2d, nn.AvgPool2d, nn.Flatten)
# The fixes error messages name (the builders below attach exactly these quantizers).
ACT_FIX = ("use brevitas.nn.QuantReLU(act_quant=Uint8ActPerTensorFixedPoint, bit_width=abits, "
           "return_quant_tensor=False) (or QuantIdentity with Int8ActPerTensorFixedPoint for signed values), "
           "a power-of-two scale: msq.frontend.models.relu(cfg) builds it")
INPUT_FIX = "begin with msq.frontend.models.input_quant(cfg, signed_input) (a fixed-point QuantIdentity)"
WEIGHT_FIX = ("weight_quant=msq.frontend.quantizer.MSQWeightQuant, weight_bit_width=wbits "
              "(msq.frontend.models.linear / conv build it)")
LAYER_FIXES = {
    nn.ReLU: ACT_FIX,
    nn.Linear: "use brevitas.nn.QuantLinear with " + WEIGHT_FIX,
    nn.Conv2d: "use brevitas.nn.QuantConv2d with " + WEIGHT_FIX,
    nn.Dropout: "remove it (inference has no dropout; MSQ trains without it)",
    nn.Identity: "remove it",
    nn.AdaptiveAvgPool2d: "use nn.AvgPool2d with the kernel equal to the image size",
}


@dataclass(frozen=True)
class QuantConfig:
    """Bit widths and weight scheme of a model ('float' = no quantization at all); ``high_bits``
    > 0 gives every layer rows at that fixed-point width (intra-layer multi-precision)."""

    wbits: int = 4
    abits: int = 4
    scheme: str = "msq"
    out_bits: int = OUT_BITS
    high_bits: int = 0

    def __post_init__(self):
        if self.scheme not in TRAINING_SCHEMES:
            raise MSQError(f"unknown scheme {self.scheme!r}: expected one of {', '.join(TRAINING_SCHEMES)}")
        numerics.check_bits(self.wbits, "wbits")
        numerics.check_bits(self.abits, "abits")
        numerics.check_bits(self.out_bits, "out_bits")
        check_high_bits(self.high_bits, self.wbits)
        if self.high_bits and self.scheme not in HIGH_PRECISION_SCHEMES:
            raise MSQError(f"high-precision rows need --scheme {' or '.join(HIGH_PRECISION_SCHEMES)}, "
                           f"not {self.scheme!r}")

    @property
    def quantized(self) -> bool:
        return self.scheme != "float"

    def as_dict(self) -> dict:
        return asdict(self)


def _weight_kwargs(cfg: QuantConfig) -> dict:
    if not cfg.quantized:
        return {"weight_quant": None}
    return {"weight_quant": MSQWeightQuant, "weight_bit_width": cfg.wbits, "weight_msq_scheme": cfg.scheme,
            "weight_high_bits": cfg.high_bits}


def _act_kwargs(cfg: QuantConfig, quant, bits: int) -> dict:
    return {"act_quant": quant if cfg.quantized else None, "bit_width": bits, "return_quant_tensor": False}


def input_quant(cfg: QuantConfig, signed: bool) -> QuantIdentity:
    """Quantizer of the network input: abits fixed point, unsigned for non-negative data."""
    quant = Int8ActPerTensorFixedPointMSE if signed else Uint8ActPerTensorFixedPoint
    return QuantIdentity(**_act_kwargs(cfg, quant, cfg.abits))


def relu(cfg: QuantConfig) -> QuantReLU:
    """ReLU whose output is unsigned abits fixed point."""
    return QuantReLU(**_act_kwargs(cfg, Uint8ActPerTensorFixedPoint, cfg.abits))


def logits_quant(cfg: QuantConfig) -> QuantIdentity:
    """Quantizer of the network output: signed out_bits fixed point."""
    return QuantIdentity(**_act_kwargs(cfg, Int8ActPerTensorFixedPoint, cfg.out_bits))


def linear(cfg: QuantConfig, fan_in: int, fan_out: int) -> QuantLinear:
    return QuantLinear(fan_in, fan_out, bias=True, **_weight_kwargs(cfg))


def conv(cfg: QuantConfig, cin: int, cout: int, kernel: int = 3, padding: int = 1, stride: int = 1) -> QuantConv2d:
    return QuantConv2d(cin, cout, kernel, padding=padding, stride=stride, bias=False, **_weight_kwargs(cfg))


def branch_quant(cfg: QuantConfig) -> QuantIdentity:
    """Quantizer of a residual branch before the add: signed abits fixed point (no ReLU yet)."""
    return QuantIdentity(**_act_kwargs(cfg, Int8ActPerTensorFixedPoint, cfg.abits))


def build_mlp(in_shape: tuple[int, ...], classes: int, cfg: QuantConfig, signed_input: bool = False,
              hidden: tuple[int, ...] = (64, 32)) -> nn.Sequential:
    """Flatten → (Linear → ReLU)* → Linear → logits."""
    fan_in = 1
    for d in in_shape:
        fan_in *= d
    layers: list[nn.Module] = [input_quant(cfg, signed_input), nn.Flatten()]
    for width in hidden:
        layers += [linear(cfg, fan_in, width), relu(cfg)]
        fan_in = width
    layers += [linear(cfg, fan_in, classes), logits_quant(cfg)]
    return nn.Sequential(*layers)


def build_cnn(in_shape: tuple[int, ...], classes: int, cfg: QuantConfig, signed_input: bool = False,
              channels: tuple[int, ...] = (8, 16)) -> nn.Sequential:
    """(Conv3x3 → BatchNorm → ReLU → MaxPool2)* → Flatten → Linear → logits."""
    if len(in_shape) != 3:
        raise MSQError(f"the CNN needs image inputs shaped (C, H, W), got {in_shape}")
    cin, h, w = in_shape
    layers: list[nn.Module] = [input_quant(cfg, signed_input)]
    for cout in channels:
        layers += [conv(cfg, cin, cout), nn.BatchNorm2d(cout), relu(cfg), nn.MaxPool2d(2)]
        cin, h, w = cout, h // 2, w // 2
    layers += [nn.Flatten(), linear(cfg, cin * h * w, classes), logits_quant(cfg)]
    return nn.Sequential(*layers)


class ResidualBlock(nn.Module):
    """Two 3x3 convs (the first may stride) with BatchNorm, added to the shortcut, then ReLU; the
    shortcut is the input, or a strided 1x1 conv with BatchNorm where the shape changes. Both
    branches are quantized (signed) before the add; the QuantReLU after it sets the sum's format."""

    def __init__(self, cfg: QuantConfig, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1, self.bn1, self.relu1 = conv(cfg, cin, cout, stride=stride), nn.BatchNorm2d(cout), relu(cfg)
        self.conv2, self.bn2, self.quant2 = conv(cfg, cout, cout), nn.BatchNorm2d(cout), branch_quant(cfg)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(conv(cfg, cin, cout, kernel=1, padding=0, stride=stride),
                                          nn.BatchNorm2d(cout), branch_quant(cfg))
        self.relu_out = relu(cfg)

    def forward(self, x):
        y = self.relu1(self.bn1(self.conv1(x)))
        y = self.quant2(self.bn2(self.conv2(y)))
        return self.relu_out(y + (x if self.shortcut is None else self.shortcut(x)))


class ResNet(nn.Module):
    """Stem conv → residual blocks → global average pool → dense → logits."""

    def __init__(self, in_shape: tuple[int, ...], classes: int, cfg: QuantConfig, signed_input: bool,
                 stem: int, stages: tuple[tuple[int, int], ...]):
        super().__init__()
        if len(in_shape) != 3:
            raise MSQError(f"a ResNet needs image inputs shaped (C, H, W), got {in_shape}")
        cin, h, w = in_shape
        self.inp = input_quant(cfg, signed_input)
        self.stem = nn.Sequential(conv(cfg, cin, stem), nn.BatchNorm2d(stem), relu(cfg))
        blocks, c = [], stem
        for cout, stride in stages:
            blocks.append(ResidualBlock(cfg, c, cout, stride))
            c, h, w = cout, (h - 1) // stride + 1, (w - 1) // stride + 1
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AvgPool2d((h, w))  # global: the kernel is the whole feature map
        self.fc, self.logits = linear(cfg, c, classes), logits_quant(cfg)

    def forward(self, x):
        x = self.pool(self.blocks(self.stem(self.inp(x))))
        return self.logits(self.fc(x.flatten(1)))


def build_resnet_tiny(in_shape: tuple[int, ...], classes: int, cfg: QuantConfig,
                      signed_input: bool = False) -> ResNet:
    """A small residual network for 8x8 digits: stem 8, a block 8 (identity shortcut), a block 16
    with stride 2 (1x1 projection shortcut), global average pool, dense."""
    return ResNet(in_shape, classes, cfg, signed_input, stem=8, stages=((8, 1), (16, 2)))


def build_resnet8(in_shape: tuple[int, ...], classes: int, cfg: QuantConfig, signed_input: bool = False) -> ResNet:
    """The MLPerf Tiny image-classification ResNet-8 topology for any image shape: stem conv 16,
    three residual stacks of 16/32/64 filters (stride 1/2/2, 1x1 projection shortcuts where the
    shape changes), global average pool, dense."""
    return ResNet(in_shape, classes, cfg, signed_input, stem=16, stages=((16, 1), (32, 2), (64, 2)))


BUILDERS = {"mlp": build_mlp, "cnn": build_cnn, "resnet-tiny": build_resnet_tiny, "resnet8": build_resnet8}


def load_factory(spec: str) -> Callable[..., nn.Module]:
    """A user's model factory from ``path/to/file.py:function``.

    The function is called as ``function(in_shape, classes, cfg, signed_input)`` (like
    :func:`build_mlp`) and returns an ``nn.Module`` built from supported layers (traced by torch.fx).
    """
    path, _, func = spec.rpartition(":")
    if not path.endswith(".py") or not func:
        raise MSQError(f"model {spec!r}: expected one of {', '.join(BUILDERS)} or 'path/to/file.py:function'")
    if not Path(path).is_file():
        raise MSQError(f"model file {path} does not exist")
    module_spec = importlib.util.spec_from_file_location(f"msq_user_model_{Path(path).stem}", path)
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except Exception as exc:  # a user's file: report any failure with its name
        raise MSQError(f"model file {path} failed to import: {exc}") from exc
    factory = getattr(module, func, None)
    if not callable(factory):
        raise MSQError(f"model file {path} has no function '{func}'")
    return factory


def build_model(kind: str | Callable[..., nn.Module], in_shape: tuple[int, ...], classes: int, cfg: QuantConfig,
                signed_input: bool = False) -> nn.Module:
    """Build a demo model (:data:`BUILDERS`) or a user's (``file.py:function``, or the function itself)
    for a dataset's input shape and class count, and check that it uses supported layers only."""
    factory = kind if callable(kind) else BUILDERS.get(kind) or load_factory(kind)
    from msq.frontend.trace import check_supported, ops

    model = factory(tuple(in_shape), classes, cfg, signed_input)
    graph = check_supported(model)
    if cfg.quantized:  # train on the pooling, add and concat the hardware computes
        graph_ops = ops(graph)
        integer_avgpools(model, graph_ops)
        exact_merges(graph_ops)
    else:
        make_float(model)
    return model


def make_float(model: nn.Module) -> None:
    """Switch off every Brevitas quantizer (weights, biases, activations), so the 'float' baseline
    of a user model that sets its own quantizers is float too; ReLUs still apply."""
    for module in model.modules():
        if isinstance(module, QuantProxyFromInjector):
            module.disable_quant = True


def describe(name: str, module: nn.Module) -> str:
    """How an error names a layer: its name in the model (an index in an nn.Sequential) and its type."""
    return f"layer '{name}' ({type(module).__name__})"
