"""Atomic outputs: everything is written aside and swapped in with one rename, so a crash, an error
or a ``kill -9`` leaves the previous good output or the new one, never a mix; and the matching
JSON read with a clear error.

* one file: :func:`atomic_path` (a temporary file beside the target, renamed over it);
* one directory: :func:`atomic_dir` (a temporary directory, exchanged with the old one in one
  ``renameat2(RENAME_EXCHANGE)``). It replaces only a directory MSQ made itself, one that holds
  the :data:`OUTPUT_MARKER` file, or an empty one; anything else is refused, so ``--out`` never
  deletes a user's files;
* several files of one run directory together (a training run): :func:`atomic_group` writes
  them aside, then commits by renaming one journal into place; :func:`recover` completes a commit
  a kill interrupted, and every reader calls it first. A run directory carries
  :data:`RUN_MARKER`; MSQ writes a run only into a new, empty or marked directory.

Temporary names carry the writer's process id (``.NAME.msq-PID-XXXX``); the next writer removes
those of processes that no longer exist, so a killed run leaves nothing behind for long.
"""
from __future__ import annotations

import ctypes
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from msq.errors import MSQError
from msq.limits import MAX_TEXT_BYTES, check_size

OUTPUT_MARKER = ".msq-output"  # in every directory atomic_dir wrote: --out may replace it
RUN_MARKER = ".msq-run"  # in every run directory msq train wrote: training may write into it again
JOURNAL = ".msq-commit.json"  # a group commit in progress (see atomic_group)
_TAG = ".msq-"  # temporary names: .NAME.msq-PID-XXXX


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_leftovers(parent: Path, name: str) -> None:
    """Remove the temporary files and directories of ``name`` that killed writers left in ``parent``."""
    prefix = f".{name}{_TAG}"
    if not parent.is_dir():
        return
    for entry in parent.iterdir():
        if not entry.name.startswith(prefix):
            continue
        pid = entry.name[len(prefix):].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)


