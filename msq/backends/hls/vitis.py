"""Running Vitis HLS on a generated project, and reading its C-synthesis report.

``vitis-run --mode hls --tcl build.tcl`` (Vitis 2025.1+) is preferred, ``vitis_hls -f build.tcl``
(older releases) is the fallback; the steps to run are written into ``options.tcl`` (sourced by
``build.tcl``), never passed as tclargs. The report is ``<solution>/syn/report/csynth.xml``.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

from msq import atomic
from msq.backends.hls import tcl
from msq.errors import MSQError

# What ``msq hls --vitis STEP`` asks build.tcl to do.
RUN_STEPS = {"csim": ("csim",), "csynth": ("csynth",), "cosim": ("csynth", "cosim"),
             "export": ("csynth", "export")}
RESOURCES = ("BRAM_18K", "DSP", "FF", "LUT", "URAM")
REPORT_JSON = "csynth_report.json"


def find_tool() -> list[str] | None:
    """The command prefix that runs a Tcl script with Vitis HLS, or None if neither tool is on PATH."""
    if shutil.which("vitis-run"):
        return ["vitis-run", "--mode", "hls", "--tcl"]
    if shutil.which("vitis_hls"):
        return ["vitis_hls", "-f"]
    return None


def set_steps(project: Path, steps: tuple[str, ...]) -> None:
    """Rewrite the ``msq_steps`` line of ``options.tcl``."""
    path = project / "options.tcl"
    text, n = re.subn(r"^set msq_steps \{[^}]*\}$", f"set msq_steps {{{' '.join(steps)}}}", path.read_text(),
                      flags=re.M)
    if n != 1:
        raise MSQError(f"{path}: no 'set msq_steps {{...}}' line to update")
    atomic.write_text(path, text)


def _text(node: ET.Element, path: str) -> str | None:
    found = node.find(path)
    return found.text.strip() if found is not None and found.text else None


def _number(value: str | None) -> int | float | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        try:
            return float(value)
        except ValueError:
            return None  # e.g. "undef" for unbounded latency


def parse_csynth_xml(path: str | Path) -> dict:
    """Latency (cycles), interval, clock and resources (used and available) from a csynth.xml."""
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as exc:
        raise MSQError(f"cannot read the C-synthesis report {path}: {exc}") from exc
    perf = root.find("PerformanceEstimates")
    area = root.find("AreaEstimates")
    if perf is None or area is None:
        raise MSQError(f"{path}: not a Vitis HLS csynth.xml (no PerformanceEstimates/AreaEstimates)")
    lat = "SummaryOfOverallLatency/"
    report = {
        "version": _text(root, "ReportVersion/Version"),
        "top": _text(root, "UserAssignments/TopModelName"),
        "part": _text(root, "UserAssignments/Part"),
        "target_clock_ns": _number(_text(root, "UserAssignments/TargetClockPeriod")),
        "estimated_clock_ns": _number(_text(perf, "SummaryOfTimingAnalysis/EstimatedClockPeriod")),
        "latency_cycles": {"best": _number(_text(perf, lat + "Best-caseLatency")),
                           "average": _number(_text(perf, lat + "Average-caseLatency")),
                           "worst": _number(_text(perf, lat + "Worst-caseLatency"))},
        "interval_cycles": {"min": _number(_text(perf, lat + "Interval-min")),
                            "max": _number(_text(perf, lat + "Interval-max"))},
        "resources": {}, "available": {}}
    for key, node in (("resources", area.find("Resources")), ("available", area.find("AvailableResources"))):
        for child in list(node) if node is not None else []:
            name = "DSP" if child.tag.startswith("DSP") else child.tag  # DSP48E in older releases
            report[key][name] = _number(child.text.strip() if child.text else None)
    return report


def find_csynth_xml(project: Path) -> Path:
    report_dir = project / tcl.HLS_PROJECT / tcl.SOLUTION / "syn" / "report"
    for name in ("csynth.xml", "msq_top_csynth.xml"):
        if (report_dir / name).is_file():
            return report_dir / name
    raise MSQError(f"no C-synthesis report in {report_dir}: did csynth_design run? (see {project}/vitis.log)")


def invoke_vitis(project: str | Path, step: str) -> dict | None:
    """Run ``build.tcl`` up to ``step``; after synthesis, parse and save the report (``csynth_report.json``).

    Returns the report, or None for ``step='csim'``. Raises an MSQError saying so plainly when no
    Vitis tool is on PATH.
    """
    project = Path(project)
    if step not in RUN_STEPS:
        raise MSQError(f"unknown step {step!r}: expected one of {', '.join(RUN_STEPS)}")
    tool = find_tool()
    if tool is None:
        raise MSQError(f"neither 'vitis-run' (Vitis 2025.1+) nor 'vitis_hls' is on PATH, so '{step}' cannot run "
                       f"here. The project in {project} is complete: on a machine with Vitis, run "
                       f"'vitis-run --mode hls --tcl build.tcl' (or 'vitis_hls -f build.tcl') in it.")
    set_steps(project, RUN_STEPS[step])
    log = project / "vitis.log"
    with open(log, "w") as fh:
        proc = subprocess.run([*tool, "build.tcl"], cwd=project, stdout=fh, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise MSQError(f"{' '.join(tool)} build.tcl failed (exit {proc.returncode}); see {log}")
    if step == "csim":
        return None
    report = parse_csynth_xml(find_csynth_xml(project))
    atomic.write_json(project / REPORT_JSON, report)
    return report
