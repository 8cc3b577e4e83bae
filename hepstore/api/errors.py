"""One error envelope for the whole API: {"error": {"code", "message", "problems": [...]}}."""

from __future__ import annotations

import logging

from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from hepstore.errors import HepstoreError

log = logging.getLogger(__name__)


def error_response(code: str, message: str, problems=None, http_status: int = 400) -> Response:
    return Response(
        {"error": {"code": code, "message": message, "problems": problems or []}},
        status=http_status,
    )


def exception_handler(exc, context):
    if isinstance(exc, HepstoreError):
        response = error_response(exc.code, exc.message, exc.problems, exc.status)
        if getattr(exc, "retry_after", None):
            response["Retry-After"] = str(exc.retry_after)
        return response
    if isinstance(exc, Http404):
        return error_response("not_found", str(exc) or "Not found.", http_status=404)
    response = drf_exception_handler(exc, context)
    if response is None:
        log.exception("unhandled error in API view", exc_info=exc)
        return error_response(
            "server_error", "Internal error; it has been logged.", http_status=500
        )
    if isinstance(exc, exceptions.ValidationError):
        problems = _flatten(exc.detail)
        return error_response(
            "invalid_request", "The request is not valid.", problems, response.status_code
        )
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