def _prefix(path: Path) -> str:
    return f".{path.name}{_TAG}{os.getpid()}-"


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it is renamed to ``path``, on error removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_dir():
        raise MSQError(f"{path} is a directory: expected a file to write")
    remove_leftovers(path.parent, path.name)
    fd, tmp = tempfile.mkstemp(prefix=_prefix(path), suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the file the usual permissions
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two directories in one step (Linux renameat2); False where the system cannot."""
    fn = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if fn is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def check_replaceable(path: Path) -> None:
    """Refuse to replace ``path`` unless it is missing, an empty directory or an MSQ output."""
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        raise MSQError(f"{path} exists and is not a directory MSQ wrote: refusing to replace it "
                       "(remove it or choose another --out)")
    if path.is_dir() and any(path.iterdir()) and not (path / OUTPUT_MARKER).is_file():
        raise MSQError(f"{path} exists and was not written by MSQ (no {OUTPUT_MARKER} file in it): refusing to "
                       "replace it and lose its files (remove it or choose another --out)")


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary directory beside ``path`` to fill; on success it replaces ``path`` whole in
    one exchange (an existing one stays until the new one is complete), on error it is removed."""
    path = Path(os.path.abspath(path))  # '.', '..' and 'a/..' resolved by name, links not followed
    if not path.name:
        raise MSQError(f"{path} is the file system root: refusing to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(path.parent, path.name)
    old = path.with_name(f".{path.name}{_TAG}old")
    if old.is_dir() and not path.exists():  # a killed non-Linux swap: put the previous output back
        old.rename(path)
    shutil.rmtree(old, ignore_errors=True)
    check_replaceable(path)
    tmp = Path(tempfile.mkdtemp(prefix=_prefix(path), dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp creates 0700
    try:
        yield tmp
        (tmp / OUTPUT_MARKER).write_text("Written by MSQ: 'msq ... --out' may replace this directory.\n")
        if not path.exists():
            tmp.rename(path)
        elif not _exchange(tmp, path):
            path.rename(old)
            tmp.rename(path)
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def check_run_dir(directory: Path) -> None:
    """Refuse a run directory that exists but is not one MSQ made (no :data:`RUN_MARKER`, not empty)."""
    if directory.exists() and (not directory.is_dir() or directory.is_symlink()):
        raise MSQError(f"{directory} exists and is not a directory: refusing to write a run into it")
    if directory.is_dir() and any(directory.iterdir()) and not (directory / RUN_MARKER).is_file():
        raise MSQError(f"{directory} exists and is not a run directory MSQ wrote (no {RUN_MARKER} file in it): "
                       "refusing to write into it (choose a new or empty --out)")


def claim_run_dir(directory: str | Path) -> Path:
    """Create (or reuse) a run directory and mark it as MSQ's; finish a commit a kill interrupted."""
    directory = Path(directory)
    check_run_dir(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / RUN_MARKER).touch()
    recover(directory)
    return directory


@contextmanager
def atomic_group(directory: str | Path) -> Iterator[Path]:
    """Yield a temporary directory inside the run directory ``directory``; on success every file
    written to it replaces its namesake in ``directory`` as one commit (a journal renamed into
    place, then :func:`recover`), on error nothing changes."""
    directory = claim_run_dir(directory)
    remove_leftovers(directory, "group")
    tmp = Path(tempfile.mkdtemp(prefix=f".group{_TAG}{os.getpid()}-", dir=directory))
    try:
        yield tmp
        names = sorted(p.name for p in tmp.iterdir())
        write_json(directory / JOURNAL, {"from": tmp.name, "files": names})  # the commit point
        recover(directory)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def recover(directory: str | Path) -> None:
    """Finish a group commit that a kill interrupted (rename the rest of its files into place)."""
    directory = Path(directory)
    journal = directory / JOURNAL
    if not journal.is_file():
        return
    entry = read_json(journal, "a commit journal")
    if (not isinstance(entry, dict) or not isinstance(entry.get("from"), str) or not isinstance(entry.get("files"), list)
            or not all(isinstance(n, str) and "/" not in n and n not in ("", ".", "..") for n in entry["files"])
            or "/" in entry["from"] or not entry["from"].startswith(f".group{_TAG}")):
        raise MSQError(f"{journal}: not a commit journal MSQ wrote; remove it")
    source = directory / entry["from"]
    for name in entry["files"]:
        if (source / name).exists():
            os.replace(source / name, directory / name)
    journal.unlink()
    shutil.rmtree(source, ignore_errors=True)


def inside(root: Path, rel: str) -> Path:
    """``root / rel``, refused unless it resolves inside ``root`` (a generator's every output path)."""
    if not isinstance(rel, str):
        raise MSQError(f"expected a relative path inside {root}, got {rel!r}")
    target = (root / rel).resolve()
    if not target.is_relative_to(root.resolve()) or target == root.resolve():
        raise MSQError(f"refusing {rel!r}: it resolves outside the directory {root}")
    return root / rel


def write_with(path: str | Path, writer: Callable[[Path], Any]) -> None:
    """Atomically write ``path`` by calling ``writer(tmp_path)``."""
    with atomic_path(path) as tmp:
        writer(tmp)


def write_text(path: str | Path, text: str) -> None:
    write_with(path, lambda tmp: tmp.write_text(text))


def write_json(path: str | Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def read_json(path: str | Path, missing: str) -> Any:
    """Parse a JSON file; ``missing`` says what the file should be and how to make it. Too large,
    not UTF-8, not JSON or nested too deep is an MSQError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise MSQError(f"{path} does not exist: {missing}")
    try:
        check_size(path, MAX_TEXT_BYTES, "file")
        return json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise MSQError(f"{path}: not UTF-8 text ({exc})") from exc
    except json.JSONDecodeError as exc:
        raise MSQError(f"{path}: not valid JSON ({exc})") from exc
    except RecursionError as exc:
        raise MSQError(f"{path}: JSON nested too deeply") from exc
    except OSError as exc:
        raise MSQError(f"{path}: cannot read it ({exc.strerror})") from exc
