"""Content-Security-Policy on every page and served SVG image.

Settings: CONTENT_SECURITY_POLICY (HTML and everything else) and CONTENT_SECURITY_POLICY_SVG
(image/svg+xml, which can carry scripts of its own when opened directly). A view that sets
the header itself keeps it."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if "Content-Security-Policy" not in response:
            kind = response.get("Content-Type", "").split(";")[0].strip().lower()
            policy = (
                settings.CONTENT_SECURITY_POLICY_SVG
                if kind == "image/svg+xml"
                else settings.CONTENT_SECURITY_POLICY
            )
            response["Content-Security-Policy"] = policy
        return response
