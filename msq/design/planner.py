"""The planner: each layer's SP2 and fixed engine lanes, balanced, fitting the board.

For a target interval ``T`` (cycles per inference) a compute layer with ``N`` output positions,
fan-in ``K`` and ``R`` rows may take at most ``P = floor(((T - 1) / N - R) / K)`` passes
(msq.backends.rtl.cycles); the fewest lanes that finish in ``P`` passes are
``ceil(R_sp2 / P)`` SP2 and ``ceil(R_fixed / P)`` fixed lanes, so the two engines of a layer
finish together and no layer is given lanes it does not need to meet ``T`` (layers are balanced
against the bottleneck). The planner searches the smallest ``T`` whose plan fits
``headroom`` x the board's LUT, FF, DSP and BRAM by the calibrated estimate
(msq.design.estimate); resources only shrink as ``T`` grows, so a bisection over the
intervals the layers can reach finds it. Predicted cycles come from ``cycles.py``, which the RTL
simulation matches to the cycle.
"""
from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

from msq.ir.plan import LayerPlan
from msq.backends.rtl import cycles
from msq.design.cost_model import HEADROOM
from msq.design.estimate import Resources, estimate_design
from msq.boards import Board
from msq.errors import MSQError
from msq.ir.model import ComputeLayer, IRModel
RESOURCES = ("lut", "ff", "dsp", "bram36")


@dataclass(frozen=True)
class PlanResult:
    """A plan with its predicted cycles and estimated resources."""

    plan: dict[str, LayerPlan]
    interval: int
    latency: int
    resources: Resources

    def throughput(self, clock_mhz: float) -> float:
        """Inferences per second at ``clock_mhz``."""
        return clock_mhz * 1e6 / self.interval


def _max_passes(layer: ComputeLayer) -> int:
    return max(len(layer.sp2_rows), len(layer.fixed_rows), 1)


def layer_plan_for(layer: ComputeLayer, target: int) -> LayerPlan | None:
    """The fewest lanes that keep ``layer`` within ``target`` cycles (None if it cannot)."""
    n = cycles.positions(layer)
    budget = (target - 1) // n - layer.rows
    if budget < layer.fan_in:
        return None
    p = min(budget // layer.fan_in, _max_passes(layer))
    r_s, r_f = len(layer.sp2_rows), len(layer.fixed_rows)
    return LayerPlan(math.ceil(r_s / p) if r_s else 0, math.ceil(r_f / p) if r_f else 0)


def plan_for_interval(ir: IRModel, target: int) -> dict[str, LayerPlan] | None:
    """The leanest plan meeting ``target`` cycles per inference (None if no plan can)."""
    plan = {}
    for layer in ir.compute_layers():
        lp = layer_plan_for(layer, target)
        if lp is None:
            return None
        plan[layer.name] = lp
    return plan


def candidate_intervals(ir: IRModel) -> list[int]:
    """Every interval a plan can reach: each layer's cycles at each pass count, ascending."""
    floor = cycles.inference_interval(ir, {layer.name: LayerPlan(len(layer.sp2_rows), len(layer.fixed_rows))
                                           for layer in ir.compute_layers()})
    values = {floor}
    for layer in ir.compute_layers():
        n = cycles.positions(layer)
        for p in range(1, _max_passes(layer) + 1):
            values.add(1 + n * (p * layer.fan_in + layer.rows))
    return sorted(v for v in values if v >= floor)


def fits(res: Resources, board: Board, headroom: float) -> bool:
    """Whether ``res`` fits ``headroom`` x the board's capacity of every resource."""
    return all(getattr(res, key) <= headroom * getattr(board, key) for key in RESOURCES)


def evaluate(ir: IRModel, plan: dict[str, LayerPlan]) -> PlanResult:
    """Cycles and estimated resources of ``plan``."""
    return PlanResult(plan, cycles.inference_interval(ir, plan), cycles.latency(ir, plan), estimate_design(ir, plan))


def plan_design(ir: IRModel, board: Board, headroom: float = HEADROOM) -> dict[str, LayerPlan]:
    """Per-layer lanes minimizing the inference interval within ``headroom`` x the board."""
    return plan_search(ir, board, headroom).plan


def plan_search(ir: IRModel, board: Board, headroom: float = HEADROOM) -> PlanResult:
    """:func:`plan_design` with the chosen plan's cycles and estimated resources."""
    if not 0 < headroom <= 1:
        raise MSQError(f"headroom must be in (0, 1], got {headroom}")
    if not ir.compute_layers():
        raise MSQError(f"model '{ir.name}' has no dense or conv layer to plan")
    candidates = candidate_intervals(ir)
    ok = lambda t: (p := plan_for_interval(ir, t)) is not None and fits(estimate_design(ir, p), board, headroom)
    if not ok(candidates[-1]):
        worst = evaluate(ir, plan_for_interval(ir, candidates[-1]))
        over = [f"{k.upper()} {getattr(worst.resources, k):g} > {headroom:g} x {getattr(board, k)}"
                for k in RESOURCES if getattr(worst.resources, k) > headroom * getattr(board, k)]
        raise MSQError(f"model '{ir.name}' does not fit board {board.name} even with one lane per engine: "
                       + ", ".join(over))
    lo = bisect.bisect_left(range(len(candidates)), True, key=lambda i: ok(candidates[i]))
    return evaluate(ir, plan_for_interval(ir, candidates[lo]))
