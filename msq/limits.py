"""Documented bounds on untrusted inputs, checked before anything is allocated (docs/security.md).

An IR, a dataset or a checkpoint may come from someone else, and its sizes are claims: an
``.npz`` entry of 10^9 zeros compresses to a few kilobytes. Every array header is read and checked
(dtype, shape, element count, the bytes the member really holds) before its data, geometry is
bounded, and a command's memory estimate is refused above :func:`max_memory`.
"""
from __future__ import annotations

import math
import os
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from msq.errors import MSQError

MAX_MEMORY_MB = 2048  # default of MSQ_MAX_MEMORY_MB: what one command may allocate for its arrays
MAX_TEXT_BYTES = 16 * 2**20  # a JSON or YAML file MSQ reads (manifest, plan, metrics, board)
MAX_KERNEL = 16  # conv and pooling kernel height/width
MAX_STRIDE = 16
MAX_DIM = 4096  # image height, width or channels
MAX_FEATURES = 2**20  # elements of one vector or one image (H * W * C)
MAX_LAYERS = 256
MAX_LAYER_WEIGHTS = 2**21  # weights of one dense or conv layer (far beyond any FPGA's ROM)
MAX_CLASSES = 1000
MAX_NDIM = 8  # dimensions of an array in an .npz
_DTYPE_KINDS = "biuf"  # bool, signed, unsigned, float: nothing with objects, strings or records


def max_memory() -> int:
    """Bytes a command may allocate for its arrays: ``MSQ_MAX_MEMORY_MB`` (default 2048) MiB."""
    raw = os.environ.get("MSQ_MAX_MEMORY_MB", str(MAX_MEMORY_MB))
    if not raw.isdigit() or not 0 < int(raw) <= 2**30:
        raise MSQError(f"environment variable MSQ_MAX_MEMORY_MB={raw!r}: expected a positive number of MiB")
    return int(raw) * 2**20


def check_memory(nbytes: int, what: str) -> None:
    """Refuse work whose arrays would need more than :func:`max_memory` bytes."""
    limit = max_memory()
    if nbytes > limit:
        raise MSQError(f"{what} needs about {nbytes / 2**20:,.0f} MiB, above the limit of {limit // 2**20} MiB "
                       "(set MSQ_MAX_MEMORY_MB to raise it)")


def check_size(path: Path, limit: int, what: str) -> None:
    """Refuse a file larger than ``limit`` bytes before reading it."""
    size = path.stat().st_size
    if size > limit:
        raise MSQError(f"{what} {path}: {size:,} bytes, above the limit of {limit:,} bytes")


def _header(f, where: str) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from an .npy header (nothing else is read)."""
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f"unsupported .npy format version {version}")
    except (ValueError, EOFError, OSError, SyntaxError, TypeError) as exc:
        raise MSQError(f"{where}: not a valid .npy array header ({exc})") from exc
    if dtype.hasobject or dtype.kind not in _DTYPE_KINDS or dtype.itemsize > 8 or dtype.fields is not None:
        raise MSQError(f"{where}: dtype {dtype} is not allowed: expected booleans, integers or floats")
    if len(shape) > MAX_NDIM:
        raise MSQError(f"{where}: {len(shape)} dimensions, at most {MAX_NDIM} allowed")
    return shape, dtype


class NpzArrays:
    """The arrays of an ``.npz`` file with every header checked on opening (allowed dtype, a size the
    member really holds, all of them together within :func:`max_memory`) and no data read until
    :meth:`read`, so a caller checks each shape against what it expects first."""

    def __init__(self, path: str | Path, what: str):
        self.path, self.what = Path(path), what
        self.headers: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
        self._members: dict[str, zipfile.ZipInfo] = {}
        try:
            self._zip = zipfile.ZipFile(self.path)
        except (OSError, zipfile.BadZipFile, ValueError) as exc:
            raise MSQError(f"{what} {self.path}: not a readable .npz file ({exc})") from exc
        try:
            total = 0
            for info in self._zip.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                key = info.filename[:-4]
                with self._guard(key), self._zip.open(info) as f:
                    shape, dtype = _header(f, self._where(key))
                    offset = f.tell()
                nbytes = math.prod(shape) * dtype.itemsize
                if offset + nbytes != info.file_size:
                    raise MSQError(f"{self._where(key)}: its header claims shape {shape} of {dtype} ({nbytes:,} bytes) "
                                   f"but the member holds {info.file_size - offset:,} bytes (truncated or corrupt)")
                total += nbytes
                check_memory(total, f"{what} {self.path}")
                self.headers[key], self._members[key] = (shape, dtype), info
        except BaseException:
            self._zip.close()
            raise

    def _where(self, key: str) -> str:
        return f"{self.what} {self.path}: array '{key}'"

    @contextmanager
    def _guard(self, key: str) -> Iterator[None]:
        """A broken member (bad CRC, bad compression, cut short) as one MSQError naming it."""
        try:
            yield
        except (OSError, EOFError, zipfile.BadZipFile, zlib.error, ValueError) as exc:
            if isinstance(exc, MSQError):
                raise
            raise MSQError(f"{self._where(key)}: cannot read it ({exc})") from exc

    def __contains__(self, key: str) -> bool:
        return key in self.headers

    def __enter__(self) -> NpzArrays:
        return self

    def __exit__(self, *exc: object) -> None:
        self._zip.close()

    def read(self, key: str) -> np.ndarray:
        """The data of one array (its header was checked on opening)."""
        with self._guard(key), self._zip.open(self._members[key]) as f:
            return np.lib.format.read_array(f, allow_pickle=False)


def check_geometry(kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int],
                   where: str) -> None:
    """A conv or pooling window within the documented bounds; padding at most the kernel size (more
    only adds outputs that see nothing but zeros, and memory)."""
    for field, value, top in (("kernel", kernel, MAX_KERNEL), ("stride", stride, MAX_STRIDE)):
        if not all(1 <= v <= top for v in value):
            raise MSQError(f"{where}: field '{field}' {list(value)} must lie in [1, {top}]")
    if not all(0 <= p <= k for p, k in zip(padding, kernel)):
        raise MSQError(f"{where}: field 'padding' {list(padding)} must lie in [0, kernel] "
                       f"(kernel {list(kernel)})")


def check_tensor_shape(shape: tuple[int, ...], where: str) -> None:
    """A vector (F,) or an image within the documented bounds: each image side or channel count at most
    :data:`MAX_DIM`, at most :data:`MAX_FEATURES` elements."""
    if (not all(1 <= d for d in shape) or math.prod(shape) > MAX_FEATURES
            or (len(shape) > 1 and max(shape) > MAX_DIM)):
        raise MSQError(f"{where}: shape {list(shape)} is out of bounds: sizes 1..{MAX_DIM} per image side or "
                       f"channel, at most {MAX_FEATURES:,} elements")
