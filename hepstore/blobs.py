"""Content-addressed blob storage: documents stored once under the sha256 of their bytes,
in canonical JSON (put_json) or as they were published (put_file).

Layout: <HEPSTORE_BLOB_DIR>/<aa>/<bb>/<sha256>.json. Files are written to a temporary name
(`.incoming-*` beside the target) and renamed, so a reader never sees a partial file.

Crash safety: a BlobWriter holds the storage lock shared (see hepstore.scratch) and writes
the name of every blob it is about to create into a journal before creating it. The journal
is removed once the ingestion has committed or cleaned up after itself. A journal left
behind belongs to an ingestion that was killed: `sweep` (run by the next ingestion and by
`manage.py fsck --repair`, holding the lock exclusively, so no ingestion is writing) removes
the blobs it lists that no database row names, and the temporary files beside them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path

from django.conf import settings

from hepstore import jsonio, scratch
from hepstore.errors import Busy

log = logging.getLogger(__name__)
INCOMING = ".incoming-"


def blob_path(sha256: str) -> Path:
    return Path(settings.HEPSTORE_BLOB_DIR) / sha256[:2] / sha256[2:4] / f"{sha256}.json"


def read_bytes(sha256: str) -> bytes:
    return blob_path(sha256).read_bytes()


def read_json(sha256: str):
    """A stored document. Blobs are canonical JSON written by this module after validation,
    so they are parsed without the strict reader's checks (duplicate keys, depth, number
    overflow), which cost about as much again as parsing a large patchset."""
    try:
        return json.loads(read_bytes(sha256))
    except ValueError as exc:  # corrupt storage; fsck reports which blob
        raise jsonio.JSONProblem(f"stored document {sha256} is not valid JSON: {exc}") from exc


class BlobWriter:
    """Writes the blobs of one ingestion; use as a context manager around the transaction."""

    def __init__(self) -> None:
        self.created: list[Path] = []
        self._lock = scratch.StorageLock()
        self._journal_path: Path | None = None
        self._journal = None

    def __enter__(self) -> BlobWriter:
        self._lock.acquire(exclusive=False)
        try:
            self._journal_path, self._journal = scratch.new_journal()
        except BaseException:
            self._lock.release()
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close()

    def close(self) -> None:
        """The ingestion has committed (or discarded its blobs): forget the journal."""
        if self._journal is not None:
            self._journal.close()
            self._journal = None
        if self._journal_path is not None:
            self._journal_path.unlink(missing_ok=True)
            self._journal_path = None
        self._lock.release()

    def put_json(self, obj) -> tuple[str, int]:
        """Store obj as canonical JSON; returns (sha256, size in bytes)."""
        data = jsonio.canonical_bytes(obj)
        sha = hashlib.sha256(data).hexdigest()
        path = blob_path(sha)
        if path.exists():
            return sha, len(data)
        try:
            self._log(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=INCOMING)
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(data)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise (scratch.storage_failure(exc, "write to the blob store") or exc) from exc
        self.created.append(path)
        return sha, len(data)

    def _log(self, path: Path) -> None:
        if self._journal is None:  # used without the context manager (a test, a script)
            return
        self._journal.write(f"{path}\n")
        self._journal.flush()
        os.fsync(self._journal.fileno())

    def put_file(self, source: Path) -> tuple[str, int]:
        """Store a file's bytes unchanged (the published form), named by their sha256;
        returns (sha256, size in bytes). Copied in chunks, never read whole; journalled like
        put_json so a killed ingestion leaves nothing behind once swept."""
        root = Path(settings.HEPSTORE_BLOB_DIR)
        digest = hashlib.sha256()
        try:
            root.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=root, prefix=INCOMING)
            size = 0
            try:
                with os.fdopen(fd, "wb") as out, open(source, "rb") as src:
                    while chunk := src.read(1 << 20):
                        digest.update(chunk)
                        out.write(chunk)
                        size += len(chunk)
                    out.flush()
                    os.fsync(out.fileno())
                sha = digest.hexdigest()
                path = blob_path(sha)
                if path.exists():
                    Path(tmp).unlink()
                    return sha, size
                self._log(path)
                path.parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise (scratch.storage_failure(exc, "write to the blob store") or exc) from exc
        self.created.append(path)
        return sha, size

    def discard(self) -> None:
        """After a failed ingestion: leave the journal to sweep, which removes what this
        writer created and nobody references, as soon as no other ingestion is writing."""
        self.created.clear()
        if self._journal is not None:
            self._journal.close()
            self._journal = None
        self._journal_path = None
        self._lock.release()
        with contextlib.suppress(Busy):
            sweep(wait=0)


def referenced_shas(candidates: set[str] | None = None) -> set[str]:
    """Names of the blobs the database has a row for (of candidates, when given)."""
    from hepstore.models import Blob

    rows = Blob.objects.all()
    if candidates is not None:
        found: set[str] = set()
        names = sorted(candidates)
        for start in range(0, len(names), 500):
            found |= set(
                rows.filter(sha256__in=names[start : start + 500]).values_list("sha256", flat=True)
            )
        return found
    return set(rows.values_list("sha256", flat=True))


def sweep(wait: float | None = 0) -> list[Path]:
    """Remove what killed or failed ingestions left: the blobs their journals list that no
    database row names, the `.incoming-*` files beside them, the journals, and abandoned
    scratch directories. Holds the storage lock exclusively; with wait=0 it does nothing
    (raises Busy) while another ingestion is writing. Returns the paths removed."""
    with scratch.exclusive_storage(wait):
        removed = sweep_locked()
    if removed:
        log.info("removed %d leftover(s) of interrupted ingestions", len(removed))
    return removed


def sweep_locked() -> list[Path]:
    """sweep's work; the caller holds the storage lock exclusively."""
    removed: list[Path] = []
    for journal in scratch.journal_paths():
        try:
            listed = [Path(line) for line in journal.read_text().split("\n") if line]
        except OSError:
            continue
        keep = referenced_shas({p.name.removesuffix(".json") for p in listed})
        folders = {Path(settings.HEPSTORE_BLOB_DIR)}  # put_file's temporary files live there
        for path in listed:
            folders.add(path.parent)
            if path.name.removesuffix(".json") not in keep and path.exists():
                path.unlink(missing_ok=True)
                removed.append(path)
        for folder in folders:
            if folder.is_dir():
                for tmp in folder.glob(f"{INCOMING}*"):
                    tmp.unlink(missing_ok=True)
                    removed.append(tmp)
        journal.unlink(missing_ok=True)
        removed.append(journal)
    for entry in scratch.stale_entries():
        scratch.remove(entry)
        removed.append(entry)
    return removed
