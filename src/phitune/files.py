"""Atomic file and folder writes: a reader (or a crash) never sees a half-written output.

Everything is written into a temporary sibling and renamed into place with `os.replace`, which is
atomic within one filesystem. `metrics.json` goes last, so its presence means the run completed.
Folders and files get the modes the umask allows (tempfile.mkdtemp alone would make every output folder
0700, and safetensors writes its files 0600).
A write that fails for a reason the user must fix (disk full, read-only filesystem, permissions)
becomes one TrainError naming the path (`writing`), never a traceback.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator


@contextlib.contextmanager
def atomic_dir(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder; on success it replaces `final` (old contents removed), else vanishes."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = make_temp_dir(final)
    try:
        yield tmp
        follow_umask(tmp)
        replace_dir(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def make_temp_dir(final: Path) -> Path:
    """A hidden temporary sibling of `final` (`.NAME.XXXX`), with the umask's mode, not mkdtemp's 0700."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    os.chmod(tmp, 0o777 & ~current_umask())
    return tmp


def follow_umask(root: Path) -> None:
    """Give everything under `root` the modes a plain open()/mkdir() would have: safetensors writes
    its files 0600, whatever the umask (then only the owner could read a shared run folder)."""
    umask = current_umask()
    for path in [root, *root.rglob("*")]:
        if path.is_symlink():
            continue
        os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~umask)


def current_umask() -> int:
    """The process umask, read without changing it (os.umask can only be read by setting it, which
    races with other threads creating files)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# errno -> what the user is told; anything else is shown with its own strerror
_WRITE_PROBLEMS = {
    errno.ENOSPC: ("no space left on device", "free some space (or use another --output) and run again"),
    errno.EDQUOT: ("disk quota exceeded", "free some space (or use another --output) and run again"),
    errno.EROFS: ("the filesystem is read-only", "choose an --output on a writable filesystem"),
    errno.EACCES: ("permission denied", "choose an --output you can write to"),
    errno.EPERM: ("permission denied", "choose an --output you can write to"),
    errno.ENOTDIR: ("a part of the path is a file, not a folder", "choose an --output whose parents are folders"),
    errno.EEXIST: ("a file is in the way", "choose another --output"),
    errno.EFBIG: ("the file is too large for this filesystem (or the file size limit)", "choose another --output"),
}


@contextlib.contextmanager
def writing(what: str, path: str | os.PathLike) -> Iterator[None]:
    """Turn an OSError raised while writing `what` to `path` into one TrainError (exit 2)."""
    from phitune.errors import Problem, TrainError

    try:
        yield
    except Exception as exc:  # noqa: BLE001 - only errors that carry an errno are turned into a message
        code = _errno_of(exc)
        if code is None:
            raise
        message, fix = _WRITE_PROBLEMS.get(code, (os.strerror(code), "check the --output folder"))
        where = getattr(exc, "filename", None) or path
        raise TrainError(f"cannot write {what} to {path}: {message}", [Problem(str(where), message, fix)]) from None


def _errno_of(exc: BaseException) -> int | None:
    """The errno of an OSError, or of a library error that wraps one in its message (safetensors'
    SafetensorError says "I/O error: No space left on device (os error 28)")."""
    if isinstance(exc, OSError):
        return exc.errno
    match = re.search(r"\(os error (\d+)\)", str(exc))
    return int(match.group(1)) if match else None


def replace_dir(src: Path, dst: Path) -> None:
    """os.replace for folders: a non-empty destination is moved aside first, then removed."""
    if dst.exists():
        trash = dst.with_name(f".{dst.name}.old-{os.getpid()}")
        if trash.exists():
            shutil.rmtree(trash)
        os.replace(dst, trash)
        os.replace(src, dst)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(src, dst)


def write_json_atomic(path: str | os.PathLike, data: Any) -> Path:
    return write_text_atomic(path, json.dumps(data, indent=2) + "\n")  # json.dumps writes ASCII: the same bytes


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """`path` holds all of `text` (UTF-8) or is left as it was; no temporary file outlives the call."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # a failed write (disk full) leaves no temporary file
    return path


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling of `path` to write (`.STEM.tmp-PID.SUFFIX`: a writer that picks the
    format from the extension still sees it); on success it replaces `path`, and it never outlives
    the block (a failed write leaves no temporary file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
