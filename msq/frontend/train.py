"""Quantization-aware training of an MSQ model, and the run directory it writes.

Schedule: a float warm-up (weights unquantized, activations quantized) lets rows develop the
distributions the fit statistic ranks; then every quantized row's scale is set MSE-optimally,
'msq' layers get their per-row schemes, and QAT runs. Rows are re-ranked every
``REASSIGN_EVERY`` epochs during the first ``REASSIGN_UNTIL`` of training; after that the
assignment is frozen. Same seed, same result: every random source is seeded and torch runs in
deterministic mode.

A run directory holds ``model.pt`` (a ``weights_only``-loadable dict: config + state dict),
``assignment.json`` (per layer, one 'S'/'F' character per row) and ``metrics.json``.
"""
from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from msq import atomic
from msq.boards import Board, load_board
from msq.design.cost_model import board_sp2_ratio
from msq.errors import MSQError
from msq.frontend.assignment import assign_schemes, check_ratio
from msq.frontend.data import Dataset, load_dataset
from msq.frontend.models import QuantConfig, build_model, check_supported
from msq.frontend.quantizer import msq_quantizers
from msq.progress import Progress, Step

# What msq train writes into a run directory (msq/rundir.py composes the whole layout).
MODEL_PT = "model.pt"
ASSIGNMENT_JSON = "assignment.json"
METRICS_JSON = "metrics.json"
CHECKPOINT_FORMAT = "msq-checkpoint"
CHECKPOINT_VERSION = 1
REASSIGN_EVERY = 5
REASSIGN_UNTIL = 0.5


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run (and so its result)."""

    model: str = "mlp"
    dataset: str = "digits"
    wbits: int = 4
    abits: int = 4
    scheme: str = "msq"
    board: str = "pynq-z2"
    sp2_ratio: float | None = None
    epochs: int = 30
    seed: int = 0
    batch_size: int = 64
    lr: float = 3e-3

    def __post_init__(self):
        QuantConfig(self.wbits, self.abits, self.scheme)  # validates bits and scheme
        if self.sp2_ratio is not None:
            check_ratio(self.sp2_ratio)
        if not isinstance(self.epochs, int) or self.epochs < 1:
            raise MSQError(f"epochs must be a positive integer, got {self.epochs!r}")


def resolve_ratio(cfg: TrainConfig, board: Board | None = None) -> tuple[float, str]:
    """The SP2 row fraction and where it came from ('user', 'board' or the scheme itself);
    ``board`` is ``cfg.board`` when the caller has loaded it already."""
    board = board or load_board(cfg.board)
    if cfg.scheme == "msq":
        if cfg.sp2_ratio is not None:
            return cfg.sp2_ratio, "user"
        return board_sp2_ratio(board, cfg.wbits, cfg.abits), f"board {board.name}"
    return (0.0 if cfg.scheme in ("fixed", "float") else 1.0), f"scheme {cfg.scheme}"


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)


def set_weight_quant(model: nn.Module, enabled: bool) -> None:
    """Switch the MSQ weight quantizers on or off (off during the float warm-up)."""
    for name in msq_quantizers(model):
        model.get_submodule(name).weight_quant.disable_quant = not enabled


@torch.no_grad()
def accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray, batch: int = 512) -> float:
    """Top-1 accuracy (%) of the model as it runs in PyTorch (fake-quant or float)."""
    model.eval()
    hits = 0
    for i in range(0, len(x), batch):
        hits += int((model(torch.as_tensor(x[i:i + batch])).argmax(1).numpy() == y[i:i + batch]).sum())
    return 100.0 * hits / max(1, len(x))


def sp2_fractions(model: nn.Module) -> dict[str, Any]:
    """SP2 rows per layer (count, rows, fraction) and overall."""
    per_layer, sp2, rows = {}, 0, 0
    for name, tq in msq_quantizers(model).items():
        n, total = int(tq.sp2_mask.sum()), int(tq.sp2_mask.numel())
        per_layer[name] = {"sp2_rows": n, "rows": total, "fraction": n / total}
        sp2, rows = sp2 + n, rows + total
    return {"per_layer": per_layer, "overall": sp2 / rows if rows else 0.0}


def assignment_strings(model: nn.Module) -> dict[str, str]:
    """Per layer, one character per row: 'S' for SP2 (or P2 in the P2 baseline), 'F' for fixed."""
    return {name: "".join("S" if s else "F" for s in tq.sp2_mask.tolist())
            for name, tq in msq_quantizers(model).items()}


def train_model(model: nn.Module, data: Dataset, cfg: TrainConfig, ratio: float,
                progress: Progress | None = None) -> list[dict[str, float]]:
    """Run the warm-up + QAT schedule in place; returns per-epoch loss and test accuracy.
    ``progress`` receives a :class:`Step` per epoch."""
    check_supported(model)
    gen = torch.Generator().manual_seed(cfg.seed)
    x, y = torch.as_tensor(data.x_train), torch.as_tensor(data.y_train)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
    loss_fn = nn.CrossEntropyLoss()
    quantized = cfg.scheme != "float"
    warmup = max(1, cfg.epochs // 5) if quantized else 0
    set_weight_quant(model, False)
    history = []
    task = f"train {cfg.model}/{cfg.scheme}"
    for epoch in range(cfg.epochs):
        if quantized and epoch >= warmup and (epoch == warmup or (
                (epoch - warmup) % REASSIGN_EVERY == 0 and epoch < REASSIGN_UNTIL * cfg.epochs)):
            if epoch == warmup:
                set_weight_quant(model, True)
                for name, tq in msq_quantizers(model).items():
                    tq.reset_scales(model.get_submodule(name).weight)
            assign_schemes(model, ratio)
        model.train()
        total, batches = 0.0, 0
        for idx in torch.randperm(len(x), generator=gen).split(cfg.batch_size):
            opt.zero_grad()
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
            total, batches = total + loss.item(), batches + 1
        sched.step()
        acc = accuracy(model, data.x_test, data.y_test)
        history.append({"epoch": epoch + 1, "loss": total / batches, "test_accuracy": acc})
        if progress:
            progress(Step(task, epoch + 1, cfg.epochs, "epoch", f"loss {total / batches:.3f}, acc {acc:.1f}%"))
    return history


def train_run(cfg: TrainConfig, out: str | Path, progress: Progress | None = None,
              board: Board | None = None) -> dict[str, Any]:
    """Train per ``cfg`` and write the run directory ``out``; returns the metrics."""
    model, data, qcfg, metrics = fit(cfg, progress, board)
    save_run(out, model, cfg, qcfg, data, metrics)
    return metrics


def fit(cfg: TrainConfig, progress: Progress | None = None, board: Board | None = None,
        factory: Callable[..., nn.Module] | None = None) -> tuple[nn.Sequential, Dataset, QuantConfig, dict[str, Any]]:
    """Train per ``cfg`` in memory: the model, its dataset, quantization settings and metrics.
    ``factory`` builds the model instead of ``cfg.model`` (then only its label)."""
    ratio, ratio_source = resolve_ratio(cfg, board)
    data = load_dataset(cfg.dataset)
    seed_everything(cfg.seed)
    qcfg = QuantConfig(cfg.wbits, cfg.abits, cfg.scheme)
    model = build_model(factory or cfg.model, data.in_shape, data.classes, qcfg, data.signed)
    start = time.perf_counter()
    history = train_model(model, data, cfg, ratio, progress)
    seconds = time.perf_counter() - start
    metrics = {
        "settings": asdict(cfg),
        "sp2_ratio": {"requested": ratio, "source": ratio_source},
        "accuracy": {"test": history[-1]["test_accuracy"],
                     "kind": "fake-quant" if qcfg.quantized else "float",
                     "train": accuracy(model, data.x_train, data.y_train)},
        "sp2_fraction": sp2_fractions(model),
        "history": history,
        "train_seconds": round(seconds, 2),
    }
    return model, data, qcfg, metrics


def save_run(out: str | Path, model: nn.Module, cfg: TrainConfig, qcfg: QuantConfig, data: Dataset,
             metrics: dict[str, Any]) -> None:
    """Write model.pt, assignment.json and metrics.json, each atomically."""
    out = Path(out)
    ckpt = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION,
            "train_config": asdict(cfg), "quant_config": qcfg.as_dict(),
            "data": {"name": data.name, "in_shape": list(data.in_shape), "classes": data.classes,
                     "signed": data.signed},
            "state_dict": model.state_dict()}
    atomic.write_with(out / MODEL_PT, lambda tmp: torch.save(ckpt, tmp))
    atomic.write_json(out / ASSIGNMENT_JSON, assignment_strings(model))
    atomic.write_json(out / METRICS_JSON, metrics)


def load_run(run: str | Path) -> tuple[nn.Sequential, dict[str, Any]]:
    """Rebuild a trained model from ``run/model.pt`` (loaded with ``weights_only=True``)."""
    path = Path(run) / MODEL_PT
    if not path.is_file():
        raise MSQError(f"{path} does not exist: expected a run directory written by 'msq train'")
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise MSQError(f"{path} is not an MSQ checkpoint")
    if ckpt.get("version") != CHECKPOINT_VERSION:
        raise MSQError(f"{path}: checkpoint version {ckpt.get('version')!r} is not supported "
                       f"(expected {CHECKPOINT_VERSION})")
    d = ckpt["data"]
    model = build_model(ckpt["train_config"]["model"], tuple(d["in_shape"]), d["classes"],
                        QuantConfig(**ckpt["quant_config"]), d["signed"])
    model.load_state_dict(ckpt["state_dict"])
    model.eval()
    return model, ckpt



