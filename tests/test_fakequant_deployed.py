"""Fake-quant equals deployed: the training-time model predicts what the integer reference predicts,
image for image, and its average pooling computes the integer model's avgpool exactly."""
import numpy as np
import pytest
import torch
from torch import nn

from msq import ref
from msq.frontend.avgpool import IntegerAvgPool2d
from msq.frontend.export import act_format, export_model, pool_layer, stream_shape
from msq.frontend.models import QuantConfig, build_model, input_quant, load_factory
from msq.frontend.train import TrainConfig, fit, predict

EXAMPLE = "examples/my_model.py:make_model"


@pytest.mark.parametrize("kind", ["mlp", "cnn", EXAMPLE])
def test_deployed_predictions_equal_fake_quant_predictions(kind):
    factory = load_factory(kind) if kind == EXAMPLE else None
    model, data, _, metrics = fit(TrainConfig(model=kind, epochs=6, seed=1), factory=factory)
    ir = export_model(model, data.in_shape)
    fake_quant = predict(model, data.x_test)
    deployed = ref.predict(ir, ir.quantize_input(data.x_test))
    assert np.array_equal(fake_quant, deployed), f"{int((fake_quant != deployed).sum())} images differ"
    assert 100.0 * float(np.mean(deployed == data.y_test)) == metrics["accuracy"]["test"]


@pytest.mark.parametrize("kernel, signed", [(2, False), (3, True), ((2, 3), False)])
def test_avgpool_forward_is_the_integer_avgpool(kernel, signed):
    torch.manual_seed(0)
    cfg = QuantConfig(4, 4, "fixed")
    net = build_model(lambda s, k, c, sg: nn.Sequential(input_quant(c, sg), nn.AvgPool2d(kernel)), (3, 7, 7), 1,
                      cfg, signed)
    assert isinstance(net[1], IntegerAvgPool2d)
    x = torch.rand(50, 3, 7, 7) * (2 if signed else 1) - (1 if signed else 0)
    net.eval()
    with torch.no_grad():
        y = net(x).double().numpy()
    # the IR layer of just this pool, built the way export builds it
    fmt = act_format(net[0], "0")
    layer = pool_layer(net[1], "pool", stream_shape((3, 7, 7)), fmt, None)
    x_int = np.rint(net[0](x).detach().double().numpy() / fmt.scale).astype(np.int64).transpose(0, 2, 3, 1)
    expected = ref.infer_layer(layer, x_int).transpose(0, 3, 1, 2)
    assert np.array_equal(y / fmt.scale, expected)
    plain_mean = nn.AvgPool2d.forward(net[1], net[0](x)).detach().double().numpy()
    assert (y != plain_mean).any()  # the rounding matters: a plain mean is not what the hardware computes


def test_avgpool_passes_the_mean_gradient():
    net = build_model(lambda s, k, c, sg: nn.Sequential(input_quant(c, sg), nn.AvgPool2d(2)), (1, 4, 4), 1,
                      QuantConfig(4, 4, "fixed"))
    q = net[0](torch.rand(1, 1, 4, 4)).detach().requires_grad_(True)
    assert net[1].tap.fmt is not None  # the pool knows its input format: it rounds
    net[1](q).sum().backward()
    assert torch.equal(q.grad, torch.full_like(q, 0.25))


def test_one_epoch_run_trains_and_reports_quantized_weights():
    """A run shorter than the float warm-up still ends on quantized weights, the ones export freezes."""
    model, data, _, metrics = fit(TrainConfig(model="mlp", epochs=1, scheme="fixed", seed=0))
    ir = export_model(model, data.in_shape)
    assert np.array_equal(predict(model, data.x_test), ref.predict(ir, ir.quantize_input(data.x_test)))
