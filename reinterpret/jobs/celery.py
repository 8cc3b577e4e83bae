"""The Celery backend (when REDIS_URL is set): jobs run on `celery -A hepstore worker`.

A scan is planned in the web request (`enqueue`) and sent as one task per chunk of points, so
every worker process takes chunks; each chunk stores its points (idempotently) and the chunk
that finds all points stored sends the final `assemble` task (table in request order and
contour). Messages are acknowledged late: a chunk whose worker died is delivered again (at
once when a pool process dies, after the visibility timeout when a whole worker does) and
skips the points already stored. A cancelled or finished job makes its remaining chunks no-ops.

Redis's transport has one gap: a worker killed between taking a message from the queue and
recording it as unacknowledged loses that message, and its job would wait forever (as would
every queued job after a Redis restart without persistence). So when someone looks at a job
(`resend_stalled`, from the job API that the job page polls), a scan that has stored nothing
for longer than redelivery takes (`stall_seconds`) has the chunks of its missing points sent
again, and a job queued that long with no message on the broker is sent again.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from hepstore.celery import app
from hepstore.logs import log_context
from reinterpret.errors import ReinterpretError
from reinterpret.jobs import execution
from reinterpret.models import Job, JobKind, JobState, ScanPointResult

log = logging.getLogger(__name__)


def enqueue(job: Job) -> None:
    """Send a committed job to the workers (a scan as its chunks); a job that cannot be sent
    (broker unreachable) fails with that reason instead of waiting forever."""
    from kombu.exceptions import OperationalError

    try:
        _send(job)
    except OperationalError as exc:
        log.error("job %s not sent, the queue is unreachable: %s", job.pk, exc)
        Job.objects.filter(pk=job.pk, state=JobState.QUEUED).update(
            state=JobState.FAILED, error="the job queue is unreachable; try again later"
        )


def _send(job: Job) -> None:
    if job.kind != JobKind.SCAN:
        run_custom.delay(job.pk)
        return
    plan = execution.plan_scan(job)
    Job.objects.filter(pk=job.pk).update(progress_total=len(plan.names))
    if not plan.chunks:
        assemble.delay(job.pk)
        return
    for names in plan.chunks:
        scan_chunk.delay(job.pk, names)
    log.info("job %s: %d points sent as %d chunks", job.pk, len(plan.names), len(plan.chunks))


def stall_seconds() -> int:
    """How long a running scan may store nothing, or a job stay queued, before its lost
    messages are sent again: the visibility timeout and three restore sweeps (by then any
    chunk a dead worker held is back on the queue, and has been taken again by any idle
    worker)."""
    sweep = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("unacked_restore_interval", 60)
    return settings.CELERY_VISIBILITY_TIMEOUT + 3 * sweep


def resend_stalled(job: Job) -> int:
    """Send again the chunks of a running scan's missing points (or its assembly, when every
    point is stored) once it has stored nothing for stall_seconds; and a job queued that long
    whose messages are gone from the broker (_resend_lost). Returns the messages sent. Only
    one caller wins (the heartbeat is moved on in the same conditional update); a chunk sent
    twice skips the points already stored."""
    now = timezone.now()
    cutoff = now - timedelta(seconds=stall_seconds())
    if job.state == JobState.QUEUED:
        return _resend_lost(job, now, cutoff)
    if job.kind != JobKind.SCAN or job.state != JobState.RUNNING:
        return 0
    if not Job.objects.filter(pk=job.pk, state=JobState.RUNNING, heartbeat__lt=cutoff).update(
        heartbeat=now
    ):
        return 0
    plan = execution.plan_scan(job)
    stored = set(ScanPointResult.objects.filter(job=job).values_list("name", flat=True))
    missing = [n for n in plan.names if n not in stored]
    if not missing:
        assemble.delay(job.pk)
        log.warning("job %s: every point stored but not assembled; assembly sent again", job.pk)
        return 1
    size = max(len(c) for c in plan.chunks)
    chunks = [missing[i : i + size] for i in range(0, len(missing), size)]
    for names in chunks:
        scan_chunk.delay(job.pk, names)
    log.warning(
        "job %s: nothing stored for %d s; %d missing points sent again as %d chunks",
        job.pk,
        stall_seconds(),
        len(missing),
        len(chunks),
    )
    return len(chunks)


# The tasks whose first argument is a job's id.
JOB_TASKS = ("reinterpret.scan_chunk", "reinterpret.assemble_scan", "reinterpret.run_custom")


def _resend_lost(job: Job, now, cutoff) -> int:
    """A job queued for stall_seconds with no message on the broker for it (none waiting on
    the queue, none taken and unacknowledged) lost them (a Redis restart without
    persistence, a worker killed between taking a message and recording it): it is sent
    again. Checked at most once per stall_seconds per job (its heartbeat marks the check)."""
    if job.created >= cutoff:
        return 0
    unchecked = Q(heartbeat__isnull=True) | Q(heartbeat__lt=cutoff)
    claimed = Job.objects.filter(unchecked, pk=job.pk, state=JobState.QUEUED).update(heartbeat=now)
    if not claimed or _on_broker(job.pk):
        return 0
    log.warning("job %s: queued for %d s with no message on the broker; sent again", job.pk,
                stall_seconds())  # fmt: skip
    _send(job)
    return 1


def _on_broker(job_id: int) -> bool:
    """Whether a message of the job waits on the queue or is held unacknowledged (kombu's
    Redis layout: the queue is a list of JSON messages, the unacknowledged ones a hash of
    [message, exchange, routing key]; the task and its arguments' repr are in the headers)."""
    import redis

    options = settings.CELERY_BROKER_TRANSPORT_OPTIONS
    prefix = options.get("global_keyprefix", "")
    client = redis.Redis.from_url(
        settings.REDIS_URL,
        socket_timeout=options.get("socket_timeout", 30),
        socket_connect_timeout=options.get("socket_connect_timeout", 5),
    )
    queue = prefix + settings.CELERY_TASK_DEFAULT_QUEUE
    raws = [(raw, False) for raw in client.lrange(queue, 0, -1)]
    for key in client.scan_iter(match=queue + "\x06\x16*"):  # priority queues, if any
        raws += [(raw, False) for raw in client.lrange(key, 0, -1)]
    raws += [(raw, True) for raw in client.hvals(prefix + "unacked")]
    mine = f"({job_id},"
    for raw, unacked in raws:
        try:
            message = json.loads(raw)[0] if unacked else json.loads(raw)
            headers = message.get("headers") or {}
            task, args = headers.get("task"), str(headers.get("argsrepr", ""))
        except (ValueError, TypeError, KeyError, IndexError, AttributeError):
            return True  # a message it cannot read might be the job's: send nothing
        if task in JOB_TASKS and args.startswith(mine):
            return True
    return False


def _fail(job: Job, exc: Exception) -> None:
    if isinstance(exc, ReinterpretError):
        execution.finish(job, JobState.FAILED, error=exc.message)
    else:
        log.exception("job %s failed", job.pk)
        execution.finish(job, JobState.FAILED, error=f"internal error: {exc!r}")


def _cancelled(job: Job) -> bool:
    if execution.cancel_requested(job):
        execution.finish(job, JobState.CANCELLED)
        return True
    return False


@app.task(name="reinterpret.scan_chunk", bind=True)
def scan_chunk(self, job_id: int, names: list[str]) -> None:
    worker = self.request.hostname or "celery"
    with log_context(job=job_id, worker=worker):
        job = execution.start(job_id, worker)
        if job is None or _cancelled(job):
            return
        try:
            execution.run_chunk(job, names, worker)
        except Exception as exc:  # the job records the failure; the message is done with
            _fail(job, exc)
            return
        if execution.all_points_stored(job):
            assemble.delay(job_id)


@app.task(name="reinterpret.assemble_scan", bind=True)
def assemble(self, job_id: int) -> None:
    worker = self.request.hostname or "celery"
    with log_context(job=job_id, worker=worker):
        job = execution.start(job_id, worker)
        if job is None or _cancelled(job):
            return
        try:
            result = execution.assemble_scan(job)
        except Exception as exc:
            _fail(job, exc)
            return
        # Sent twice when two last chunks finish together: the first to finish wins.
        execution.finish(job, JobState.SUCCEEDED, result=result)


@app.task(name="reinterpret.run_custom", bind=True)
def run_custom(self, job_id: int) -> None:
    """A job run whole by one worker: a custom signal, or a combination's job."""
    worker = self.request.hostname or "celery"
    with log_context(job=job_id, worker=worker):
        job = execution.start(job_id, worker)
        if job is None or _cancelled(job):
            return
        try:
            result = execution.run_whole(job)
        except Exception as exc:
            _fail(job, exc)
            return
        if result is None:
            execution.finish(job, JobState.CANCELLED)
        else:
            execution.finish(job, JobState.SUCCEEDED, result=result)


@app.task(name="hepstore.index_version")
def index_version(version_pk: int) -> None:
    """Search indexing of an ingested version (sent after the ingestion commits), with any
    other version still marked for indexing; the mark is cleared once each is indexed."""
    from hepstore.services import index_pending

    index_pending()
