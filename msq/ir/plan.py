"""Engine parallelism per layer: how many rows each engine computes at once.

Every dense/conv layer has an SP2 engine (shift-add, LUTs) for its SP2 rows and a fixed-point
engine (multipliers bound to DSP) for its fixed rows; they run in parallel. ``sp2_lanes`` and
``fixed_lanes`` are the rows each engine computes concurrently (one MAC per lane per cycle), so
a layer with ``R_s`` SP2 rows and ``R_f`` fixed rows needs ``ceil(R_s / sp2_lanes)`` and
``ceil(R_f / fixed_lanes)`` passes over its fan-in. The planner (synthesis issue) chooses
them; :func:`default_plan` is the smallest design: one lane per engine that has rows.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from msq import atomic
from msq.errors import MSQError
from msq.ir.model import ComputeLayer, IRModel


@dataclass(frozen=True)
class LayerPlan:
    sp2_lanes: int
    fixed_lanes: int


def _check(layer: ComputeLayer, plan: LayerPlan) -> None:
    for what, lanes, rows in (("sp2_lanes", plan.sp2_lanes, len(layer.sp2_rows)),
                              ("fixed_lanes", plan.fixed_lanes, len(layer.fixed_rows))):
        if not isinstance(lanes, int) or isinstance(lanes, bool) or not (0 <= lanes <= rows) or (rows and not lanes):
            raise MSQError(f"plan for layer '{layer.name}': {what}={lanes!r} must be in [1, {rows}] "
                           f"({rows} rows of that scheme; 0 only when there are none)")


def default_plan(ir: IRModel) -> dict[str, LayerPlan]:
    """One lane per engine that has rows."""
    return {layer.name: LayerPlan(int(len(layer.sp2_rows) > 0), int(len(layer.fixed_rows) > 0))
            for layer in ir.compute_layers()}


def save_plan(plan: dict[str, LayerPlan], path: str | Path) -> None:
    atomic.write_json(path, {name: asdict(p) for name, p in plan.items()})


def load_plan(ir: IRModel, path: str | Path | None) -> dict[str, LayerPlan]:
    """Read a plan JSON (``{layer: {sp2_lanes, fixed_lanes}}``) and check it against the IR;
    ``None`` gives :func:`default_plan`."""
    if path is None:
        return default_plan(ir)
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise MSQError(f"plan {path}: cannot read it ({exc})") from exc
    plan = {}
    for layer in ir.compute_layers():
        entry = data.get(layer.name) if isinstance(data, dict) else None
        if not isinstance(entry, dict) or set(entry) != {"sp2_lanes", "fixed_lanes"}:
            raise MSQError(f"plan {path}: layer '{layer.name}' needs fields sp2_lanes and fixed_lanes")
        plan[layer.name] = LayerPlan(entry["sp2_lanes"], entry["fixed_lanes"])
        _check(layer, plan[layer.name])
    return plan
