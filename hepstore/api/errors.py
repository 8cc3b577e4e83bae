"""One error envelope for the whole API: {"error": {"code", "message", "problems": [...]}}."""

from __future__ import annotations

import logging
import math

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from hepstore.errors import HepstoreError

log = logging.getLogger(__name__)


def error_response(
    code: str, message: str, problems=None, http_status: int = 400, headers=None
) -> Response:
    return Response(
        {"error": {"code": code, "message": message, "problems": problems or []}},
        status=http_status,
        headers=headers,
    )


def exception_handler(exc, context):
    if isinstance(exc, HepstoreError):
        headers = None
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            headers = {"Retry-After": str(max(1, math.ceil(retry_after)))}
        return error_response(exc.code, exc.message, exc.problems, exc.status, headers)
    if isinstance(exc, Http404):
        return error_response("not_found", str(exc) or "Not found.", http_status=404)
    if isinstance(exc, RequestDataTooBig):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        return error_response(
            "too_large",
            f"the request body is larger than the limit of {limit} bytes",
            http_status=413,
        )
    response = drf_exception_handler(exc, context)
    if response is None:
        log.exception("unhandled error in API view", exc_info=exc)
        return error_response(
            "server_error", "Internal error; it has been logged.", http_status=500
        )
    if isinstance(exc, exceptions.ValidationError):
        problems = _flatten(exc.detail)
        fields = sorted({p["pointer"].split("/")[1] for p in problems if p["pointer"] != "/"})
        message = "The request is not valid"
        message += f" ({', '.join(fields)})." if fields else "."
        return error_response("invalid_request", message, problems, response.status_code)
    detail = exc.detail if isinstance(exc, exceptions.APIException) else str(exc)
    code = getattr(exc, "default_code", "error")
    if response.status_code == status.HTTP_429_TOO_MANY_REQUESTS:
        code = "throttled"
    response.data = {"error": {"code": code, "message": str(detail), "problems": []}}
    return response


def _flatten(detail, pointer: str = "") -> list[dict]:
    if isinstance(detail, dict):
        out = []
        for key, value in detail.items():
            out += _flatten(value, f"{pointer}/{key}")
        return out
    if isinstance(detail, list):
        if all(not isinstance(d, dict | list) for d in detail):
            return [
                {"pointer": pointer or "/", "severity": "error", "message": str(d)} for d in detail
            ]
        out = []
        for i, value in enumerate(detail):
            out += _flatten(value, f"{pointer}/{i}")
        return out
    return [{"pointer": pointer or "/", "severity": "error", "message": str(detail)}]
