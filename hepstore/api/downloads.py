"""Downloads of immutable content: the sha256 of the bytes is the header X-Content-SHA256 and
the strong ETag; a matching If-None-Match gets 304 and no body; caches may keep it a year."""

from __future__ import annotations

import hashlib

from django.http import FileResponse, HttpResponse, HttpResponseNotModified

from hepstore import blobs

IMMUTABLE = "public, max-age=31536000, immutable"


def _matches(request, etag: str) -> bool:
    header = request.headers.get("If-None-Match", "")
    if not header:
        return False
    if header.strip() == "*":
        return True
    # If-None-Match compares weakly (RFC 9110 13.1.2): a W/ prefix still matches.
    tags = {t.strip().removeprefix("W/") for t in header.split(",")}
    return etag in tags


def _finish(response, sha256: str, filename: str, headers: dict) -> HttpResponse:
    response["X-Content-SHA256"] = sha256
    response["ETag"] = f'"{sha256}"'
    response["Cache-Control"] = IMMUTABLE
    if filename:
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
    for key, value in headers.items():
        response[key] = value
    return response


def _not_modified(sha256: str, headers: dict) -> HttpResponse:
    response = HttpResponseNotModified()
    return _finish(response, sha256, "", headers)


def bytes_download(
    request, data: bytes, filename: str, content_type="application/json", **headers
) -> HttpResponse:
    """Bytes made on request (deterministically): hashed here."""
    sha = hashlib.sha256(data).hexdigest()
    if _matches(request, f'"{sha}"'):
        return _not_modified(sha, headers)
    return _finish(HttpResponse(data, content_type=content_type), sha, filename, headers)


def blob_download(request, sha256: str, filename: str, **headers) -> HttpResponse:
    """A stored blob, streamed from disk; its name is the sha256 of its bytes."""
    if _matches(request, f'"{sha256}"'):
        return _not_modified(sha256, headers)
    response = FileResponse(blobs.blob_path(sha256).open("rb"), content_type="application/json")
    return _finish(response, sha256, filename, headers)
