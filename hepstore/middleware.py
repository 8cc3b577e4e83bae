"""Pages answer a user's mistake with a plain error page, never a 500.

Page views raise the apps' exceptions (HepstoreError and its subclasses: not found, bad
query, unusable input, ...) like services do; this middleware renders them with their status
and message. API views never get here: DRF's exception handler answers those in the JSON
envelope (hepstore.api.errors).
"""

from __future__ import annotations

import logging

from django.shortcuts import render

from hepstore.errors import HepstoreError

log = logging.getLogger(__name__)


class UserErrorPageMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not isinstance(exception, HepstoreError):
            return None
        log.info("%s %s: %s", request.method, request.path, exception.message)
        return render(
            request,
            "error.html",
            {"status": exception.status, "message": exception.message},
            status=exception.status,
        )
