"""``msq flow``: train → export → HLS + C-sim → Verilog + simulation → synthesis → report.

Each stage records a fingerprint of its inputs (settings and the bytes of the files it reads) in
``flow_state.json``; a re-run skips every stage whose fingerprint and outputs are unchanged, so it
resumes from the first stage whose inputs changed. A failing stage stops the flow with its
message; the earlier stages' outputs stay as they were. ``summary.json`` is rewritten after every
stage.
"""
from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import click

from msq import __version__, atomic
from msq.boards import Board, load_board
from msq.errors import MSQError
from msq.frontend.train import TrainConfig

STATE = "flow_state.json"
SUMMARY = "summary.json"
_SKIP_DIRS = {"csim", "sim", "sim_build", "build", "synth", "__pycache__"}


def digest(paths: list[Path]) -> str:
    """SHA-256 over the bytes of files (directories: every file below, in sorted order, except
    outputs of later stages such as csim/, sim/ and synth/)."""
    h = hashlib.sha256()
    for path in paths:
        files = [path] if path.is_file() else sorted(
            p for p in path.rglob("*") if p.is_file() and not _SKIP_DIRS.intersection(p.relative_to(path).parts))
        for f in files:
            h.update(str(f.relative_to(path.parent)).encode())
            h.update(f.read_bytes())
    return h.hexdigest()


@dataclass
class FlowConfig:
    """What ``msq flow`` was asked to do."""

    train: TrainConfig
    out: Path
    simulator: str = "verilator"
    synth_tool: str = "auto"
    baseline: bool = True  # also train a float model of the same topology for the accuracy table


@dataclass
class Stage:
    name: str
    inputs: Callable[[], list[Any]]  # settings and paths whose content decides the result
    run: Callable[[], dict[str, Any]]  # does the work, returns its part of the summary
    outputs: Callable[[], list[Path]] = field(default=lambda: [])


