"""Shared fixtures: short-trained demo runs (MLP and CNN on digits) exported to IR."""
from __future__ import annotations

from pathlib import Path

import pytest

from msq.frontend.export import export_run
from msq.frontend.train import TrainConfig, train_run
from msq.ir.model import IRModel


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
