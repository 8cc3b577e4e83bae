"""Request rates of the expensive endpoints (DRF scoped throttles).

A view names its scope (throttle_scope = "validate" | "reinterpret" | "scan" |
"submissions"), and optionally the methods it applies to (throttled_methods = ("POST",)
where the same path also lists); anonymous clients (counted by address) and authenticated
users (counted per user) have separate rates, HEPSTORE_THROTTLE_RATES["<scope>_anon" |
"<scope>_user"], read from the environment in settings. A refused request gets 429 with
Retry-After (seconds). Counters live in Django's cache, which every process of the portal
shares (Redis with REDIS_URL, else files in the data directory; see settings.CACHES).
"""

from __future__ import annotations

from django.conf import settings
from rest_framework.throttling import ScopedRateThrottle


def client_ident(request) -> str:
    """Who is asking, for throttles and per-client caps: the user, else the address."""
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return f"user:{user.pk}"
    return f"addr:{ScopedRateThrottle().get_ident(request)}"


class ScopedClientThrottle(ScopedRateThrottle):
    def allow_request(self, request, view) -> bool:
        scope = getattr(view, self.scope_attr, None)
        if not scope or request.method not in getattr(view, "throttled_methods", (request.method,)):
            return True
        kind = "user" if request.user and request.user.is_authenticated else "anon"
        self.scope = f"{scope}_{kind}"
        self.rate = settings.HEPSTORE_THROTTLE_RATES.get(self.scope)
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super(ScopedRateThrottle, self).allow_request(request, view)


def page_throttled(request, scope: str) -> float | None:
    """For HTML pages doing what a throttled API view does: None when the request may go
    ahead, else the seconds to wait (the same counters as the API's)."""
    from types import SimpleNamespace

    throttle = ScopedClientThrottle()
    if throttle.allow_request(request, SimpleNamespace(throttle_scope=scope)):
        return None
    return throttle.wait() or 1.0
