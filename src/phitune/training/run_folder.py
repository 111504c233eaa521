"""The run folder's lifecycle: who may write it (a lock), what a new run may do with what is there
(fresh, resume, replace, refuse), and how a replacement is swapped in only once it is complete.

- Lock: `RUN/.phitune.lock`, an exclusive `fcntl.flock` held for the run's life. The OS releases it
  when the process dies in any way; a second run into the same folder is refused with the holder's
  PID (written into the lock file). The file is removed when a run ends normally.
- Fresh run into a new or empty folder: trains in place (checkpoints there, so `--resume` works).
- A folder holding a run, finished (metrics.json) or not (checkpoints): refused unless `overwrite`
  (an unfinished one points at `--resume`); then the new run is built in a hidden sibling
  `.RUN.overwrite/` (a stale one from an abandoned replacement is discarded) and exchanged with RUN only
  when complete
  (renameat2 RENAME_EXCHANGE, one atomic step), so a failure or kill -9 at any moment leaves the
  old run intact. An interrupted replacement resumes from that sibling (`--resume`).
- Nothing in RUN is touched until `begin()`, which `train()` calls after the recipe, data and model
  have all been checked; a run that fails before its first checkpoint removes what it wrote (and
  the folder, if it made it).
- Leftovers of a killed writer (hidden temporary folders of atomic writes, half-written checkpoints)
  are removed when the next run takes the lock; a corrupt latest checkpoint is skipped for the newest
  valid one (phitune.training.checkpoint.newest_valid_checkpoint).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from phitune.errors import Problem, TrainError
from phitune.models import run_dir as layout
from phitune.files import writing

log = logging.getLogger("phitune.training")

LOCK_FILE = ".phitune.lock"


def staging_dir(final: Path) -> Path:
    """Where a run replacing the finished run in `final` is built."""
    return final.parent / f".{final.name}.overwrite"


def _trash_dir(final: Path) -> Path:
    return final.parent / f".{final.name}.replaced"


# --- the lock --------------------------------------------------------------------------------------


class RunLock:
    """An exclusive flock on RUN/.phitune.lock, held until `release()` or the process ends."""

    def __init__(self, path: Path, fd: int | None):
        self.path, self.fd = path, fd

    @classmethod
    def acquire(cls, folder: Path) -> "RunLock":
        path = folder / LOCK_FILE
        try:
            import fcntl
        except ImportError:  # not a POSIX system: no flock, run unlocked
            log.warning("cannot lock %s on this platform; another run into this folder would not be noticed", folder)
            return cls(path, None)

        while True:
            with writing("the run folder's lock file", folder):
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_pid(fd)
                os.close(fd)
                raise TrainError(f"{folder} is in use by another run (PID {holder})", [Problem(
                    str(folder), f"process {holder} holds its lock ({path.name}) and is writing this run folder",
                    "wait for it to finish, stop it, or choose another --output")]) from None
            except OSError as exc:  # a filesystem without locks (some network mounts): run unlocked
                log.warning("cannot lock %s (%s); another run into this folder would not be noticed", folder, exc)
                os.close(fd)
                return cls(path, None)
            # The previous holder may have removed the file between our open and flock: then we hold
            # a lock on a deleted file, which protects nothing. Try again on the current one.
            try:
                same = os.stat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        return cls(path, fd)

    def release(self) -> None:
        if self.fd is None:
            return
        with contextlib.suppress(OSError):
            if os.stat(self.path).st_ino == os.fstat(self.fd).st_ino:
                os.unlink(self.path)  # unlink before unlocking: a waiter re-checks the inode
        os.close(self.fd)
        self.fd = None


def _read_pid(fd: int) -> str:
    try:
        return os.pread(fd, 32, 0).decode().strip() or "unknown"
    except OSError:
        return "unknown"


# --- the folder ------------------------------------------------------------------------------------


@dataclass
class RunFolder:
    """An opened (locked) run folder. `work` is where this run writes: `final`, or the staging sibling
    while it replaces a finished run."""

    final: Path
    work: Path
    resume_from: Path | None
    replacing: bool
    created: bool  # this run made `final` (so a failure removes it again)
    lock: RunLock | None = None
    _begun: bool = field(default=False, repr=False)

    def begin(self) -> Path:
        """Called once every check passed: make the folder this run writes into."""
        with writing("the run folder", self.work):
            if self.replacing and self.resume_from is None:
                shutil.rmtree(self.work, ignore_errors=True)  # a stale, abandoned replacement
            self.work.mkdir(parents=True, exist_ok=True)
        self._begun = True
        return self.work

    def commit(self) -> None:
        """The run is complete in `work`: make it the run in `final` (atomic when replacing)."""
        if self.replacing:
            with writing("the finished run", self.final):
                swap_dirs(self.work, self.final)
                shutil.rmtree(self.work, ignore_errors=True)  # the old run, now at the staging path
            log.info("replaced the finished run in %s", self.final)

    def abort(self) -> None:
        """A failed (not interrupted) run: leave no half-made folder. Checkpoints are kept."""
        if any(_checkpoint_dirs(self.work)):
            return
        with contextlib.suppress(OSError):
            if self.replacing:
                shutil.rmtree(self.work, ignore_errors=True)
            elif self.created:
                shutil.rmtree(self.final, ignore_errors=True)
            elif self._begun:
                (self.final / layout.RESOLVED).unlink(missing_ok=True)

    def release(self) -> None:
        if self.lock is not None:
            self.lock.release()
            self.lock = None
        if self.created and self.final.is_dir() and not any(self.final.iterdir()):
            with contextlib.suppress(OSError):
                self.final.rmdir()


class FolderScope:
    """Opens at most one run folder and, on leaving, releases its lock, after `abort()` when the run
    failed. An interrupted run (Ctrl-C, SIGTERM) keeps what it wrote: it may be resumed."""

    def __init__(self) -> None:
        self.folder: RunFolder | None = None

    def open(self, final: str | os.PathLike, *, resume: bool, overwrite: bool) -> RunFolder:
        self.folder = open_run_folder(final, resume=resume, overwrite=overwrite)
        return self.folder

    def __enter__(self) -> "FolderScope":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.folder is None:
            return
        from phitune.errors import TrainingInterrupted

        try:
            if exc_type is not None and not issubclass(exc_type, (KeyboardInterrupt, TrainingInterrupted)):
                self.folder.abort()
        finally:
            self.folder.release()


def open_run_folder(final: str | os.PathLike, *, resume: bool, overwrite: bool) -> RunFolder:
    """Check that `final` can take this run and lock it; nothing in it changes yet (see `begin`).

    Raises TrainError (exit 2) for: an output that is a file or under a file, an unwritable place, a
    folder locked by another run, an unfinished run without `resume`, a finished run without
    `overwrite`, nothing to resume."""
    final = Path(final)
    if resume and overwrite:
        raise TrainError("--resume and --overwrite contradict each other", [Problem(
            "--overwrite", "--resume continues the run in the folder; --overwrite replaces it with a new one",
            "choose one")])
    check_output_path(final)
    _recover_interrupted_swap(final)
    created = not final.exists()
    with writing("the run folder", final):
        final.mkdir(parents=True, exist_ok=True)
    try:
        lock = RunLock.acquire(final)
    except BaseException:
        if created:
            shutil.rmtree(final, ignore_errors=True)
        raise
    try:
        folder = _decide(final, resume, overwrite, created)
    except BaseException:
        lock.release()
        if created:
            shutil.rmtree(final, ignore_errors=True)
        raise
    folder.lock = lock
    return folder


def check_output_path(final: Path) -> None:
    """An --output that cannot be a folder, said once and plainly."""
    if final.exists() and not final.is_dir():
        raise TrainError(f"--output {final} is a file", [Problem(
            str(final), "a run folder is needed here, and a file already has this name", "choose another --output")])
    for parent in final.parents:
        if parent.exists():
            if not parent.is_dir():
                raise TrainError(f"cannot create the run folder {final}", [Problem(
                    str(parent), "is a file, not a folder", "choose an --output whose parents are folders")])
            break


def _decide(final: Path, resume: bool, overwrite: bool, created: bool) -> RunFolder:
    from phitune.training.checkpoint import newest_valid_checkpoint

    shutil.rmtree(_trash_dir(final), ignore_errors=True)  # the old run of a completed two-rename swap
    clean_leftovers(final)
    staging = staging_dir(final)
    finished = (final / layout.METRICS).is_file()
    if resume:
        if finished:
            if staging.is_dir() and any(_checkpoint_dirs(staging)):
                clean_leftovers(staging)
                latest = newest_valid_checkpoint(staging)
                if latest is not None:
                    return RunFolder(final, staging, latest, replacing=True, created=False)
            raise TrainError(f"the run in {final} already finished", [Problem(
                str(final), "metrics.json is there, so there is nothing to resume",
                "run with --overwrite instead of --resume to train again (the finished run is replaced only "
                "once the new one is complete), or choose another --output")])
        latest = newest_valid_checkpoint(final)
        if latest is None:
            raise TrainError(f"nothing to resume in {final}", [Problem(
                str(final), "no valid checkpoints/step-N/ folder", "run without --resume to start a new run")])
        return RunFolder(final, final, latest, replacing=False, created=created)
    unfinished = any(_checkpoint_dirs(final)) and not finished
    if (finished or unfinished) and overwrite:
        log.warning("replacing the %s run in %s once this run completes", "finished" if finished else "unfinished", final)
        return RunFolder(final, staging, None, replacing=True, created=False)  # a stale staging is discarded
    if unfinished:
        latest = newest_valid_checkpoint(final)
        last = f" (last checkpoint {latest.name})" if latest is not None else ""
        raise TrainError(f"{final} holds an unfinished run{last}", [Problem(
            str(final), "starting over would delete its checkpoints",
            "add --resume to continue it, --overwrite to replace it (it stays until the new run is complete), "
            "or choose another --output")])
    if finished:
        raise TrainError(f"{final} holds a finished run", [Problem(
            str(final), "training again would replace it",
            "add --overwrite to replace it (it stays until the new run is complete), or choose another --output")])
    return RunFolder(final, final, None, replacing=False, created=created)


def clean_leftovers(folder: Path) -> None:
    """Remove what a killed writer left: hidden temporary entries of atomic writes in `folder` and in
    its checkpoints/ (half-written checkpoints). Called with the lock held, so nobody is writing."""
    from phitune.training.outputs import RUN_ENTRIES

    names = tuple(RUN_ENTRIES) + ("loss",)
    for parent in (folder, folder / layout.CHECKPOINTS):
        if not parent.is_dir():
            continue
        for entry in parent.iterdir():
            name = entry.name
            temp = name.startswith(".") and name != LOCK_FILE and (
                parent.name == layout.CHECKPOINTS and name.startswith(".step-")
                or any(name.startswith(f".{n}.") for n in names))
            if temp:
                log.info("removing %s (left by an interrupted write)", entry)
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)


def _checkpoint_dirs(folder: Path):
    root = folder / layout.CHECKPOINTS
    return (p for p in root.iterdir() if p.name.startswith("step-")) if root.is_dir() else iter(())


def _recover_interrupted_swap(final: Path) -> None:
    """The two-rename fallback of `swap_dirs` died between its renames (no run at `final`, the old
    one beside it): put the old run back."""
    trash = _trash_dir(final)
    if not final.exists() and (trash / layout.METRICS).is_file():
        log.warning("restoring the finished run in %s (its replacement was interrupted)", final)
        with writing("the run folder", final):
            os.replace(trash, final)


# --- swapping two folders --------------------------------------------------------------------------

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def swap_dirs(new: Path, final: Path) -> None:
    """Put folder `new` at `final`, and `final`'s old content at `new`, atomically where the kernel
    allows (renameat2 RENAME_EXCHANGE); otherwise with two renames (a crash between them is repaired by
    the next `open_run_folder`)."""
    if _rename_exchange(new, final):
        return
    trash = _trash_dir(final)
    shutil.rmtree(trash, ignore_errors=True)
    os.replace(final, trash)
    os.replace(new, final)
    os.replace(trash, new)


def _rename_exchange(a: Path, b: Path) -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False  # this kernel or filesystem cannot exchange: fall back to two renames
    raise OSError(err, os.strerror(err), str(b))
