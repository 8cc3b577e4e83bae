"""Jobs: submitted here, run by one of two backends behind the same small interface.

- `database` (default, no other service): the job row is the queue; `manage.py worker` or the
  worker embedded in `manage.py serve` claims and runs it.
- `celery` (when REDIS_URL is set): the job is sent to Celery workers (`celery -A hepstore
  worker`); a scan is planned here and fanned out as chunks of points over all workers.

The API and pages only call `submit`, `cancel`, `look_after` and `workers_of`; what a job does is in
`execution`, the same for both backends.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from reinterpret.errors import TooBusy
from reinterpret.jobs.database import Worker, start_embedded_worker
from reinterpret.jobs.execution import workers_of
from reinterpret.models import Job, JobState

__all__ = [
    "Worker",
    "cancel",
    "enqueue_index",
    "look_after",
    "start_embedded_worker",
    "submit",
    "uses_celery",
    "workers_of",
]

log = logging.getLogger(__name__)


def uses_celery() -> bool:
    return bool(settings.REDIS_URL)


def submit(
    likelihood, kind: str, params: dict, owner=None, client: str = "", combination=None
) -> Job:
    """Queue a job (on a likelihood, or on a combination) owned by owner (a user), or when
    None by the bearer of a new secret token (set on the returned job as .token, shown once).
    Refused (429) when the client already has REINTERPRET_MAX_QUEUED_PER_CLIENT jobs pending
    or the whole queue is full."""
    if client:
        mine = Job.objects.pending().filter(client=client).count()
        if mine >= settings.REINTERPRET_MAX_QUEUED_PER_CLIENT:
            raise TooBusy(
                f"you have {mine} jobs queued or running (the limit per client); "
                "wait for one to finish or cancel one",
                retry_after=settings.REINTERPRET_RETRY_AFTER_SECONDS,
            )
    queued = Job.objects.pending().count()
    if queued >= settings.REINTERPRET_MAX_QUEUED_JOBS:
        raise TooBusy(
            f"{queued} jobs are queued or running; try again later",
            retry_after=settings.REINTERPRET_RETRY_AFTER_SECONDS,
        )
    job = Job(
        kind=kind,
        likelihood=likelihood,
        combination=combination,
        params=params,
        owner=owner,
        client=client,
    )
    job.token = None if owner is not None else job.issue_token()
    job.save()
    if uses_celery():
        from reinterpret.jobs import celery as celery_backend

        # After the commit, so a worker never looks for a job row that is not there yet.
        transaction.on_commit(lambda: celery_backend.enqueue(job))
    return job


def cancel(job: Job) -> Job:
    """A queued job is cancelled at once; a running one between two chunks of its work."""
    with transaction.atomic():
        updated = Job.objects.filter(pk=job.pk, state=JobState.QUEUED).update(
            state=JobState.CANCELLED, finished=timezone.now()
        )
        if not updated:
            Job.objects.filter(pk=job.pk, state=JobState.RUNNING).update(cancel_requested=True)
    job.refresh_from_db()
    return job


def look_after(job: Job) -> None:
    """Called when a job is looked at: on Celery, a scan stalled by a lost message has its
    missing chunks sent again, and a queued job whose messages are gone is sent again (see
    celery.resend_stalled); the database queue needs nothing (its workers re-queue jobs
    whose worker stopped beating)."""
    if not uses_celery() or job.state not in (JobState.QUEUED, JobState.RUNNING):
        return
    from kombu.exceptions import OperationalError
    from redis import RedisError

    from reinterpret.jobs import celery as celery_backend

    try:
        celery_backend.resend_stalled(job)
    except (OperationalError, RedisError) as exc:
        log.warning("job %s: lost messages not sent again, the queue is unreachable: %s",
                    job.pk, exc)  # fmt: skip


def enqueue_index(version_pk: int) -> bool:
    """Index an ingested version on the queue (Celery); False when there is no such queue
    and the caller should index in-process."""
    if not uses_celery():
        return False
    from kombu.exceptions import OperationalError

    from reinterpret.jobs import celery as celery_backend

    try:
        celery_backend.index_version.delay(version_pk)
    except OperationalError as exc:
        log.warning("queue unreachable (%s); indexing version %s here", exc, version_pk)
        return False
    return True
