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

from msq import __version__, atomic
from msq.backends.hls.csim import CSIM_DIR
from msq.backends.rtl.generate import HDL_DIR
from msq.backends.synth.driver import SYNTH_JSON
from msq.boards import Board
from msq.errors import MSQError
from msq.frontend.train import TrainConfig
from msq.ir.plan import load_plan
from msq.progress import Progress, indented, silent
from msq.rundir import RunDir

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
    until: str | None = None  # the last stage to run (None: all); e.g. 'rtl' skips the long simulation and synthesis


@dataclass
class Stage:
    name: str
    inputs: Callable[[], list[Any]]  # settings and paths whose content decides the result
    work: Callable[[], dict[str, Any]]  # does the work, returns its part of the summary
    outputs: Callable[[], list[Path]] = field(default=lambda: [])


class Flow:
    """The stages of one run directory, with resume by fingerprint. ``progress`` receives one
    line per event (stage started, done, skipped) and the steps of training, simulation and synthesis."""

    def __init__(self, cfg: FlowConfig, board: Board, progress: Progress = silent):
        self.cfg = cfg
        self.rd = RunDir(cfg.out)
        self.board = board
        self.progress = progress
        self.state_path = self.rd.flow_state_json
        atomic.check_run_dir(self.rd.path)
        state = atomic.read_json(self.state_path, "") if self.state_path.is_file() else {}
        self.state: dict[str, Any] = state if isinstance(state, dict) else {}
        self.results: dict[str, dict[str, Any]] = {}

    # --- stages -------------------------------------------------------------------------------

    def stages(self) -> list[Stage]:
        rd, cfg = self.rd, self.cfg
        board_file = Path(cfg.train.board) if cfg.train.board.endswith((".yaml", ".yml")) else None
        data_file = Path(cfg.train.dataset) if cfg.train.dataset.endswith(".npz") else None
        model_file = Path(cfg.train.model.rpartition(":")[0]) if ":" in cfg.train.model else None
        extra = [p for p in (board_file, data_file, model_file) if p is not None]
        stages = [Stage("train", lambda: [asdict(cfg.train), __version__, *extra], self._train,
                        lambda: [rd.model_pt, rd.metrics_json])]
        if cfg.baseline:
            stages.append(Stage("baseline", lambda: [asdict(cfg.train), __version__, *extra], self._baseline,
                                lambda: [RunDir(rd.float_dir).metrics_json]))
        stages += [
            Stage("export", lambda: [rd.model_pt], self._export, lambda: [rd.ir_dir]),
            Stage("eval", lambda: [rd.ir_dir, cfg.train.dataset, *extra], self._eval, lambda: [rd.eval_json]),
            Stage("plan", lambda: [rd.ir_dir, asdict(self.board)], self._plan, lambda: [rd.plan_json]),
            Stage("hls", lambda: [rd.ir_dir, rd.plan_json, asdict(self.board)], self._hls, lambda: [rd.hls_dir]),
            Stage("csim", lambda: [rd.hls_dir], self._csim, lambda: [rd.hls_dir / CSIM_DIR]),
            Stage("rtl", lambda: [rd.ir_dir, rd.plan_json, self.board.family], self._rtl, lambda: [rd.rtl_dir]),
            Stage("rtlsim", lambda: [rd.rtl_dir, cfg.simulator], self._rtlsim, lambda: [rd.rtl_sim_dir]),
            Stage("synth", lambda: [rd.rtl_dir / HDL_DIR, asdict(self.board), cfg.synth_tool], self._synth,
                  lambda: [rd.synth_dir / SYNTH_JSON]),
        ]
        return stages

    def _train(self) -> dict[str, Any]:
        from msq.frontend.train import train_run

        m = train_run(self.cfg.train, self.rd.path, self.progress, board=self.board)
        return {"accuracy": {"fake_quant": m["accuracy"]["test"]},
                "sp2_fraction": m["sp2_fraction"]["overall"],
                "sp2_fraction_per_layer": {k: v["fraction"] for k, v in m["sp2_fraction"]["per_layer"].items()},
                "sp2_ratio": m["sp2_ratio"]}

    def _baseline(self) -> dict[str, Any]:
        from msq.frontend.train import train_run

        base = TrainConfig(**{**asdict(self.cfg.train), "scheme": "float", "sp2_ratio": None, "high_fraction": 0.0})
        m = train_run(base, self.rd.float_dir, self.progress, board=self.board)
        return {"accuracy": {"float": m["accuracy"]["test"]}}

    def _export(self) -> dict[str, Any]:
        from msq.frontend.export import export_run
        from msq.ir.summary import summary_table

        ir, _ = export_run(self.rd.path, model=self.cfg.train.model)
        self.progress(summary_table(ir))
        return {}

    def _eval(self) -> dict[str, Any]:
        e = self.rd.evaluate()
        if e["torch_int"]["mismatches"]:
            raise MSQError(f"the torch integer path differs from the reference in {e['torch_int']['mismatches']} "
                           "output elements")
        return {"accuracy": {"deployed": e["deployed_accuracy"]}, "torch_int": e["torch_int"]}

    def _plan(self) -> dict[str, Any]:
        res, _ = self.rd.plan(self.board)
        for name, p in res.plan.layers.items():
            self.progress(f"  {name}: {p.summary()}")
        return {"plan": res.plan.as_dict(),
                "estimate": res.resources.as_dict()}

    def _hls(self) -> dict[str, Any]:
        self.rd.write_hls(self.board, load_plan(self.rd.ir, self.rd.plan_json))
        return {}

    def _csim(self) -> dict[str, Any]:
        from msq.backends.hls.csim import c_simulate

        res = c_simulate(self.rd.hls_dir)
        if res.mismatches:
            raise MSQError(f"C-sim: {res.mismatches} mismatches against the integer reference (see {res.report})")
        return {"csim": {"mismatches": res.mismatches, "samples": res.samples, "report": str(res.report)}}

    def _rtl(self) -> dict[str, Any]:
        from msq.backends.rtl.generate import read_design

        design = read_design(self.rd.write_rtl(load_plan(self.rd.ir, self.rd.plan_json), board=self.board))
        return {"layer_cycles": design["cycles"]["layers"],
                "cycles_model": {k: design["cycles"][k] for k in ("interval", "latency")}}

    def _rtlsim(self) -> dict[str, Any]:
        from msq.backends.rtl.simulate import simulate

        res = simulate(self.rd.rtl_dir, simulator=self.cfg.simulator, progress=indented(self.progress))
        if res["mismatches"]:
            raise MSQError(f"RTL simulation: {len(res['mismatches'])} mismatches against the integer reference "
                           f"(see {res.get('mismatches_file')})")
        cycles = res["cycles_per_inference"]
        return {"rtlsim": {"mismatches": 0, "samples": res["samples"], "simulator": self.cfg.simulator,
                           "cycles_per_inference": cycles, "latency_cycles": res.get("latency_cycles")}}

    def _synth(self) -> dict[str, Any]:
        from msq.backends.synth.driver import synthesize

        self.progress(f"  synthesizing for {self.board.part} (log: {self.rd.synth_dir}) ...")
        s = synthesize(self.rd.rtl_dir, self.board, self.cfg.synth_tool, model=self.rd.name,
                       progress=indented(self.progress))
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
        atomic.claim_run_dir(self.rd.path)
        stages = self.stages()
        if self.cfg.until is not None:
            names = [s.name for s in stages]
            if self.cfg.until not in names:
                raise MSQError(f"unknown stage {self.cfg.until!r}: expected one of {', '.join(names)}")
            stages = stages[:names.index(self.cfg.until) + 1]
        for i, stage in enumerate(stages, 1):
            fp = self.fingerprint(stage)
            done = self.state.get(stage.name)
            done = done if isinstance(done, dict) else {}
            if done.get("fingerprint") == fp and all(p.exists() for p in stage.outputs()):
                self.progress(f"[{i}/{len(stages)}] {stage.name}: up to date")
                self.results[stage.name] = done["result"]
                continue
            self.progress(f"[{i}/{len(stages)}] {stage.name} ...")
            start = time.perf_counter()
            try:
                result = stage.work()
            except MSQError as exc:
                self._save_summary()
                raise MSQError(f"flow stopped at stage '{stage.name}': {exc}") from exc
            seconds = time.perf_counter() - start
            self.progress(f"[{i}/{len(stages)}] {stage.name}: done in {seconds:.1f} s")
            self.results[stage.name] = result
            self.state[stage.name] = {"fingerprint": self.fingerprint(stage), "result": result,
                                      "seconds": round(seconds, 2)}
            atomic.write_json(self.state_path, self.state)
        summary = self._save_summary()
        from msq.report import write_report

        write_report(self.rd)
        return summary

    def _save_summary(self) -> dict[str, Any]:
        s: dict[str, Any] = {"run": self.rd.name, "msq_version": __version__, "model": self.cfg.train.model,
                             "dataset": self.cfg.train.dataset, "board": self.board.name,
                             "clock_mhz": self.board.clock_mhz, "accuracy": {}}
        for result in self.results.values():
            for key, value in result.items():
                if key == "accuracy":
                    s["accuracy"].update(value)
                else:
                    s[key] = value
        s["ladder"] = ladder(s)
        fmax = s.get("synth", {}).get("fmax_mhz")
        s["clock_mhz"] = min(self.board.clock_mhz, fmax) if fmax else self.board.clock_mhz  # a clock it meets
        if "rtlsim" in s:
            s["throughput_inferences_per_s"] = s["clock_mhz"] * 1e6 / s["rtlsim"]["cycles_per_inference"]
        s["stage_seconds"] = {k: v.get("seconds") for k, v in self.state.items()}
        atomic.write_json(self.rd.summary_json, s)
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
