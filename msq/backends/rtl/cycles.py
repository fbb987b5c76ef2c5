"""The exact cycle model of the generated RTL (docs/rtl.md derives it; the tests measure it).

Every layer owns a ping-pong frame buffer for its input and an engine that works on one whole
input frame at a time. With ``P = max(ceil(R_sp2 / sp2_lanes), ceil(R_fixed / fixed_lanes))``
passes over the fan-in ``K``, ``R`` rows and ``N`` output positions (1 for dense layers), a
compute layer's engine is busy ``1 + N * (P * K + R)`` cycles per frame (1 cycle to take the
frame, then per position P*K MAC cycles and R cycles emitting the requantized rows); a pooling
layer is busy ``1 + elements_out * kh * kw``. Layers overlap across inferences (dataflow), so
in steady state one inference completes every :func:`inference_interval` cycles: the slowest of
the input stream (one beat per cycle) and every layer. :func:`latency` is the cycles from the
first input beat to the last output beat of one inference entering an idle pipeline, both beats
counted. Both figures assume a full-rate input stream and no output back-pressure.
"""
from __future__ import annotations

import math

import numpy as np

from msq.ir.plan import LayerPlan
from msq.ir.model import ComputeLayer, IRModel, Layer

# Latency added per layer besides its engine time: the output register between a layer and the
# next layer's frame buffer (the buffer's "full" flag is then seen in the engine's first cycle).
HANDOFF_CYCLES = 1


def passes(layer: ComputeLayer, plan: LayerPlan) -> int:
    """Passes over the fan-in per output position: the slower of the two engines."""
    p_sp2 = math.ceil(len(layer.sp2_rows) / plan.sp2_lanes) if plan.sp2_lanes else 0
    p_fix = math.ceil(len(layer.fixed_rows) / plan.fixed_lanes) if plan.fixed_lanes else 0
    return max(p_sp2, p_fix)


def positions(layer: Layer) -> int:
    """Output positions of a layer (pixels for conv, 1 for dense)."""
    return 1 if layer.kind == "dense" else int(layer.out_shape[0] * layer.out_shape[1])


def layer_cycles(layer: Layer, plan: LayerPlan | None = None) -> int:
    """Cycles a layer's engine spends on one frame with no output back-pressure."""
    if isinstance(layer, ComputeLayer):
        if plan is None:
            raise ValueError(f"layer '{layer.name}' needs its engine plan")
        return 1 + positions(layer) * (passes(layer, plan) * layer.fan_in + layer.rows)
    return 1 + int(np.prod(layer.out_shape)) * layer.kernel[0] * layer.kernel[1]


def all_layer_cycles(ir: IRModel, plan: dict[str, LayerPlan]) -> dict[str, int]:
    """:func:`layer_cycles` of every layer, by name."""
    return {layer.name: layer_cycles(layer, plan.get(layer.name)) for layer in ir.layers}


def inference_interval(ir: IRModel, plan: dict[str, LayerPlan]) -> int:
    """Steady-state cycles per inference: the slowest pipeline stage (input stream included)."""
    return max([int(np.prod(ir.input_shape))] + list(all_layer_cycles(ir, plan).values()))


def latency(ir: IRModel, plan: dict[str, LayerPlan]) -> int:
    """Cycles from the first input beat to the last output beat through an idle pipeline."""
    return int(np.prod(ir.input_shape)) + sum(c + HANDOFF_CYCLES for c in all_layer_cycles(ir, plan).values())
