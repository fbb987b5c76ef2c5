"""``msq explore``: throughput against resources over the SP2 ratio, with the planner's lanes.

A hardware what-if on a run's IR: for each ratio ``r`` every compute layer gets ``ceil(r * rows)``
SP2 rows (the IR's SP2 rows first, then its fixed rows, in order) and the rest fixed; accuracy is
not re-measured (that needs retraining with ``msq train --sp2-ratio r``). For each ratio the
planner picks the lanes (msq.design.planner) and the point records the predicted interval
(cycles.py), throughput at the board clock and the calibrated resource estimate. The best design is
the fastest that fits (ties: the smaller largest fraction of any board resource); the Pareto front is plotted as throughput vs LUT and DSP.
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np

from msq import atomic
from msq.design import planner
from msq.boards import Board
from msq.errors import MSQError
from msq.ir.model import SCHEME_FIXED, SCHEME_SP2, ComputeLayer, IRModel
from msq.progress import Progress, Step, silent

RATIOS = tuple(round(0.1 * i, 1) for i in range(11))
EXPLORE_JSON = "explore.json"
PARETO_PNG = "pareto.png"


def with_ratio(ir: IRModel, ratio: float) -> IRModel:
    """A copy of ``ir`` whose compute layers have ``ceil(ratio * rows)`` SP2 rows, ``rows`` those
    not at high precision (the high rows stay fixed point); counts only: the weights keep their
    values, so the copy is for cycle and resource models, not for RTL."""
    if not 0.0 <= ratio <= 1.0:
        raise MSQError(f"SP2 ratio must be in [0, 1], got {ratio}")
    layers = []
    for layer in ir.layers:
        if isinstance(layer, ComputeLayer):
            order = np.concatenate([layer.sp2_rows, layer.fixed_rows])
            scheme = np.full(layer.rows, SCHEME_FIXED, dtype=layer.scheme.dtype)
            scheme[order[:math.ceil(ratio * len(order))]] = SCHEME_SP2
            layer = dataclasses.replace(layer, scheme=scheme)
        layers.append(layer)
    return dataclasses.replace(ir, layers=layers)


def explore(ir: IRModel, board: Board, ratios: tuple[float, ...] = RATIOS,
            headroom: float = planner.HEADROOM, progress: Progress = silent) -> dict[str, Any]:
    """Plan and estimate the design at every ratio (a step of ``progress`` each: a large network
    takes minutes); returns the points and the best that fits."""
    points = []
    for i, r in enumerate(ratios):
        progress(Step("SP2 ratio sweep", i, len(ratios), "ratio", f"planning ratio {r:g}"))
        variant = with_ratio(ir, r)
        point: dict[str, Any] = {"ratio": r, "sp2_rows": int(sum(len(l.sp2_rows) for l in variant.compute_layers())),
                                 "rows": int(sum(l.rows for l in variant.compute_layers()))}
        try:
            res = planner.plan_search(variant, board, headroom)
        except MSQError as exc:
            points.append({**point, "fits": False, "error": str(exc)})
            continue
        points.append({**point, "fits": True, "interval": res.interval, "latency": res.latency,
                       "throughput": res.throughput(board.clock_mhz), **res.resources.as_dict(),
                       "plan": res.plan.as_dict()})
    progress(Step("SP2 ratio sweep", len(ratios), len(ratios), "ratio", "done"))
    fitting = [p for p in points if p["fits"]]
    best = min(fitting, key=lambda p: (p["interval"], _use(p, board))) if fitting else None
    return {"model": ir.name, "board": board.name, "clock_mhz": board.clock_mhz, "headroom": headroom,
            "note": "hardware what-if: rows re-split per ratio on the run's IR; accuracy not re-measured",
            "points": points, "pareto": pareto(fitting), "best": best}


def planned_ratio(ir: IRModel, board: Board, balance: float, headroom: float = planner.HEADROOM,
                  progress: Progress = silent) -> float | None:
    """The SP2 ratio of the fastest design of ``ir``'s topology that fits the board (this sweep),
    of equally fast ratios the one nearest ``balance`` (the board's LUT/DSP balance,
    ``cost_model.board_sp2_ratio``), higher on a tie; None when no ratio fits.

    Why a sweep and not the balance alone: layers fold in whole rows and steps, so the balanced
    share of rows often misses the fastest plan by a fold (measured on pynq-z2: mlp-128x3 takes 26
    cycles at the balance ratio 0.8, 24 at the planned 0.7)."""
    points = [p for p in explore(ir, board, headroom=headroom, progress=progress)["points"] if p["fits"]]
    if not points:
        return None
    fastest = min(p["interval"] for p in points)
    return min((p["ratio"] for p in points if p["interval"] == fastest), key=lambda r: (abs(r - balance), -r))


def _use(point: dict[str, Any], board: Board) -> float:
    """The largest fraction of any board resource a design uses (the tie-break between equals)."""
    return max(point[k] / getattr(board, k) for k in planner.RESOURCES if getattr(board, k))


def pareto(points: list[dict[str, Any]]) -> list[float]:
    """Ratios of the points no other point beats on both throughput and (LUT, DSP) use."""
    front = []
    for p in points:
        dominated = any(q["throughput"] >= p["throughput"] and q["lut"] <= p["lut"] and q["dsp"] <= p["dsp"]
                        and (q["throughput"], q["lut"], q["dsp"]) != (p["throughput"], p["lut"], p["dsp"])
                        for q in points)
        if not dominated:
            front.append(p["ratio"])
    return front


def plot(result: dict[str, Any], path: Path) -> None:
    """Throughput vs LUT and vs DSP, Pareto points joined, the best design marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = [p for p in result["points"] if p["fits"]]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key in zip(axes, ("lut", "dsp")):
        ax.scatter([p[key] for p in pts], [p["throughput"] for p in pts], c="tab:blue", label="design (ratio r)")
        for p in pts:
            ax.annotate(f"{p['ratio']:g}", (p[key], p["throughput"]), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")
        front = sorted((p for p in pts if p["ratio"] in result["pareto"]), key=lambda p: p[key])
        ax.plot([p[key] for p in front], [p["throughput"] for p in front], "r-", label="Pareto front")
        if result["best"]:
            ax.scatter([result["best"][key]], [result["best"]["throughput"]], marker="*", s=200, c="gold",
                       edgecolors="k", label="best that fits", zorder=3)
        ax.set_xlabel(f"estimated {key.upper()}")
        ax.set_ylabel("inferences / s")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{result['model']} on {result['board']} @ {result['clock_mhz']:g} MHz (SP2 ratio sweep)")
    fig.tight_layout()
    atomic.write_with(path, lambda p: fig.savefig(p, dpi=110, format="png"))
    plt.close(fig)


def write_explore(ir: IRModel, board: Board, out: str | Path, headroom: float = planner.HEADROOM) -> dict:
    """Run :func:`explore`, write ``out/explore.json`` and ``out/pareto.png`` (swapped in together);
    returns the result."""
    out = Path(out)
    atomic.check_replaceable(out)  # before the sweep, not after
    result = explore(ir, board, headroom=headroom)
    with atomic.atomic_dir(out) as tmp:
        atomic.write_json(tmp / EXPLORE_JSON, result)
        plot(result, tmp / PARETO_PNG)
    return result
