"""``msq plan`` / ``msq explore`` / ``msq calibrate``: the planner and the design-space sweep on a run."""
from __future__ import annotations

from pathlib import Path

from msq.backends import explore, planner
from msq.backends.plan import save_plan
from msq.boards import Board
from msq.errors import MSQError
from msq.ir import load_ir
from msq.ir.model import IRModel


def run_ir(run: str | Path) -> IRModel:
    """The IR of a run directory (MSQError naming the missing directory)."""
    run = Path(run)
    if not (run / "ir").is_dir():
        raise MSQError(f"{run}/ir does not exist: run 'msq export {run}' first")
    return load_ir(run / "ir")


def plan_run(run: str | Path, board: Board, out: str | Path | None = None,
             headroom: float = planner.DEFAULT_HEADROOM) -> tuple[planner.PlanResult, Path]:
    """Plan ``run`` for ``board`` and write the plan JSON (default ``run/plan.json``)."""
    result = planner.plan_search(run_ir(run), board, headroom)
    path = Path(out) if out else Path(run) / "plan.json"
    save_plan(result.plan, path)
    return result, path


def explore_run(run: str | Path, board: Board, out: str | Path | None = None,
                headroom: float = planner.DEFAULT_HEADROOM) -> tuple[dict, Path]:
    """Sweep the SP2 ratio on ``run``'s IR for ``board``; writes explore.json and pareto.png."""
    path = Path(out) if out else Path(run) / "explore" / board.name
    return explore.write_explore(run_ir(run), board, path, headroom), path
