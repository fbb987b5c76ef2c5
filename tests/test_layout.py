"""The package layout holds: the pipeline's floors import only downward, only the CLI prints, and
nothing in the repository points at files outside it."""
from __future__ import annotations

import ast
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "msq"

# What each floor may not import (module prefixes).
BACKENDS_MAY_NOT = ("msq.frontend", "msq.design", "msq.cli", "msq.flow", "msq.rundir", "msq.report", "msq.api")
# The floors below the Python API (msq/api.py sits on top, like the flow and the CLI).
BELOW_THE_API = ("frontend", "ir", "design", "backends")
IR_MAY_IMPORT = ("msq.ir", "msq.numerics", "msq.errors", "msq.atomic", "msq.names", "msq.limits")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every msq module a file imports, at module level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name == "msq" or name.startswith("msq.")}


def _sources(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.py"))


def _is_under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


@pytest.mark.parametrize("path", _sources(PACKAGE / "backends"), ids=lambda p: str(p.relative_to(ROOT)))
def test_backends_import_nothing_above_them(path):
    bad = sorted(name for name in _imports(path) if any(_is_under(name, p) for p in BACKENDS_MAY_NOT))
    assert not bad, f"{_module_name(path)} imports {bad}"


@pytest.mark.parametrize("path", _sources(PACKAGE / "ir"), ids=lambda p: str(p.relative_to(ROOT)))
def test_ir_imports_only_foundations(path):
    bad = sorted(name for name in _imports(path)
                 if name != "msq" and not any(_is_under(name, p) for p in IR_MAY_IMPORT))
    assert not bad, f"{_module_name(path)} imports {bad}"


@pytest.mark.parametrize("floor", BELOW_THE_API)
def test_nothing_below_the_api_imports_it(floor):
    bad = [str(p.relative_to(ROOT)) for p in _sources(PACKAGE / floor) if any(_is_under(n, "msq.api") for n in _imports(p))]
    assert not bad, f"{bad} import msq.api"


@pytest.mark.parametrize("module", ["report.py", "report_figures.py"])
def test_the_report_reads_files_not_training_code(module):
    bad = sorted(name for name in _imports(PACKAGE / module) if _is_under(name, "msq.frontend"))
    assert not bad, f"msq/{module} imports {bad}"


def test_rooms_exist_and_glue_modules_are_gone():
    assert not list(PACKAGE.glob("*_run.py"))
    assert not (PACKAGE / "evaluate.py").exists()
    for module in ("planner", "cost_model", "estimate", "calibrate", "explore"):
        assert (PACKAGE / "design" / f"{module}.py").is_file()
    backends = {p.name for p in (PACKAGE / "backends").iterdir() if not p.name.startswith("__")}
    assert backends == {"hls", "rtl", "synth", "torch_int.py", "qonnx_export.py"}


def test_only_the_cli_prints():
    for path in _sources(PACKAGE):
        if path.name == "cli.py":
            continue
        tree = ast.parse(path.read_text())
        names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
        assert "print" not in names, f"{path.relative_to(ROOT)} prints: report through a progress callback"
        assert "click" not in _imports_any(tree), f"{path.relative_to(ROOT)} uses click"


def _imports_any(tree: ast.AST) -> set[str]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
    return out


def test_nothing_cites_files_outside_the_repository():
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    hits = [name for name in tracked.split()
            if (ROOT / name).is_file() and name != "tests/test_layout.py"
            and "DESIGN.md" in (ROOT / name).read_text(errors="replace")]
    assert not hits, f"files cite DESIGN.md, which is not in the repository: {hits}"


def test_one_headroom_and_one_calibration_path():
    from msq import assets, cli
    from msq.design import cost_model, planner

    assert planner.HEADROOM is cost_model.HEADROOM
    assert cost_model.CALIBRATION_JSON == assets.CALIBRATION_JSON and assets.CALIBRATION_JSON.is_file()
    headroom = next(p for p in cli.plan.params if p.name == "headroom")
    assert headroom.default == cost_model.HEADROOM
