"""Content-addressed blob storage: documents stored once under the sha256 of their bytes,
in canonical JSON (put_json) or as they were published (put_file).

Layout: <HEPSTORE_BLOB_DIR>/<aa>/<bb>/<sha256>.json. Files are written to a temporary name
and renamed, so a reader never sees a partial file. A BlobWriter remembers the files it
created, so a failed ingestion can remove exactly those and nothing else.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from django.conf import settings

from hepstore import jsonio


def blob_path(sha256: str) -> Path:
    return Path(settings.HEPSTORE_BLOB_DIR) / sha256[:2] / sha256[2:4] / f"{sha256}.json"


def read_bytes(sha256: str) -> bytes:
    return blob_path(sha256).read_bytes()


def read_json(sha256: str):
    return jsonio.loads(read_bytes(sha256))


class BlobWriter:
    def __init__(self) -> None:
        self.created: list[Path] = []

    def put_json(self, obj) -> tuple[str, int]:
        """Store obj as canonical JSON; returns (sha256, size in bytes)."""
        data = jsonio.canonical_bytes(obj)
        sha = jsonio.hashlib.sha256(data).hexdigest()
        path = blob_path(sha)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".incoming-")
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(data)
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            self.created.append(path)
        return sha, len(data)

    def put_file(self, source: Path) -> tuple[str, int]:
        """Store a file's bytes unchanged (the published form), named by their sha256;
        returns (sha256, size in bytes). Copied in chunks, never read whole."""
        digest = jsonio.hashlib.sha256()
        root = Path(settings.HEPSTORE_BLOB_DIR)
        root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=root, prefix=".incoming-")
        size = 0
        try:
            with os.fdopen(fd, "wb") as out, open(source, "rb") as src:
                while chunk := src.read(1 << 20):
                    digest.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
            sha = digest.hexdigest()
            path = blob_path(sha)
            if path.exists():
                Path(tmp).unlink()
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp, path)
                self.created.append(path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return sha, size

    def discard(self) -> None:
        """Remove the files this writer created (after a failed ingestion)."""
        for path in self.created:
            path.unlink(missing_ok=True)
        self.created.clear()
