"""The database-backed job queue and its worker.

A worker claims a queued job with a conditional UPDATE (only one worker can win), beats a
heartbeat while it runs, and writes scan results point by point. A job whose worker died (its
heartbeat is stale) is put back in the queue and re-run; a scan then skips the points that
were already written, so none is lost or computed twice.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from datetime import timedelta

from django.conf import settings
from django.db import close_old_connections, transaction
from django.utils import timezone

from reinterpret import services
from reinterpret.errors import ReinterpretError, TooBusy
from reinterpret.models import Job, JobKind, JobState, ScanPointResult

log = logging.getLogger(__name__)


def submit(likelihood, kind: str, params: dict) -> Job:
    """Queue a job, or refuse (429) when the queue is full."""
    queued = Job.objects.filter(state__in=[JobState.QUEUED, JobState.RUNNING]).count()
    if queued >= settings.REINTERPRET_MAX_QUEUED_JOBS:
        raise TooBusy(f"{queued} jobs are queued or running; try again later")
    return Job.objects.create(kind=kind, likelihood=likelihood, params=params)


def cancel(job: Job) -> Job:
    with transaction.atomic():
        updated = Job.objects.filter(pk=job.pk, state=JobState.QUEUED).update(
            state=JobState.CANCELLED, finished=timezone.now()
        )
        if not updated:
            Job.objects.filter(pk=job.pk, state=JobState.RUNNING).update(cancel_requested=True)
    job.refresh_from_db()
    return job


def requeue_stale() -> int:
    """Put back jobs whose worker stopped beating (crashed or killed)."""
    cutoff = timezone.now() - timedelta(seconds=settings.REINTERPRET_STALE_SECONDS)
    return Job.objects.filter(state=JobState.RUNNING, heartbeat__lt=cutoff).update(
        state=JobState.QUEUED, worker=""
    )


def claim(worker: str) -> Job | None:
    for job in Job.objects.filter(state=JobState.QUEUED).order_by("created", "id")[:5]:
        won = Job.objects.filter(pk=job.pk, state=JobState.QUEUED).update(
            state=JobState.RUNNING,
            worker=worker,
            started=timezone.now(),
            heartbeat=timezone.now(),
            attempts=job.attempts + 1,
        )
        if won:
            job.refresh_from_db()
            return job
    return None


def run(job: Job) -> None:
    """Execute a claimed job to a terminal state."""
    try:
        result = _run_scan(job) if job.kind == JobKind.SCAN else _run_custom(job)
    except ReinterpretError as exc:
        _finish(job, JobState.FAILED, error=exc.message)
        return
    except Exception as exc:  # a worker must survive any single job; the error is recorded
        log.exception("job %s failed", job.pk)
        _finish(job, JobState.FAILED, error=f"internal error: {exc!r}")
        return
    if result is None:
        _finish(job, JobState.CANCELLED)
    else:
        _finish(job, JobState.SUCCEEDED, result=result)


def _finish(job: Job, state: str, result=None, error: str = "") -> None:
    Job.objects.filter(pk=job.pk, state=JobState.RUNNING).update(
        state=state, result=result, error=error, finished=timezone.now()
    )


def _cancelled(job: Job) -> bool:
    return Job.objects.filter(pk=job.pk, cancel_requested=True).exists()


def _run_custom(job: Job) -> dict:
    Job.objects.filter(pk=job.pk).update(progress_total=1)
    result, _ = services.cached_evaluation(job.likelihood, job.params["patch"], "custom")
    Job.objects.filter(pk=job.pk).update(progress_done=1)
    return result


def _run_scan(job: Job) -> dict | None:
    from hepstore.services import likelihood_documents
    from reinterpret import contours

    likelihood = job.likelihood
    bkg, ps = likelihood_documents(likelihood)
    wanted = contours.select_points(ps["patches"], likelihood.labels, job.params)
    done = set(ScanPointResult.objects.filter(job=job).values_list("name", flat=True))
    Job.objects.filter(pk=job.pk).update(progress_total=len(wanted), progress_done=len(done))
    todo = [n for n in wanted if n not in done]
    settings_ = services.service_settings(upper_limit=job.params.get("upper_limit", False))
    chunk = settings.REINTERPRET_SCAN_CHUNK
    for start in range(0, len(todo), chunk):
        if _cancelled(job):
            return None
        job.beat()
        points = services.patch_points(bkg, ps, todo[start : start + chunk])
        results = services.evaluate(points, settings_)
        with transaction.atomic():
            ScanPointResult.objects.bulk_create(
                [ScanPointResult(job=job, name=r["patch"], result=r) for r in results],
                ignore_conflicts=True,
            )
            count = ScanPointResult.objects.filter(job=job).count()
            Job.objects.filter(pk=job.pk).update(progress_done=count, heartbeat=timezone.now())
    by_name = {p.name: p.result for p in ScanPointResult.objects.filter(job=job)}
    table = [by_name[n] for n in wanted if n in by_name]
    labels = likelihood.labels
    out = {"points": table, "labels": labels, "settings": settings_.as_dict()}
    contour = contours.scan_view(table, labels, job.params)
    if contour is not None:
        out["contour"] = contour
    return out


class Worker:
    """Runs jobs in threads; at most REINTERPRET_MAX_CONCURRENT_FITS at once."""

    def __init__(self, name: str | None = None, poll: float = 0.5):
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.poll = poll
        self.stop = threading.Event()
        self.slots = threading.Semaphore(settings.REINTERPRET_MAX_CONCURRENT_FITS)

    def run_forever(self) -> None:
        log.info("job worker %s started", self.name)
        while not self.stop.is_set():
            close_old_connections()
            requeue_stale()
            if not self.slots.acquire(timeout=self.poll):
                continue
            job = claim(self.name)
            if job is None:
                self.slots.release()
                self.stop.wait(self.poll)
                continue
            threading.Thread(target=self._run_one, args=(job,), daemon=True).start()

    def _run_one(self, job: Job) -> None:
        beating = threading.Event()

        def beat():
            while not beating.wait(10):
                job.beat()

        threading.Thread(target=beat, daemon=True).start()
        try:
            run(job)
        finally:
            beating.set()
            close_old_connections()
            self.slots.release()

    def run_until_idle(self, timeout: float = 600.0) -> None:
        """Process jobs in this thread until none is queued (tests and one-shot use)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            requeue_stale()
            job = claim(self.name)
            if job is None:
                return
            run(job)


def start_embedded_worker() -> Worker:
    worker = Worker()
    threading.Thread(target=worker.run_forever, name="job-worker", daemon=True).start()
    return worker
