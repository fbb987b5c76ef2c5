"""Quantization-aware training of an MSQ model, and the run directory it writes.

Schedule: a float warm-up (weights unquantized, activations quantized) lets rows develop the
distributions the fit statistic ranks; then every quantized row's scale is set MSE-optimally,
'msq' layers get their per-row schemes, and QAT runs. Rows are re-ranked every
``REASSIGN_EVERY`` epochs during the first ``REASSIGN_UNTIL`` of training; after that the
assignment is frozen (high-precision rows, with ``high_fraction`` > 0, are chosen at the same
times, from a fixed calibration batch of training inputs). Same seed, same result: every random source is seeded and torch runs in
deterministic mode.

A run directory holds ``model.pt`` (a ``weights_only``-loadable dict: config + state dict),
``assignment.json`` (per layer, one character per row: 'S' SP2, 'F' fixed, 'H' high-precision fixed) and ``metrics.json``.
"""
from __future__ import annotations

import copy
import json
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from msq import atomic, limits, numerics
from msq.boards import Board, load_board
from msq.design import explore
from msq.design.cost_model import board_sp2_ratio
from msq.errors import MSQError
from msq.frontend.assignment import assign_schemes, check_fraction, check_ratio
from msq.frontend import distributed
from msq.frontend.checks import check_model
from msq.frontend.data import LAYOUTS, Dataset, load_dataset
from msq.frontend.export import export_model
from msq.frontend.models import BUILDERS, QuantConfig, build_model
from msq.frontend.trace import check_supported
from msq.frontend.quantizer import msq_quantizers
from msq.ir.model import IRModel
from msq.progress import Progress, Step, silent

# What msq train writes into a run directory (msq/rundir.py composes the whole layout).
MODEL_PT = "model.pt"
ASSIGNMENT_JSON = "assignment.json"
METRICS_JSON = "metrics.json"
CHECKPOINT_FORMAT = "msq-checkpoint"
CHECKPOINT_VERSION = 1
REASSIGN_EVERY = 5
PROBE_IMAGES, PROBE_BATCH = 256, 64  # images that set the activation scales of the untrained IR
REASSIGN_UNTIL = 0.5
MAX_EPOCHS = 100_000
CALIBRATION_SAMPLES = 256  # training inputs whose activations weigh the high-precision row choice
BUILTIN_MODELS = tuple(BUILDERS)


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
    high_bits: int = 8
    high_fraction: float = 0.0
    device: str = "auto"
    layout: str = "nchw"

    def __post_init__(self):
        check_fraction(self.high_fraction)
        numerics.check_bits(self.high_bits, "high_bits")
        self.quant_config()  # validates bits and scheme
        if self.sp2_ratio is not None:
            check_ratio(self.sp2_ratio)
        for field, value, top in (("epochs", self.epochs, MAX_EPOCHS), ("seed", self.seed, 2**32 - 1),
                                  ("batch_size", self.batch_size, 2**16)):
            if not isinstance(value, int) or isinstance(value, bool) or not int(field != "seed") <= value <= top:
                raise MSQError(f"{field} must be an integer in [{int(field != 'seed')}, {top}], got {value!r}")
        for field in ("model", "dataset", "board"):
            if not isinstance(getattr(self, field), str):
                raise MSQError(f"{field} must be a string, got {getattr(self, field)!r}")
        if not isinstance(self.lr, float) or not 0 < self.lr < 1:
            raise MSQError(f"lr must be a number in (0, 1), got {self.lr!r}")
        distributed.check_device(self.device)
        if self.layout not in LAYOUTS:
            raise MSQError(f"layout must be one of {', '.join(LAYOUTS)}, got {self.layout!r}")

    def quant_config(self) -> QuantConfig:
        """The model's quantization settings (high-precision rows only with a fraction above 0)."""
        return QuantConfig(self.wbits, self.abits, self.scheme, high_bits=self.high_bits if self.high_fraction else 0)


