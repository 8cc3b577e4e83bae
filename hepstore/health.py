"""GET /healthz: is each part the portal needs working? 200, or 503 naming what failed.

Parts: the database (a query), the job queue (the Redis broker when REDIS_URL is set, else the
database queue's table) and the blob store (a file written and removed). A failure is reported
by the part's name and the exception's type only: messages can carry addresses or credentials.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

log = logging.getLogger(__name__)


def check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def check_queue() -> str:
    if settings.REDIS_URL:
        import redis

        client = redis.Redis.from_url(
            settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2
        )
        try:
            client.ping()
        finally:
            client.close()
        return "celery"
    from reinterpret.models import Job

    Job.objects.filter(state="queued").exists()
    return "database"


def check_blobs() -> None:
    root = Path(settings.HEPSTORE_BLOB_DIR)
    root.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=root, prefix=".healthz-")
    os.close(fd)
    os.unlink(name)


CHECKS: dict[str, Callable[[], object]] = {
    "database": check_database,
    "queue": check_queue,
    "blobs": check_blobs,
}


def run_checks() -> dict[str, dict]:
    results: dict[str, dict] = {}
    for name, check in CHECKS.items():
        try:
            detail = check()
        except Exception as exc:  # any failure of a part is the answer, not an error page
            log.warning("health check %s failed: %s", name, type(exc).__name__)
            results[name] = {"ok": False, "error": type(exc).__name__}
        else:
            results[name] = {"ok": True, **({"backend": detail} if detail else {})}
    return results


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    checks = run_checks()
    failed = [name for name, result in checks.items() if not result["ok"]]
    body = {"status": "unavailable" if failed else "ok", "failed": failed, "checks": checks}
    return JsonResponse(body, status=503 if failed else 200)
