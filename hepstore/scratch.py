"""Private scratch space under the data directory, and the lock that orders storage writes.

Every temporary file the archive makes (saved uploads, unpacked archives, Django's request
upload files, ingestion journals) lives under <DATA_DIR>/tmp, so a process killed mid-way
leaves its leftovers in one known place, where the next ingestion or `manage.py fsck` finds
them. A scratch directory holds an exclusive lock on its `.owner` file for as long as it is
in use: one whose lock can be taken belongs to a dead process.

The storage lock (<DATA_DIR>/tmp/storage.lock) is held shared by every ingestion while it
writes blobs and commits, and exclusively by whoever removes unreferenced blobs, so a blob
that an ingestion is about to reference is never removed under it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings

from hepstore.errors import Busy, StorageFailure

log = logging.getLogger(__name__)

OWNER = ".owner"
WORK_PREFIX = "work-"
JOURNAL_PREFIX = "ingest-"
JOURNAL_SUFFIX = ".journal"
REQUESTS = "requests"
# A scratch directory is locked right after it is made; one without its lock file is
# only taken for abandoned when it is older than this.
UNLOCKED_GRACE = 60.0
# A request's upload file is locked within microseconds of its creation (by
# uploads.LockedTemporaryFileUploadHandler); an unlocked one younger than this may be
# between the two, so it is left for the next sweep.
REQUEST_FILE_GRACE = 5.0
_STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


def root() -> Path:
    return Path(settings.DATA_DIR) / "tmp"


def storage_failure(exc: OSError, what: str) -> StorageFailure | None:
    """A clear error for a data directory that is full or not writable, else None."""
    if exc.errno not in _STORAGE_ERRNOS:
        return None
    full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
    reason = "the disk is full" if full else "it is not writable"
    return StorageFailure(
        f"cannot {what}: {reason} ({exc.strerror}); nothing was stored",
        status=507 if full else 503,
    )


def _ensure_root() -> Path:
    path = root()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise (storage_failure(exc, "create the scratch directory") or exc) from exc
    return path


@contextlib.contextmanager
def scratch_dir(prefix: str = "") -> Iterator[Path]:
    """A private directory under <DATA_DIR>/tmp, removed on exit and locked while in use."""
    base = _ensure_root()
    try:
        path = Path(tempfile.mkdtemp(prefix=f"{WORK_PREFIX}{prefix}", dir=base))
        owner = open(path / OWNER, "wb")  # noqa: SIM115 - held open for the lock's lifetime
    except OSError as exc:
        raise (storage_failure(exc, "create a scratch directory") or exc) from exc
    try:
        fcntl.flock(owner, fcntl.LOCK_EX)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        owner.close()


def _abandoned(path: Path) -> bool:
    try:
        with open(path / OWNER, "rb") as owner:
            try:
                fcntl.flock(owner, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            return True
    except FileNotFoundError:
        try:
            return time.time() - path.stat().st_mtime > UNLOCKED_GRACE
        except FileNotFoundError:
            return False


def stale_entries() -> list[Path]:
    """Scratch directories of dead processes and request upload files left by a kill."""
    base = root()
    if not base.is_dir():
        return []
    found = []
    for entry in sorted(base.iterdir()):
        if entry.is_dir() and entry.name.startswith(WORK_PREFIX) and _abandoned(entry):
            found.append(entry)
    requests = base / REQUESTS
    if requests.is_dir():
        for entry in sorted(requests.iterdir()):
            if entry.is_file() and _unlocked_request_file(entry):
                found.append(entry)
    return found


def _unlocked_request_file(path: Path) -> bool:
    try:
        if time.time() - path.stat().st_mtime <= REQUEST_FILE_GRACE:
            return False
        with open(path, "rb") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False  # a live request is still using it
            return True
    except FileNotFoundError:
        return False


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


class StorageLock:
    """flock on <DATA_DIR>/tmp/storage.lock: shared while ingesting, exclusive to sweep."""

    def __init__(self) -> None:
        self._file = None

    def acquire(self, exclusive: bool, wait: float | None = None) -> bool:
        """Take the lock; wait None blocks, 0 tries once, else polls for wait seconds."""
        path = _ensure_root() / "storage.lock"
        try:
            self._file = open(path, "ab")  # noqa: SIM115 - released in release()
        except OSError as exc:
            raise (storage_failure(exc, "open the storage lock") or exc) from exc
        mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        if wait is None:
            fcntl.flock(self._file, mode)
            return True
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(self._file, mode | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    self.release()
                    return False
                time.sleep(0.1)

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing the descriptor releases the flock
            self._file = None


@contextlib.contextmanager
def exclusive_storage(wait: float | None) -> Iterator[None]:
    """Hold the storage lock exclusively (no ingestion is writing); Busy if not had in time."""
    lock = StorageLock()
    if not lock.acquire(exclusive=True, wait=wait):
        raise Busy("an ingestion is writing to the blob store; try again shortly", 5)
    try:
        yield
    finally:
        lock.release()


def journal_paths() -> list[Path]:
    base = root()
    if not base.is_dir():
        return []
    return sorted(base.glob(f"{JOURNAL_PREFIX}*{JOURNAL_SUFFIX}"))


def new_journal() -> tuple[Path, object]:
    """A journal file of blobs an ingestion creates, opened for appending."""
    base = _ensure_root()
    try:
        fd, name = tempfile.mkstemp(prefix=JOURNAL_PREFIX, suffix=JOURNAL_SUFFIX, dir=base)
    except OSError as exc:
        raise (storage_failure(exc, "start an ingestion journal") or exc) from exc
    return Path(name), os.fdopen(fd, "a", encoding="utf-8")
