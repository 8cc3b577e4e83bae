"""The Celery backend (when REDIS_URL is set): jobs run on `celery -A hepstore worker`.

A scan is planned in the web request (`enqueue`) and sent as one task per chunk of points, so
every worker process takes chunks; each chunk stores its points (idempotently) and the chunk
that finds all points stored sends the final `assemble` task (table in request order and
contour). Messages are acknowledged late: a chunk whose worker died is delivered again (at
once when a pool process dies, after the visibility timeout when a whole worker does) and
skips the points already stored. A cancelled or finished job makes its remaining chunks no-ops.
"""

from __future__ import annotations

import logging

from hepstore.celery import app
from hepstore.logs import log_context
from reinterpret.errors import ReinterpretError
from reinterpret.jobs import execution
from reinterpret.models import Job, JobKind, JobState

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
