"""The job package in-process: planning a scan into chunks, idempotent chunks, the Celery
tasks' logic (run eagerly, no broker), cancel between chunks, claiming on PostgreSQL."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from hepstore.services import Publication, ingest_paths
from reinterpret import jobs
from reinterpret.jobs import execution
from reinterpret.jobs.database import Worker, claim
from reinterpret.models import Job, JobKind, JobState, ScanPointResult

pytestmark = pytest.mark.django_db


@pytest.fixture
def likelihood(bundle):
    root, _, _ = bundle
    _, version = ingest_paths([root], Publication(title="Example", collaboration="ATLAS"))
    return version.likelihoods.get()


@pytest.fixture
def eager_celery(settings):
    """Celery tasks run in this process when sent (no broker), as if REDIS_URL were set."""
    from hepstore.celery import app

    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    app.conf.task_always_eager = True
    yield app
    app.conf.task_always_eager = False


def test_a_scan_is_planned_in_request_order_in_chunks_the_memory_budget_allows(
    likelihood, settings
):
    job = Job.objects.create(kind=JobKind.SCAN, likelihood=likelihood, params={})
    settings.REINTERPRET_SCAN_CHUNK = 5
    plan = execution.plan_scan(job)
    grid = list(likelihood.signals.order_by("index").values_list("name", flat=True))
    assert plan.names == grid and [len(c) for c in plan.chunks] == [5, 5, 5, 3]
    assert sum(plan.chunks, []) == grid
    # A budget that holds fewer points than REINTERPRET_SCAN_CHUNK makes the chunks smaller.
    summary = likelihood.summary
    per_point = execution.services.bytes_per_point(
        2 * summary["parameters"], summary["samples"] * summary["bins"], upper_limit=True
    )
    settings.REINTERPRET_SCAN_CHUNK = 10**6
    settings.REINTERPRET_MEMORY_BUDGET_MB = 16
    assert execution.chunk_size(likelihood) == 16 * 2**20 // per_point
    # CLs alone keeps fewer Hessians per point: more points fit the same budget.
    assert execution.chunk_size(likelihood, upper_limit=False) > execution.chunk_size(likelihood)


def test_a_chunk_delivered_twice_stores_each_point_once(likelihood):
    job = Job.objects.create(kind=JobKind.SCAN, likelihood=likelihood, params={})
    job = execution.start(job.pk, "w1")
    names = execution.plan_scan(job).names[:3]
    assert execution.run_chunk(job, names, "w1") == 3
    assert execution.run_chunk(job, names, "w2") == 0
    stored = list(ScanPointResult.objects.filter(job=job).values_list("name", "worker"))
    assert sorted(stored) == sorted((n, "w1") for n in names)
    assert execution.workers_of(job) == ["w1"]


def test_the_celery_path_runs_a_whole_scan_and_names_its_worker(
    likelihood, eager_celery, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        job = jobs.submit(likelihood, JobKind.SCAN, {})
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED, job.error
    assert job.progress_done == job.progress_total == likelihood.signals.count()
    grid = list(likelihood.signals.order_by("index").values_list("name", flat=True))
    assert [p["patch"] for p in job.result["points"]] == grid
    assert job.result["contour"]["curves"]["observed"]
    assert jobs.workers_of(job)  # the eager worker's name


def test_the_celery_and_database_paths_give_the_same_table(
    likelihood, eager_celery, settings, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        celery_job = jobs.submit(
            likelihood, JobKind.SCAN, {"points": ["C1N2_800_200", "C1N2_300_0"]}
        )
    settings.REDIS_URL = ""
    db_job = jobs.submit(likelihood, JobKind.SCAN, {"points": ["C1N2_800_200", "C1N2_300_0"]})
    Worker().run_until_idle()
    celery_job.refresh_from_db()
    db_job.refresh_from_db()
    assert celery_job.result["points"] == db_job.result["points"]
    assert [p["patch"] for p in db_job.result["points"]] == ["C1N2_800_200", "C1N2_300_0"]


def test_a_stalled_celery_scan_gets_its_missing_points_sent_again_once(
    likelihood, eager_celery, settings
):
    from datetime import timedelta

    from django.utils import timezone

    from reinterpret.jobs import celery as celery_backend

    settings.REINTERPRET_SCAN_CHUNK = 4
    job = Job.objects.create(kind=JobKind.SCAN, likelihood=likelihood, params={})
    job = execution.start(job.pk, "w1")
    names = execution.plan_scan(job).names
    Job.objects.filter(pk=job.pk).update(progress_total=len(names))  # as when it was sent
    execution.run_chunk(job, names[:4], "w1")  # the other chunks' messages were lost
    job.refresh_from_db()
    assert celery_backend.resend_stalled(job) == 0  # it stored a point just now
    jobs.look_after(job)
    assert ScanPointResult.objects.filter(job=job).count() == 4

    stale = timezone.now() - timedelta(seconds=celery_backend.stall_seconds() + 1)
    Job.objects.filter(pk=job.pk).update(heartbeat=stale)
    jobs.look_after(job)  # eager: the missing chunks run here
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED, job.error
    stored = ScanPointResult.objects.filter(job=job)
    assert sorted(stored.values_list("name", flat=True)) == sorted(names)
    assert [p["patch"] for p in job.result["points"]] == names

    # Every point stored but the assembly lost: the assembly is sent again, once.
    job = Job.objects.create(kind=JobKind.SCAN, likelihood=likelihood, params={})
    job = execution.start(job.pk, "w1")
    execution.run_chunk(job, names, "w1")
    Job.objects.filter(pk=job.pk).update(heartbeat=stale, progress_total=len(names))
    job.refresh_from_db()
    assert celery_backend.resend_stalled(job) == 1
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED and len(job.result["points"]) == len(names)
    assert celery_backend.resend_stalled(job) == 0  # finished: nothing more


def test_a_cancelled_scan_stops_before_its_next_chunk(likelihood):
    from reinterpret.jobs import celery as celery_backend

    job = Job.objects.create(kind=JobKind.SCAN, likelihood=likelihood, params={})
    names = execution.plan_scan(job).names
    celery_backend.scan_chunk.apply(args=(job.pk, names[:2]))
    assert ScanPointResult.objects.filter(job=job).count() == 2
    jobs.cancel(job)
    celery_backend.scan_chunk.apply(args=(job.pk, names[2:4]))
    job.refresh_from_db()
    assert job.state == JobState.CANCELLED
    assert ScanPointResult.objects.filter(job=job).count() == 2


def test_a_job_the_broker_cannot_take_fails_with_a_reason(
    likelihood, settings, django_capture_on_commit_callbacks
):
    from hepstore.celery import app

    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    saved = dict(app.conf.broker_url and {"broker_url": app.conf.broker_url})
    app.conf.update(broker_url=settings.REDIS_URL, task_publish_retry=False)
    app._after_fork()  # forget connections made with the previous broker URL
    try:
        with django_capture_on_commit_callbacks(execute=True):
            job = jobs.submit(likelihood, JobKind.SCAN, {})
    finally:
        app.conf.update(task_publish_retry=True, **saved)
        app._after_fork()
    job.refresh_from_db()
    assert job.state == JobState.FAILED and "unreachable" in job.error


@pytest.mark.django_db(transaction=True)
def test_on_postgresql_a_worker_skips_jobs_another_worker_has_locked(likelihood):
    if connection.vendor != "postgresql":
        pytest.skip("SKIP LOCKED is PostgreSQL's")
    import psycopg

    first = Job.objects.create(kind=JobKind.SCAN, likelihood=likelihood, params={})
    second = Job.objects.create(kind=JobKind.SCAN, likelihood=likelihood, params={})
    params = connection.get_connection_params()
    with psycopg.connect(**params) as other:  # another worker, mid-claim of the first job
        other.execute("BEGIN")
        other.execute("SELECT id FROM reinterpret_job WHERE id = %s FOR UPDATE", (first.pk,))
        claimed = claim("w2")
        other.execute("ROLLBACK")
    assert claimed is not None and claimed.pk == second.pk
    assert Job.objects.get(pk=first.pk).state == JobState.QUEUED


@pytest.mark.django_db(transaction=True)
def test_the_embedded_worker_outlives_a_database_error_and_then_runs_the_job(
    likelihood, monkeypatch
):
    """A locked database while re-queueing stale jobs (SQLite's shared-cache table locks fail
    at once) is logged; the worker's loop goes on and runs the queued scan."""
    from django.db import OperationalError

    from reinterpret.jobs import database

    real, failures = database.requeue_stale, []

    def locked_once(alive: str = "") -> int:
        if not failures:
            failures.append(1)
            raise OperationalError("database table is locked")
        return real(alive)

    monkeypatch.setattr(database, "requeue_stale", locked_once)
    job = jobs.submit(likelihood, JobKind.SCAN, {"points": ["C1N2_300_0"]})
    worker = Worker(name="flaky-db", poll=0.05)
    worker.thread = threading.Thread(target=worker.run_forever, daemon=True)
    worker.thread.start()
    try:
        for _ in range(600):
            job.refresh_from_db()
            if job.state not in (JobState.QUEUED, JobState.RUNNING):
                break
            worker.stop.wait(0.1)
    finally:
        worker.shutdown()
    assert failures == [1]
    assert job.state == JobState.SUCCEEDED, job.error
    assert not worker.thread.is_alive()
