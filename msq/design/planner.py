"""The planner: each layer's SIMD and engine PEs, balanced, fitting the board.

A layer of the folded dataflow is busy ``pixels x folds x steps`` cycles per frame
(msq.backends.rtl.cycles), with ``steps = kh*kw*C / simd`` and ``folds`` the slower engine's
``ceil(R / pe)``. For a target of ``T`` cycles per inference, every ``simd`` dividing a layer's
channels allows at most ``T / (pixels x steps)`` folds, and the fewest PEs that finish in those
folds are ``ceil(R_sp2 / folds)``, ``ceil(R_fixed / folds)`` and, for the high-precision rows' DSP
engine, ``ceil(R_high / folds)``: the engines finish together and no layer gets more than it needs
to meet ``T``. The fixed-point PEs are split between the DSP
engine and the LUT engine (all, three quarters, half, a quarter or none on DSPs; only DSPs when
``lut_fixed`` is off). Of the combinations of layer options that fit (by the calibrated estimate,
msq.design.estimate) the planner takes the one using the least of the board (the sum of its
LUT, FF, DSP and BRAM shares), found by a Pareto search over the layers. The stream widths are the narrowest
that keep pace. It searches the smallest ``T`` whose plan fits ``headroom`` x every board
resource: resources only shrink as ``T`` grows, so a bisection over the step counts layers can
reach finds it. The chosen plan's cycles come from the exact cycle model, which RTL simulation
matches.
"""
from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

import numpy as np

from msq.backends.rtl import cycles, verilog
from msq.boards import Board
from msq.design import cost_model
from msq.design.cost_model import HEADROOM
from msq.design.estimate import Resources, estimate_design, layer_resources
from msq.errors import MSQError
from msq.ir.model import ComputeLayer, IRModel, Layer
from msq.ir.plan import LayerPlan, Plan, divisors, in_width_unit, simd_unit

RESOURCES = ("lut", "ff", "dsp", "bram36")
MAX_PARTIAL_PLANS = 2000  # combinations kept per layer by the search, the least of the board first
MAX_CHECKED_PLANS = 32    # complete plans checked with the whole-design estimate
FIXED_DSP_SHARES = (1.0, 0.75, 0.5, 0.25, 0.0)
PARETO_BLOCK = 512  # rows the Pareto filter compares at once  # of a layer's fixed-point PEs, on the DSP engine


@dataclass(frozen=True)
class PlanResult:
    """A plan with its cycles (exact) and estimated resources."""

    plan: Plan
    interval: float
    latency: int
    resources: Resources

    def throughput(self, clock_mhz: float) -> float:
        """Inferences per second at ``clock_mhz``."""
        return clock_mhz * 1e6 / self.interval


def fixed_splits(pe: int, lut_fixed: bool) -> list[tuple[int, int]]:
    """(pe_fixed, pe_fixed_lut) ways to place ``pe`` fixed-point PEs: the DSP engine's share
    rounded down to an even count (so it can pack two rows per DSP) where it is not all of them."""
    if not lut_fixed or pe == 0:
        return [(pe, 0)]
    out = []
    for share in FIXED_DSP_SHARES:
        dsp = pe if share == 1.0 else 2 * int(share * pe / 2)
        if (dsp, pe - dsp) not in out:
            out.append((dsp, pe - dsp))
    return out


