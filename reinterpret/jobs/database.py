"""The database-backed job queue (the default, no other service) and its worker.

A worker claims the oldest queued job: on PostgreSQL with ``SELECT ... FOR UPDATE SKIP
LOCKED`` (workers never wait on each other's rows), everywhere with a conditional UPDATE that
only one worker can win. It beats a heartbeat while it runs and stores scan results chunk by
chunk; a job whose worker died (stale heartbeat) is queued again and resumed, skipping the
points already stored. On SIGTERM a worker stops between chunks and puts its jobs back in the
queue at once.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from datetime import timedelta

from django.conf import settings
from django.db import OperationalError, close_old_connections, connection, transaction
from django.utils import timezone

from hepstore.logs import log_context
from reinterpret.errors import ReinterpretError
from reinterpret.jobs import execution
from reinterpret.models import Job, JobKind, JobState

log = logging.getLogger(__name__)


def requeue_stale(alive: str = "") -> int:
    """Put back jobs whose worker stopped beating (crashed or killed). A worker calling this
    names itself as alive: it knows its own jobs are still running, however slowly it beats
    on a loaded machine, so it never takes them from itself."""
    cutoff = timezone.now() - timedelta(seconds=settings.REINTERPRET_STALE_SECONDS)
    stale = Job.objects.filter(state=JobState.RUNNING, heartbeat__lt=cutoff)
    if alive:
        stale = stale.exclude(worker=alive)
    count = stale.update(state=JobState.QUEUED, worker="")
    if count:
        log.warning("re-queued %d job(s) whose worker stopped beating", count)
    return count


def requeue_worker(worker: str) -> int:
    """Put back the running jobs of one worker (it is shutting down)."""
    return Job.objects.filter(state=JobState.RUNNING, worker=worker).update(
        state=JobState.QUEUED, worker=""
    )


def claim(worker: str) -> Job | None:
    """The oldest queued job, now running on worker; None when the queue is empty."""
    with transaction.atomic():
        # SKIP LOCKED (PostgreSQL) passes over rows another worker is claiming; databases
        # without row locks ignore it, and the conditional update below decides.
        candidates = list(
            Job.objects.select_for_update(skip_locked=True)
            .filter(state=JobState.QUEUED)
            .order_by("created", "id")
            .values_list("pk", "attempts")[:5]
        )
        for pk, attempts in candidates:
            now = timezone.now()
            won = Job.objects.filter(pk=pk, state=JobState.QUEUED).update(
                state=JobState.RUNNING,
                worker=worker,
                started=now,
                heartbeat=now,
                attempts=attempts + 1,
            )
            if won:
                return Job.objects.select_related("likelihood").get(pk=pk)
    return None


def run(job: Job, worker: str, stop: threading.Event | None = None) -> None:
    """Execute a claimed job to a terminal state (or leave it queued when stop is set)."""
    with log_context(job=job.pk, worker=worker):
        try:
            if job.kind == JobKind.SCAN:
                result = _run_scan(job, worker, stop)
            else:
                result = execution.run_whole(job)
        except ReinterpretError as exc:
            execution.finish(job, JobState.FAILED, error=exc.message, worker=worker)
            return
        except Exception as exc:  # a worker must survive any single job; the error is recorded
            log.exception("job %s failed", job.pk)
            execution.finish(job, JobState.FAILED, error=f"internal error: {exc!r}", worker=worker)
            return
        if result is _INTERRUPTED:
            Job.objects.filter(pk=job.pk, state=JobState.RUNNING, worker=worker).update(
                state=JobState.QUEUED, worker=""
            )
        elif result is None:
            execution.finish(job, JobState.CANCELLED, worker=worker)
        else:
            execution.finish(job, JobState.SUCCEEDED, result=result, worker=worker)


_INTERRUPTED = object()


def _run_scan(job: Job, worker: str, stop: threading.Event | None):
    plan = execution.plan_scan(job)
    Job.objects.filter(pk=job.pk).update(progress_total=len(plan.names))
    for names in plan.chunks:
        if stop is not None and stop.is_set():
            return _INTERRUPTED
        if execution.cancel_requested(job):
            return None
        job.beat()
        execution.run_chunk(job, names, worker)
    if execution.cancel_requested(job):
        return None
    return execution.assemble_scan(job)


class Worker:
    """Runs jobs in threads; at most REINTERPRET_MAX_CONCURRENT_FITS at once."""

    def __init__(self, name: str | None = None, poll: float = 0.5):
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.poll = poll
        self.stop = threading.Event()
        self.slots = threading.Semaphore(settings.REINTERPRET_MAX_CONCURRENT_FITS)
        self.thread: threading.Thread | None = None

    def shutdown(self, timeout: float = 30.0) -> None:
        """Stop (running jobs go back to the queue) and wait for the worker's thread."""
        self.stop.set()
        if self.thread is not None:
            self.thread.join(timeout)

    def run_forever(self) -> None:
        """Claim and run jobs until stop is set; then put the running ones back in the queue."""
        log.info("job worker %s started", self.name)
        while not self.stop.is_set():
            close_old_connections()
            try:
                requeue_stale(alive=self.name)
            except OperationalError as exc:
                # A locked or briefly unreachable database: try again at the next poll.
                log.warning("job worker %s could not re-queue stale jobs: %s", self.name, exc)
                self.stop.wait(self.poll)
                continue
            if not self.slots.acquire(timeout=self.poll):
                continue
            try:
                job = claim(self.name)
            except OperationalError as exc:
                log.warning("job worker %s could not claim a job: %s", self.name, exc)
                job = None
            if job is None:
                self.slots.release()
                self.stop.wait(self.poll)
                continue
            threading.Thread(target=self._run_one, args=(job,), daemon=True).start()
        count = requeue_worker(self.name)
        log.info("job worker %s stopped; %d running job(s) re-queued", self.name, count)
        connection.close()

    def _run_one(self, job: Job) -> None:
        beating = threading.Event()

        # Several beats within the stale threshold, so a slow chunk is never taken for dead.
        interval = max(0.5, min(10.0, settings.REINTERPRET_STALE_SECONDS / 4))

        def beat():
            try:
                while not beating.wait(interval):
                    try:
                        job.beat()
                    except OperationalError as exc:  # e.g. SQLite busy: beat again next time
                        log.warning("job %s: heartbeat not written (%s)", job.pk, exc)
            finally:
                connection.close()  # this thread's own connection ends with it

        threading.Thread(target=beat, daemon=True).start()
        try:
            run(job, self.name, self.stop)
        finally:
            beating.set()
            connection.close()  # this thread's own connection ends with it
            self.slots.release()

    def run_until_idle(self, timeout: float = 600.0) -> None:
        """Process jobs in this thread until none is queued (tests and one-shot use)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.stop.is_set():
            requeue_stale(alive=self.name)
            job = claim(self.name)
            if job is None:
                return
            run(job, self.name, self.stop)


def start_embedded_worker() -> Worker:
    worker = Worker()
    worker.thread = threading.Thread(target=worker.run_forever, name="job-worker", daemon=True)
    worker.thread.start()
    return worker