def resolve_ratio(cfg: TrainConfig, board: Board | None = None, model: nn.Module | None = None,
                  data: Dataset | None = None, progress: Progress | None = None) -> tuple[float, str]:
    """The SP2 row fraction and where it came from ('user', the planner, the board or the scheme
    itself); ``board`` is ``cfg.board`` when the caller has loaded it already. For ``msq`` without
    a user ratio and with the untrained ``model`` and its ``data``, the ratio whose planned design
    is fastest on the board (``explore.planned_ratio``), else the board's LUT/DSP balance."""
    board = board or load_board(cfg.board)
    if cfg.scheme == "msq":
        if cfg.sp2_ratio is not None:
            return cfg.sp2_ratio, "user"
        balance = board_sp2_ratio(board, cfg.wbits, cfg.abits)
        ir = untrained_ir(model, data) if model is not None and data is not None else None
        if ir is not None:
            planned = explore.planned_ratio(ir, board, balance, progress=progress or silent)
            if planned is not None:
                return planned, f"planner sweep on board {board.name}"
        return balance, f"board {board.name}"
    return (0.0 if cfg.scheme in ("fixed", "float") else 1.0), f"scheme {cfg.scheme}"


@torch.no_grad()
def untrained_ir(model: nn.Module, data: Dataset) -> IRModel:
    """The IR of a copy of ``model`` before training (its shapes and widths are the trained
    model's), after a few training-mode passes that set its activation scales; ``model`` is
    left untouched."""
    probe = copy.deepcopy(model)
    probe.train()
    for batch in torch.as_tensor(data.x_train[:PROBE_IMAGES]).split(PROBE_BATCH):
        probe(batch)
    return export_model(probe, tuple(data.in_shape), model_name="untrained")


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
    return 100.0 * float((predict(model, x, batch) == y).sum()) / max(1, len(x))


@torch.no_grad()
def predict(model: nn.Module, x: np.ndarray, batch: int = 512) -> np.ndarray:
    """Class predictions (argmax of the logits) of the model as it runs in PyTorch, on its device."""
    model.eval()
    device = next(model.parameters()).device
    out = [model(torch.as_tensor(x[i:i + batch]).to(device)).argmax(1).cpu().numpy() for i in range(0, len(x), batch)]
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def sp2_fractions(model: nn.Module) -> dict[str, Any]:
    """SP2 rows per layer (count, rows, fraction) and overall."""
    per_layer, sp2, rows = {}, 0, 0
    for name, tq in msq_quantizers(model).items():
        n, total = int(tq.sp2_mask.sum()), int(tq.sp2_mask.numel())
        per_layer[name] = {"sp2_rows": n, "rows": total, "fraction": n / total,
                           "high_rows": int(tq.high_rows().sum())}
        sp2, rows = sp2 + n, rows + total
    return {"per_layer": per_layer, "overall": sp2 / rows if rows else 0.0}


def layer_bits(model: nn.Module) -> dict[str, dict[str, int | None]]:
    """Bits each quantized layer of the model uses, read from its quantizers (not the settings):
    ``wbits`` of a weight layer (None when its weights are float), ``abits`` of an activation
    quantizer's output (None when it is float)."""
    bits: dict[str, dict[str, int | None]] = {}
    msq = msq_quantizers(model)
    for name, module in model.named_modules():
        if name in msq:
            bits[name] = {"wbits": msq[name].bits}
        elif getattr(module, "weight_quant", None) is not None:
            proxy = module.weight_quant
            bits[name] = {"wbits": int(proxy.bit_width()) if proxy.is_quant_enabled else None}
        elif getattr(module, "act_quant", None) is not None:
            proxy = module.act_quant
            bits[name] = {"abits": int(proxy.bit_width()) if proxy.is_quant_enabled else None}
    return bits


def assignment_strings(model: nn.Module) -> dict[str, str]:
    """Per layer, one character per row: 'S' for SP2 (or P2 in the P2 baseline), 'F' for fixed,
    'H' for high-precision fixed."""
    return {name: "".join("H" if h else "S" if s else "F" for s, h in zip(tq.sp2_mask.tolist(), tq.high_rows().tolist()))
            for name, tq in msq_quantizers(model).items()}