def layer_options(layer: Layer, target: int, lut_fixed: bool = True) -> list[LayerPlan]:
    """For every ``simd`` the layer allows, the fewest PEs that keep it within ``target`` cycles
    (the fixed-point ones split every way :func:`fixed_splits` allows)."""
    out = []
    n_pix = verilog.pixels(layer)
    for simd in divisors(simd_unit(layer)):
        if isinstance(layer, ComputeLayer):
            steps = verilog.steps_per_fold(layer, LayerPlan(simd))
            r_s, r_f, r_h = len(layer.sp2_rows), len(layer.fixed_rows), len(layer.high_rows)
            nf = min(target // (n_pix * steps), _most_rows(layer))
            if nf >= 1:
                pe_s, pe_f, pe_h = (math.ceil(r / nf) for r in (r_s, r_f, r_h))
                out += [LayerPlan(simd, pe_s, dsp, lut, pe_h) for dsp, lut in fixed_splits(pe_f, lut_fixed)]
        elif cycles.layer_steps(layer, LayerPlan(simd)) <= target:
            out.append(LayerPlan(simd))
            break  # pooling costs the same at any width: the narrowest that keeps pace
    return out


def _width(elems: int, unit: int, target: int) -> int | None:
    """The narrowest stream width (a divisor of ``unit``) that moves ``elems`` elements in ``target`` beats."""
    return next((d for d in divisors(unit) if elems // d <= target), None)


def _stream_widths(ir: IRModel, target: int) -> tuple[int | None, int | None]:
    """(in_width, out_width) that keep pace with ``target``."""
    out = int(np.prod(ir.output_shape))
    return _width(int(np.prod(ir.input_shape)), in_width_unit(ir), target), _width(out, out, target)


class _Costs:
    """Estimated resources of layer options, each computed once per search, with the fewest frame
    buffers a layer's input can have (:data:`cycles.MIN_BUFFERS`): a lower bound for the layer-by-layer
    search, whose candidates the whole-design estimate then checks with the real counts."""

    def __init__(self) -> None:
        self.table = cost_model.calibration()
        self.cache: dict[tuple[str, LayerPlan], Resources] = {}

    def __call__(self, layer: Layer, lp: LayerPlan) -> Resources:
        key = (layer.name, lp)
        if key not in self.cache:
            self.cache[key] = layer_resources(layer, lp, (cycles.MIN_BUFFERS,) * len(layer.in_shapes),
                                              table=self.table)
        return self.cache[key]


def _vector(res: Resources) -> tuple[float, ...]:
    return tuple(float(getattr(res, k)) for k in RESOURCES)


def _shares(board: Board) -> np.ndarray:
    """Per resource, the board share of one unit (0 where the board has none): a plan's use of
    the board is its resource vector times this."""
    return np.array([1.0 / getattr(board, k) if getattr(board, k) else 0.0 for k in RESOURCES])


def pareto_front(vectors: np.ndarray, scale: np.ndarray | None = None, limit: int | None = None) -> np.ndarray:
    """Indices of the rows of ``vectors`` that no other row dominates (no larger in every column;
    of equal rows the first), in ascending order of ``vectors @ scale`` (non-negative; ties, and
    no ``scale``, in ascending lexicographic order): the first ``limit`` of them."""
    cost = vectors @ scale if scale is not None else np.zeros(len(vectors))
    order = np.lexsort(np.vstack([vectors.T[::-1], cost[None, :]]))
    rows = vectors[order]
    # in this order only an earlier row can dominate a row, and a row an earlier one dominates is
    # dominated by a kept one too: so a row is kept iff no earlier row dominates it, which blocks
    # of rows test at once, against the rows kept so far and the earlier rows of their block
    kept = np.zeros(0, dtype=np.int64)
    for start in range(0, len(rows), PARETO_BLOCK):
        if limit is not None and len(kept) >= limit:
            break
        block = rows[start:start + PARETO_BLOCK]
        by_kept = np.all(rows[kept][None, :, :] <= block[:, None, :], axis=2).any(axis=1)
        by_block = np.all(block[None, :, :] <= block[:, None, :], axis=2)  # [i, j]: row j dominates row i
        by_block &= np.tri(len(block), k=-1, dtype=bool)                   # ... and comes before it
        kept = np.concatenate([kept, start + np.flatnonzero(~by_kept & ~by_block.any(axis=1))])
    return order[kept[:limit]]


def fitting_plan(ir: IRModel, target: int, board: Board, headroom: float, lut_fixed: bool = True,
                 costs: _Costs | None = None) -> Plan | None:
    """The plan that finishes every stage in ``target`` cycles and uses the least of the board
    (the sum of its shares of LUT, FF, DSP and BRAM) among those that fit ``headroom`` x every
    board resource; None if none does.

    Layers add up: the search keeps, layer by layer, every combination of layer options that fits
    and that no other combination beats in every resource (the Pareto front), so a plan that
    trades DSPs in one layer for LUTs in another is found when it is the only one that fits. The
    candidates are then checked, least first, with the whole-design estimate (whose frame-buffer
    counts depend on the plan as a whole)."""
    costs = costs or _Costs()
    in_w, out_w = _stream_widths(ir, target)
    if in_w is None or out_w is None:
        return None
    budget = np.array([headroom * getattr(board, k) for k in RESOURCES])
    scale = _shares(board)
    sums = np.zeros((1, len(RESOURCES)))
    choices: list[tuple[LayerPlan, ...]] = [()]
    for layer in ir.layers:
        options = layer_options(layer, target, lut_fixed)
        if not options:
            return None
        vecs = np.array([_vector(costs(layer, lp)) for lp in options])
        keep = pareto_front(vecs)
        options, vecs = [options[i] for i in keep], vecs[keep]
        combined = (sums[:, None, :] + vecs[None, :, :]).reshape(-1, len(RESOURCES))
        ok = np.flatnonzero(np.all(combined <= budget, axis=1))
        if not len(ok):
            return None
        front = ok[pareto_front(combined[ok], scale, MAX_PARTIAL_PLANS)]
        sums = combined[front]
        choices = [choices[i // len(options)] + (options[i % len(options)],) for i in front]
    for i in np.argsort(sums @ scale, kind="stable")[:MAX_CHECKED_PLANS]:
        plan = Plan(dict(zip((layer.name for layer in ir.layers), choices[i])), in_w, out_w)
        if fits(estimate_design(ir, plan), board, headroom):
            return plan
    return None


def smallest_plan(ir: IRModel, target: int, board: Board, lut_fixed: bool = True,
                  costs: _Costs | None = None) -> Plan:
    """Each layer's option at ``target`` that uses the least of the board, budgets ignored (what
    the error of a model that fits no budget reports)."""
    costs = costs or _Costs()
    scale = _shares(board)
    layers = {layer.name: min(layer_options(layer, target, lut_fixed),
                              key=lambda lp: float(np.array(_vector(costs(layer, lp))) @ scale))
              for layer in ir.layers}
    in_w, out_w = _stream_widths(ir, target)
    return Plan(layers, in_w or 1, out_w or 1)


def candidate_targets(ir: IRModel) -> list[int]:
    """Every per-frame cycle count a stage can reach, ascending, from the fastest plan's slowest
    stage up to the smallest design's."""
    values = set()
    for layer in ir.layers:
        n_pix = verilog.pixels(layer)
        for simd in divisors(simd_unit(layer)):
            if isinstance(layer, ComputeLayer):
                steps = verilog.steps_per_fold(layer, LayerPlan(simd))
                values.update(n_pix * steps * nf for nf in range(1, _most_rows(layer) + 1))
            else:
                values.add(cycles.layer_steps(layer, LayerPlan(simd)))
    for elems, unit in ((int(np.prod(ir.input_shape)), in_width_unit(ir)),
                        (int(np.prod(ir.output_shape)), int(np.prod(ir.output_shape)))):
        values.update(elems // d for d in divisors(unit))
    floor = _stage_floor(ir)
    return sorted(v for v in values if v >= floor)


def _stage_floor(ir: IRModel) -> int:
    """The slowest layer at its fastest (full SIMD, every row in one fold): no smaller target is
    feasible."""
    return max(cycles.layer_steps(layer, LayerPlan(simd_unit(layer), len(layer.sp2_rows), len(layer.fixed_rows),
                                                   pe_fixed_hi=len(layer.high_rows))
                                  if isinstance(layer, ComputeLayer) else LayerPlan(simd_unit(layer)))
               for layer in ir.layers)


def _most_rows(layer: ComputeLayer) -> int:
    """Rows of the layer's largest row group (SP2, fixed point, high precision): its most folds."""
    return max(len(layer.sp2_rows), len(layer.fixed_rows), len(layer.high_rows))


def fits(res: Resources, board: Board, headroom: float) -> bool:
    """Whether ``res`` fits ``headroom`` x the board's capacity of every resource."""
    return all(getattr(res, key) <= headroom * getattr(board, key) for key in RESOURCES)


def evaluate(ir: IRModel, plan: Plan) -> PlanResult:
    """Exact cycles and estimated resources of ``plan``."""
    burst = cycles.timing(ir, plan, cycles.timing_inferences(ir, plan))  # its first inference meets an idle pipeline
    return PlanResult(plan, burst.interval, burst.latency, estimate_design(ir, plan))


def plan_search(ir: IRModel, board: Board, headroom: float = HEADROOM, lut_fixed: bool = True) -> PlanResult:
    """The plan with the fewest cycles per frame whose estimate fits ``headroom`` x the board;
    ``lut_fixed`` lets fixed-point rows use the LUT engine besides the DSP engine."""
    if not 0 < headroom <= 1:
        raise MSQError(f"headroom must be in (0, 1], got {headroom}")
    if not ir.compute_layers():
        raise MSQError(f"model '{ir.name}' has no dense or conv layer to plan")
    targets = candidate_targets(ir)
    costs = _Costs()
    found: dict[int, Plan | None] = {}

    def ok(i: int) -> bool:
        if i not in found:
            found[i] = fitting_plan(ir, targets[i], board, headroom, lut_fixed, costs)
        return found[i] is not None

    if not ok(len(targets) - 1):
        res = estimate_design(ir, smallest_plan(ir, targets[-1], board, lut_fixed, costs))
        over = [f"{k.upper()} {getattr(res, k):g} > {headroom:g} x {getattr(board, k)}"
                for k in RESOURCES if getattr(res, k) > headroom * getattr(board, k)]
        raise MSQError(f"model '{ir.name}' does not fit board {board.name} even in its smallest design: "
                       + ", ".join(over))
    lo = bisect.bisect_left(range(len(targets)), True, key=ok)
    return evaluate(ir, found[lo])


def plan_design(ir: IRModel, board: Board, headroom: float = HEADROOM, lut_fixed: bool = True) -> Plan:
    """:func:`plan_search`'s plan."""
    return plan_search(ir, board, headroom, lut_fixed).plan
