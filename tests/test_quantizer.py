"""The MSQ weight quantizer inside Brevitas layers."""
import numpy as np
import torch
from brevitas.nn import QuantConv2d, QuantLinear

from msq import numerics
from msq.frontend.quantizer import MSQWeightQuant, msq_quantizers


def _layer(scheme="msq", bits=4):
    torch.manual_seed(0)
    return QuantLinear(32, 12, bias=True, weight_quant=MSQWeightQuant, weight_bit_width=bits,
                       weight_msq_scheme=scheme)


def test_mixed_rows_quantize_to_their_own_integer_levels():
    fc = _layer()
    tq = msq_quantizers(fc)[""]
    tq.sp2_mask[:6] = True
    qw = fc.quant_weight()
    w_int = (qw.value / qw.scale).detach().numpy()
    assert np.allclose(w_int, np.round(w_int), atol=1e-4)
    w_int = np.round(w_int).astype(int)
    assert set(w_int[:6].ravel()) <= set(numerics.integer_levels("sp2", 4).tolist())
    assert set(w_int[6:].ravel()) <= set(numerics.integer_levels("fixed", 4).tolist())


def test_gradients_reach_weights_and_scales():
    fc = _layer("sp2")
    fc(torch.randn(8, 32)).pow(2).sum().backward()
    tq = msq_quantizers(fc)[""]
    assert fc.weight.grad is not None and fc.weight.grad.abs().sum() > 0
    assert tq.scale.grad is not None and tq.scale.grad.abs().sum() > 0


def test_scales_start_at_the_mse_optimum():
    fc = _layer("fixed")
    tq = msq_quantizers(fc)[""]
    alpha, _ = numerics.mse_optimal_scale(fc.weight.detach().numpy(), "fixed", 4)
    assert np.allclose(tq.scale.detach().numpy(), alpha, rtol=1e-6)


def test_state_dict_round_trip_keeps_masks_and_scales():
    fc = QuantConv2d(3, 5, 3, weight_quant=MSQWeightQuant, weight_bit_width=5)
    msq_quantizers(fc)[""].sp2_mask[1:3] = True
    fc2 = QuantConv2d(3, 5, 3, weight_quant=MSQWeightQuant, weight_bit_width=5)
    fc2.load_state_dict(fc.state_dict())
    assert torch.equal(msq_quantizers(fc2)[""].sp2_mask, msq_quantizers(fc)[""].sp2_mask)
    assert torch.equal(fc2.quant_weight().value, fc.quant_weight().value)