class Flow:
    """The stages of one run directory, with resume by fingerprint."""

    def __init__(self, cfg: FlowConfig):
        self.cfg = cfg
        self.run = Path(cfg.out)
        self.board: Board = load_board(cfg.train.board)
        self.state_path = self.run / STATE
        self.state: dict[str, Any] = json.loads(self.state_path.read_text()) if self.state_path.is_file() else {}
        self.results: dict[str, dict[str, Any]] = {}

    # --- stages -------------------------------------------------------------------------------

    def stages(self) -> list[Stage]:
        r, cfg = self.run, self.cfg
        board_file = Path(cfg.train.board) if cfg.train.board.endswith((".yaml", ".yml")) else None
        data_file = Path(cfg.train.dataset) if cfg.train.dataset.endswith(".npz") else None
        model_file = Path(cfg.train.model.rpartition(":")[0]) if ":" in cfg.train.model else None
        extra = [p for p in (board_file, data_file, model_file) if p is not None]
        stages = [Stage("train", lambda: [asdict(cfg.train), __version__, *extra], self._train,
                        lambda: [r / "model.pt", r / "metrics.json"])]
        if cfg.baseline:
            stages.append(Stage("baseline", lambda: [asdict(cfg.train), __version__, *extra], self._baseline,
                                lambda: [r / "float" / "metrics.json"]))
        stages += [
            Stage("export", lambda: [r / "model.pt"], self._export, lambda: [r / "ir"]),
            Stage("eval", lambda: [r / "ir", cfg.train.dataset, *extra], self._eval, lambda: [r / "eval.json"]),
            Stage("plan", lambda: [r / "ir", asdict(self.board)], self._plan, lambda: [r / "plan.json"]),
            Stage("hls", lambda: [r / "ir", r / "plan.json", asdict(self.board)], self._hls, lambda: [r / "hls"]),
            Stage("csim", lambda: [r / "hls"], self._csim, lambda: [r / "hls" / "csim"]),
            Stage("rtl", lambda: [r / "ir", r / "plan.json"], self._rtl, lambda: [r / "rtl"]),
            Stage("rtlsim", lambda: [r / "rtl", cfg.simulator], self._rtlsim, lambda: [r / "rtl" / "sim"]),
            Stage("synth", lambda: [r / "rtl" / "hdl", asdict(self.board), cfg.synth_tool], self._synth,
                  lambda: [r / "rtl" / "synth" / "synth.json"]),
        ]
        return stages

    def _train(self) -> dict[str, Any]:
        from msq.frontend.train import train_run

        m = train_run(self.cfg.train, self.run)
        return {"accuracy": {"fake_quant": m["accuracy"]["test"]},
                "sp2_fraction": m["sp2_fraction"]["overall"],
                "sp2_fraction_per_layer": {k: v["fraction"] for k, v in m["sp2_fraction"]["per_layer"].items()},
                "sp2_ratio": m["sp2_ratio"]}

    def _baseline(self) -> dict[str, Any]:
        from msq.frontend.train import train_run

        base = TrainConfig(**{**asdict(self.cfg.train), "scheme": "float", "sp2_ratio": None})
        m = train_run(base, self.run / "float")
        return {"accuracy": {"float": m["accuracy"]["test"]}}

    def _export(self) -> dict[str, Any]:
        from msq.frontend.export import export_run
        from msq.ir.summary import summary_table

        ir, _ = export_run(self.run)
        click.echo(summary_table(ir))
        return {}

    def _eval(self) -> dict[str, Any]:
        from msq.evaluate import evaluate_run

        e = evaluate_run(self.run)
        if e["torch_int"]["mismatches"]:
            raise MSQError(f"the torch integer path differs from the reference in {e['torch_int']['mismatches']} "
                           "output elements")
        return {"accuracy": {"deployed": e["deployed_accuracy"]}, "torch_int": e["torch_int"]}

    def _plan(self) -> dict[str, Any]:
        from msq.plan_run import plan_run

        res, _ = plan_run(self.run, self.board)
        for name, p in res.plan.items():
            click.echo(f"  {name}: {p.sp2_lanes} SP2 lanes, {p.fixed_lanes} fixed lanes")
        return {"plan": {name: asdict(p) for name, p in res.plan.items()},
                "estimate": res.resources.as_dict()}

    def _hls(self) -> dict[str, Any]:
        from msq.hls_run import build_project

        build_project(self.run, self.run / "hls", self.cfg.train.board, self.run / "plan.json")
        return {}

    def _csim(self) -> dict[str, Any]:
        from msq.backends.hls.csim import run_csim

        res = run_csim(self.run / "hls")
        if res.mismatches:
            raise MSQError(f"C-sim: {res.mismatches} mismatches against the integer reference (see {res.report})")
        return {"csim": {"mismatches": res.mismatches, "samples": res.samples, "report": str(res.report)}}

    def _rtl(self) -> dict[str, Any]:
        from msq.backends.rtl.generate import read_design
        from msq.rtl_run import build_rtl

        design = read_design(build_rtl(self.run, self.run / "rtl", self.run / "plan.json"))
        return {"layer_cycles": design["cycles"]["layers"]}

    def _rtlsim(self) -> dict[str, Any]:
        from msq.backends.rtl.simulate import simulate

        res = simulate(self.run / "rtl", simulator=self.cfg.simulator, progress=lambda m: click.echo(f"  {m}"))
        if res["mismatches"]:
            raise MSQError(f"RTL simulation: {len(res['mismatches'])} mismatches against the integer reference "
                           f"(see {res.get('mismatches_file')})")
        cycles = res["cycles_per_inference"]
        return {"rtlsim": {"mismatches": 0, "samples": res["samples"], "simulator": self.cfg.simulator,
                           "cycles_per_inference": cycles, "latency_cycles": res.get("latency_cycles")},
                "throughput_inferences_per_s": self.board.clock_mhz * 1e6 / cycles}

    def _synth(self) -> dict[str, Any]:
        from msq.backends.synth.run import synthesize

        click.echo(f"  synthesizing for {self.board.part} (log: {self.run / 'rtl' / 'synth'}) ...")
        s = synthesize(self.run / "rtl", self.board, self.cfg.synth_tool, model=self.run.name)
        return {"synth": s}

    # --- driver -------------------------------------------------------------------------------

    def fingerprint(self, stage: Stage) -> str:
        h = hashlib.sha256()
        for item in stage.inputs():
            if isinstance(item, Path):
                h.update(digest([item]).encode() if item.exists() else f"missing:{item}".encode())
            else:
                h.update(json.dumps(item, sort_keys=True, default=str).encode())
        return h.hexdigest()

    def execute(self) -> dict[str, Any]:
        stages = self.stages()
        for i, stage in enumerate(stages, 1):
            fp = self.fingerprint(stage)
            done = self.state.get(stage.name, {})
            if done.get("fingerprint") == fp and all(p.exists() for p in stage.outputs()):
                click.echo(f"[{i}/{len(stages)}] {stage.name}: up to date")
                self.results[stage.name] = done["result"]
                continue
            click.echo(f"[{i}/{len(stages)}] {stage.name} ...")
            start = time.perf_counter()
            try:
                result = stage.run()
            except MSQError as exc:
                self._save_summary()
                raise MSQError(f"flow stopped at stage '{stage.name}': {exc}") from exc
            seconds = time.perf_counter() - start
            click.echo(f"[{i}/{len(stages)}] {stage.name}: done in {seconds:.1f} s")
            self.results[stage.name] = result
            self.state[stage.name] = {"fingerprint": self.fingerprint(stage), "result": result,
                                      "seconds": round(seconds, 2)}
            atomic.write_json(self.state_path, self.state)
        summary = self._save_summary()
        from msq.backends.report import write_report

        write_report(self.run)
        return summary

    def _save_summary(self) -> dict[str, Any]:
        s: dict[str, Any] = {"run": self.run.name, "msq_version": __version__, "model": self.cfg.train.model,
                             "dataset": self.cfg.train.dataset, "board": self.board.name,
                             "clock_mhz": self.board.clock_mhz, "accuracy": {}}
        for result in self.results.values():
            for key, value in result.items():
                if key == "accuracy":
                    s["accuracy"].update(value)
                else:
                    s[key] = value
        s["ladder"] = ladder(s)
        s["stage_seconds"] = {k: v.get("seconds") for k, v in self.state.items()}
        atomic.write_json(self.run / SUMMARY, s)
        return s


def ladder(s: dict[str, Any]) -> list[dict[str, Any]]:
    """The verification ladder's rungs that have run."""
    rungs = []
    if "torch_int" in s:
        rungs.append({"check": "frozen PyTorch integer path ≡ NumPy integer reference", **_rung(s["torch_int"])})
    if "csim" in s:
        rungs.append({"check": "HLS C-sim (g++) ≡ integer reference", **_rung(s["csim"])})
    if "rtlsim" in s:
        rungs.append({"check": f"Verilog ({s['rtlsim']['simulator']}) ≡ integer reference", **_rung(s["rtlsim"])})
    return rungs


def _rung(r: dict[str, Any]) -> dict[str, Any]:
    return {"samples": r["samples"], "mismatches": r["mismatches"]}
