"""Receiving uploaded submissions: bounded in size before anything is read."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings

from hepstore.errors import TooLarge, UnusableInput


def refuse_oversized(request) -> None:
    """Refuse a request whose declared body exceeds the upload limit, before reading it."""
    limit = settings.HEPSTORE_MAX_UPLOAD_BYTES
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > limit:
        raise TooLarge(f"the upload is {length / 2**20:.1f} MB; the limit is {limit // 2**20} MB")


@contextlib.contextmanager
def saved_uploads(files) -> Iterator[list[Path]]:
    """Write uploaded files into a private temporary directory; yields the paths to validate
    (the directory itself when several files make up one submission)."""
    if not files:
        raise UnusableInput("no file was uploaded")
    limit = settings.HEPSTORE_MAX_UPLOAD_BYTES
    total = 0
    with tempfile.TemporaryDirectory(prefix="hepstore-upload-") as tmp:
        root = Path(tmp) / "submission"
        root.mkdir()
        paths = []
        for uploaded in files:
            name = Path(uploaded.name or "upload").name or "upload"
            if name in (".", ".."):
                name = "upload"
            target = root / name
            with open(target, "wb") as out:
                for chunk in uploaded.chunks():
                    total += len(chunk)
                    if total > limit:
                        raise TooLarge(f"the upload exceeds the limit of {limit // 2**20} MB")
                    out.write(chunk)
            paths.append(target)
        yield paths if len(paths) == 1 else [root]