def train_model(model: nn.Module, data: Dataset, cfg: TrainConfig, ratio: float,
                progress: Progress | None = None,
                workers: distributed.Workers = distributed.Workers()) -> list[dict[str, float]]:
    """Run the warm-up + QAT schedule in place on the model's device; returns per-epoch loss and
    test accuracy. ``progress`` receives a :class:`Step` per epoch; in a DDP job (``workers``)
    every process trains on its share of each epoch and the gradients are averaged."""
    check_supported(model)
    device = next(model.parameters()).device
    loader = distributed.train_loader(torch.as_tensor(data.x_train), torch.as_tensor(data.y_train),
                                      cfg.batch_size, cfg.seed, workers)
    step = distributed.wrap(model, workers, device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
    loss_fn = nn.CrossEntropyLoss()
    quantized = cfg.scheme != "float"
    # the last epoch always trains quantized weights: the model saved is the one export freezes
    warmup = min(max(1, cfg.epochs // 5), cfg.epochs - 1) if quantized else 0
    calibration = torch.as_tensor(data.x_train[:CALIBRATION_SAMPLES]).to(device)
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
            assign_schemes(model, ratio, cfg.high_fraction, calibration)
        model.train()
        total, batches = 0.0, 0
        distributed.set_epoch(loader, epoch)
        for xb, yb in loader:
            opt.zero_grad()
            loss = loss_fn(step(xb.to(device)), yb.to(device))
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
    atomic.check_run_dir(Path(out))  # before the work, not after
    workers = distributed.launched_workers()
    try:
        model, data, qcfg, metrics = fit(cfg, progress, board, workers=workers)
        if workers.writer:
            save_run(out, model, cfg, qcfg, data, metrics)
        distributed.barrier(workers)
    finally:
        distributed.stop(workers)
    return metrics


def fit(cfg: TrainConfig, progress: Progress | None = None, board: Board | None = None,
        factory: Callable[..., nn.Module] | None = None,
        workers: distributed.Workers = distributed.Workers()) -> tuple[nn.Sequential, Dataset, QuantConfig, dict[str, Any]]:
    """Train per ``cfg`` in memory: the model (back on the CPU), its dataset, quantization
    settings and metrics. ``factory`` builds the model instead of ``cfg.model`` (then only its
    label); ``workers`` is the DDP job this process belongs to (joined here, left by the caller)."""
    data = load_dataset(cfg.dataset, cfg.layout)
    device = distributed.resolve_device(cfg.device, workers.local_rank)
    distributed.start(workers, device)
    seed_everything(cfg.seed)
    qcfg = cfg.quant_config()
    model = build_model(factory or cfg.model, data.in_shape, data.classes, qcfg, data.signed)
    check_model(model, data.in_shape, data.classes, qcfg)  # before the first epoch, not at export
    ratio, ratio_source = resolve_ratio(cfg, board, model, data, progress)
    model = model.to(device)
    start = time.perf_counter()
    history = train_model(model, data, cfg, ratio, progress, workers)
    seconds = time.perf_counter() - start
    metrics = {
        "settings": asdict(cfg),
        "sp2_ratio": {"requested": ratio, "source": ratio_source},
        "accuracy": {"test": history[-1]["test_accuracy"],
                     "kind": "fake-quant" if qcfg.quantized else "float",
                     "train": accuracy(model, data.x_train, data.y_train)},
        "sp2_fraction": sp2_fractions(model),
        "layer_bits": layer_bits(model),
        "history": history,
        "train_seconds": round(seconds, 2),
        "device": {"type": device.type, "processes": workers.world},
    }
    return model.cpu(), data, qcfg, metrics


def save_run(out: str | Path, model: nn.Module, cfg: TrainConfig, qcfg: QuantConfig, data: Dataset,
             metrics: dict[str, Any]) -> None:
    """Write model.pt, assignment.json and metrics.json as one commit (a kill leaves the previous
    three files or the new three, never a mix)."""
    ckpt = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION,
            "train_config": asdict(cfg), "quant_config": qcfg.as_dict(),
            "data": {"name": data.name, "in_shape": list(data.in_shape), "classes": data.classes,
                     "signed": data.signed},
            "state_dict": model.state_dict()}
    with atomic.atomic_group(out) as tmp:
        torch.save(ckpt, tmp / MODEL_PT)
        (tmp / ASSIGNMENT_JSON).write_text(json.dumps(assignment_strings(model), indent=2) + "\n")
        (tmp / METRICS_JSON).write_text(json.dumps(metrics, indent=2) + "\n")


def load_run(run: str | Path, model: str | None = None) -> tuple[nn.Sequential, dict[str, Any]]:
    """Rebuild a trained model from ``run/model.pt`` (loaded with ``weights_only=True``).

    Nothing the checkpoint names is imported: a run of a user model (``file.py:function``) needs
    ``model``, the spec the user passes on the command line, to rebuild it."""
    path = Path(run) / MODEL_PT
    if not path.is_file():
        raise MSQError(f"{path} does not exist: expected a run directory written by 'msq train'")
    atomic.recover(path.parent)
    limits.check_size(path, limits.max_memory(), "checkpoint")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a corrupt or hostile file fails in many ways inside torch
        raise MSQError(f"{path}: not a readable checkpoint ({type(exc).__name__}: {str(exc)[:200]})") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise MSQError(f"{path} is not an MSQ checkpoint")
    if type(ckpt.get("version")) is not int or ckpt["version"] != CHECKPOINT_VERSION:
        raise MSQError(f"{path}: checkpoint version {ckpt.get('version')!r} is not supported "
                       f"(expected {CHECKPOINT_VERSION})")
    settings, d, q = ckpt.get("train_config"), ckpt.get("data"), ckpt.get("quant_config")
    if not isinstance(settings, dict) or not isinstance(d, dict) or not isinstance(q, dict) \
            or not isinstance(ckpt.get("state_dict"), dict):
        raise MSQError(f"{path}: fields 'train_config', 'data', 'quant_config' and 'state_dict' must be objects")
    for field in ("model", "dataset", "scheme", "board"):
        if not isinstance(settings.get(field), str):
            raise MSQError(f"{path}: field 'train_config.{field}' must be a string, got {settings.get(field)!r}")
    for field in ("wbits", "abits", "seed"):
        if type(settings.get(field)) is not int:
            raise MSQError(f"{path}: field 'train_config.{field}' must be an integer, got {settings.get(field)!r}")
    kind = _model_to_rebuild(path, settings["model"], model)
    in_shape, classes, signed = d.get("in_shape"), d.get("classes"), d.get("signed")
    if (not isinstance(in_shape, list) or len(in_shape) not in (1, 3)
            or not all(type(v) is int for v in in_shape)):
        raise MSQError(f"{path}: field 'data.in_shape' must be a list of 1 or 3 integers, got {in_shape!r}")
    limits.check_tensor_shape(tuple(in_shape), f"{path}: field 'data.in_shape'")
    if type(classes) is not int or not 1 <= classes <= limits.MAX_CLASSES:
        raise MSQError(f"{path}: field 'data.classes' must be an integer in [1, {limits.MAX_CLASSES}], got {classes!r}")
    if not isinstance(signed, bool):
        raise MSQError(f"{path}: field 'data.signed' must be true or false, got {signed!r}")
    if set(q) - {"high_bits"} != {"wbits", "abits", "scheme", "out_bits"}:
        raise MSQError(f"{path}: field 'quant_config' must hold wbits, abits, scheme, out_bits and optionally "
                       f"high_bits, got {sorted(q)}")
    try:
        qcfg = QuantConfig(**q)
    except MSQError as exc:
        raise MSQError(f"{path}: field 'quant_config': {exc}") from exc
    net = build_model(kind, tuple(in_shape), classes, qcfg, signed)
    try:
        net.load_state_dict(ckpt["state_dict"])
    except (RuntimeError, TypeError, ValueError, KeyError) as exc:
        raise MSQError(f"{path}: field 'state_dict' does not fit the model {kind!r} ({str(exc)[:300]})") from exc
    net.eval()
    return net, ckpt


def _model_to_rebuild(path: Path, stored: str, given: str | None) -> str:
    """The model to rebuild: a built-in one the checkpoint names, or the user's from the command line."""
    if stored in BUILTIN_MODELS:
        if given is not None and given != stored:
            raise MSQError(f"{path}: the run was trained with model {stored!r}, not {given!r}")
        return stored
    if given is None:
        raise MSQError(f"{path}: the run was trained with the user model {stored!r}; MSQ never imports a file a "
                       "checkpoint names: pass --model path/to/file.py:function to rebuild it")
    return given
