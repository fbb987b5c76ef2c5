"""Shared fixtures: short-trained demo runs (MLP and CNN on digits) exported to IR; and the
grouping of tests for parallel runs (pytest-xdist, ``--dist loadgroup``)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from msq.frontend.export import export_run
from msq.frontend.train import TrainConfig, train_run
from msq.ir.model import IRModel


@pytest.fixture(scope="session", autouse=True)
def verilator_object_cache(tmp_path_factory) -> Path:
    """One ccache directory for the run's Verilator builds (msq.backends.rtl.simulate.object_cache),
    under pytest's temporary root, shared by the parallel workers."""
    root = tmp_path_factory.getbasetemp()
    cache = (root.parent if root.name.startswith("popen-") else root) / "ccache"
    os.environ["CCACHE_DIR"] = str(cache)
    return cache


def _demo_run(root: Path, model: str) -> tuple[Path, IRModel]:
    run = root / model
    train_run(TrainConfig(model=model, epochs=6, seed=0, sp2_ratio=0.6), run)
    ir, _ = export_run(run)
    return run, ir


@pytest.fixture(scope="session")
def mlp_demo(tmp_path_factory) -> tuple[Path, IRModel]:
    """(run directory, IR) of a short-trained MSQ MLP: both schemes in every layer."""
    return _demo_run(tmp_path_factory.mktemp("demo"), "mlp")


@pytest.fixture(scope="session")
def cnn_demo(tmp_path_factory) -> tuple[Path, IRModel]:
    """(run directory, IR) of a short-trained MSQ CNN: conv, BatchNorm, max-pool, dense."""
    return _demo_run(tmp_path_factory.mktemp("demo"), "cnn")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that share a module-scoped fixture (a synthesis, a flow run) run in one process, so
    the fixture is built once; the other tests spread over the processes one by one."""
    for item in items:
        defs = getattr(item, "_fixtureinfo", None)
        if defs and any(d[-1].scope == "module" for d in defs.name2fixturedefs.values()):
            item.add_marker(pytest.mark.xdist_group(item.module.__name__))
