"""Datasets: the embedded scikit-learn digits, or a user's own ``.npz`` file.

A user dataset is one ``.npz`` with four arrays: ``x_train`` and ``x_test`` (float, shaped
``(N, C, H, W)`` for images or ``(N, F)`` for vectors, same trailing shape), ``y_train`` and
``y_test`` (integer class labels ``0 … K-1``, shape ``(N,)``). Scale inputs to roughly [0, 1]
(or [-1, 1] for signed data): the input quantizer learns a power-of-two scale from them.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from msq.errors import MSQError

DIGITS_TEST_FRACTION = 0.2
DIGITS_SPLIT_SEED = 0  # the train/test split is fixed, independent of the training seed
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


@dataclass(frozen=True)
class Dataset:
    """Train and test arrays plus what the model builder needs to know."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def in_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def classes(self) -> int:
        return int(max(self.y_train.max(), self.y_test.max())) + 1

    @property
    def signed(self) -> bool:
        return bool(min(self.x_train.min(), self.x_test.min()) < 0)


def load_digits() -> Dataset:
    """scikit-learn's 8×8 digits (shipped with the package, no download), scaled to [0, 1]."""
    from sklearn.datasets import load_digits as sk_digits
    from sklearn.model_selection import train_test_split

    bunch = sk_digits()
    x = (bunch.images / 16.0).astype(np.float32)[:, None, :, :]
    y = bunch.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=DIGITS_TEST_FRACTION,
                                              random_state=DIGITS_SPLIT_SEED, stratify=y)
    return Dataset("digits", x_tr, y_tr, x_te, y_te)


def load_npz(path: str | Path) -> Dataset:
    """Load and validate a user dataset in the documented ``.npz`` layout."""
    path = Path(path)
    if not path.is_file():
        raise MSQError(f"dataset file {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in NPZ_KEYS if k not in f]
            if missing:
                raise MSQError(f"dataset {path}: missing array(s) {', '.join(missing)}; expected {', '.join(NPZ_KEYS)}")
            arrays = {k: f[k] for k in NPZ_KEYS}
    except (OSError, ValueError) as exc:
        if isinstance(exc, MSQError):
            raise
        raise MSQError(f"dataset {path} is not a readable .npz file: {exc}") from exc
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.ndim not in (2, 4) or not np.issubdtype(x.dtype, np.number):
            raise MSQError(f"dataset {path}: x_{split} must be numeric, shaped (N, F) or (N, C, H, W); got {x.dtype} {x.shape}")
        if y.ndim != 1 or len(y) != len(x) or not np.issubdtype(y.dtype, np.integer):
            raise MSQError(f"dataset {path}: y_{split} must be integer labels shaped ({len(x)},); got {y.dtype} {y.shape}")
        if len(y) and y.min() < 0:
            raise MSQError(f"dataset {path}: y_{split} has negative labels; expected classes 0..K-1")
        if not np.isfinite(x).all():
            raise MSQError(f"dataset {path}: x_{split} contains NaN or infinite values")
    if arrays["x_train"].shape[1:] != arrays["x_test"].shape[1:]:
        raise MSQError(f"dataset {path}: x_train and x_test sample shapes differ "
                       f"({arrays['x_train'].shape[1:]} vs {arrays['x_test'].shape[1:]})")
    return Dataset(path.stem, arrays["x_train"].astype(np.float32), arrays["y_train"].astype(np.int64),
                   arrays["x_test"].astype(np.float32), arrays["y_test"].astype(np.int64))


def load_dataset(name_or_path: str | Path) -> Dataset:
    """'digits' for the embedded dataset, else a path to a ``.npz`` file."""
    if str(name_or_path) == "digits":
        return load_digits()
    if str(name_or_path).endswith(".npz"):
        return load_npz(name_or_path)
    raise MSQError(f"unknown dataset {str(name_or_path)!r}: expected 'digits' or a path to a .npz file")
