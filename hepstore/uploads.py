"""Receiving uploaded submissions: bounded in size before anything is read, and bounded in
how many are validated at once per process (validation holds parsed documents in memory)."""

from __future__ import annotations

import contextlib
import fcntl
import threading
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings
from django.core.files.uploadhandler import TemporaryFileUploadHandler

from hepstore import scratch
from hepstore.errors import Busy, TooLarge, UnusableInput


class LockedTemporaryFileUploadHandler(TemporaryFileUploadHandler):
    """Django's streaming upload handler, with the request's temporary file locked by the
    process writing it: a file under FILE_UPLOAD_TEMP_DIR whose lock can be taken was left
    by a process that died mid-request, and fsck / the next ingestion remove it."""

    def new_file(self, *args, **kwargs):
        super().new_file(*args, **kwargs)
        fcntl.flock(self.file.file.fileno(), fcntl.LOCK_EX)


_slots_guard = threading.Lock()
_slots: dict[int, threading.BoundedSemaphore] = {}


def upload_limit(request) -> int:
    """Largest upload in bytes for this request: anonymous clients may get a smaller one."""
    limit = settings.HEPSTORE_MAX_UPLOAD_BYTES
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        limit = min(limit, settings.HEPSTORE_ANONYMOUS_MAX_UPLOAD_BYTES)
    return limit


def refuse_oversized(request) -> None:
    """Refuse a request whose declared body exceeds the upload limit, before reading it."""
    limit = upload_limit(request)
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > limit:
        who = "" if limit == settings.HEPSTORE_MAX_UPLOAD_BYTES else " without logging in"
        raise TooLarge(
            f"the upload is {length / 2**20:.1f} MB; the limit{who} is {limit // 2**20} MB"
        )


def _semaphore() -> tuple[int, threading.BoundedSemaphore]:
    size = max(1, settings.HEPSTORE_MAX_CONCURRENT_VALIDATIONS)
    with _slots_guard:
        return size, _slots.setdefault(size, threading.BoundedSemaphore(size))


@contextlib.contextmanager
def validation_slot() -> Iterator[None]:
    """One of HEPSTORE_MAX_CONCURRENT_VALIDATIONS slots of this process; waits up to
    HEPSTORE_VALIDATION_WAIT_SECONDS, then raises Busy (503 with Retry-After)."""
    size, slots = _semaphore()
    wait = settings.HEPSTORE_VALIDATION_WAIT_SECONDS
    if not slots.acquire(timeout=max(wait, 0)):
        raise Busy(
            f"{size} upload(s) are being validated already; try again in a few seconds",
            retry_after=max(wait, 1),
        )
    try:
        yield
    finally:
        slots.release()


@contextlib.contextmanager
def saved_uploads(files) -> Iterator[list[Path]]:
    """Write uploaded files into a private scratch directory; yields the paths to validate
    (the directory itself when several files make up one submission). The caller's work
    inside the block holds one validation slot."""
    if not files:
        raise UnusableInput("no file was uploaded")
    limit = settings.HEPSTORE_MAX_UPLOAD_BYTES
    total = 0
    with validation_slot(), scratch.scratch_dir("upload-") as tmp:
        root = tmp / "submission"
        root.mkdir()
        paths = []
        for uploaded in files:
            name = Path(uploaded.name or "upload").name or "upload"
            if name in (".", ".."):
                name = "upload"
            target = root / name
            try:
                with open(target, "wb") as out:
                    for chunk in uploaded.chunks():
                        total += len(chunk)
                        if total > limit:
                            raise TooLarge(f"the upload exceeds the limit of {limit // 2**20} MB")
                        out.write(chunk)
            except OSError as exc:
                raise (scratch.storage_failure(exc, "save the upload") or exc) from exc
            paths.append(target)
        yield paths if len(paths) == 1 else [root]
