"""What a job does, whichever queue runs it: plan a scan into chunks of points, evaluate one
chunk, assemble the table and contour, evaluate a custom signal; and the state changes.

Every write is idempotent so that a chunk delivered twice (its worker died before it said
so) stores each point once: points already stored are skipped, inserts ignore conflicts on
(job, name), and terminal states are only ever entered from `running`.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from reinterpret import services
from reinterpret.errors import ReinterpretError
from reinterpret.models import COMBINATION_KINDS, Job, JobState, ScanPointResult

log = logging.getLogger(__name__)

# Parsed background-only workspaces by blob digest: a worker running many chunks of one scan
# reads and parses the (possibly large) background once. Patching never modifies it.
_BACKGROUNDS: OrderedDict[str, dict] = OrderedDict()
_BACKGROUNDS_KEPT = 4


def background(digest: str) -> dict:
    """The parsed background-only workspace stored under digest (cached per process)."""
    from hepstore import blobs

    if digest in _BACKGROUNDS:
        _BACKGROUNDS.move_to_end(digest)
        return _BACKGROUNDS[digest]
    workspace = blobs.read_json(digest)
    _BACKGROUNDS[digest] = workspace
    while len(_BACKGROUNDS) > _BACKGROUNDS_KEPT:
        _BACKGROUNDS.popitem(last=False)
    return workspace


# --------------------------------------------------------------------------- planning
@dataclass(frozen=True)
class ScanPlan:
    """The points of a scan in request order, cut into chunks (lists of point names)."""

    names: list[str]
    chunks: list[list[str]]


def scan_names(job: Job) -> list[str]:
    """The scan's points in request order: those named, else every point of the grid; with a
    slice ("fixed"), only the points in it."""
    from reinterpret import contours

    signals = job.likelihood.signals.order_by("index").values_list("name", "values")
    patches = [{"metadata": {"name": name, "values": values}} for name, values in signals]
    return list(contours.select_points(patches, job.likelihood.labels, job.params))


def chunk_size(likelihood, upper_limit: bool = True) -> int:
    """Points per chunk: REINTERPRET_SCAN_CHUNK, fewer when the memory model says a batch of
    that many would exceed the memory budget (sized from the stored summary, without reading
    the workspace: samples x bins bounds the sample-bin count from above; the signal samples
    a patch adds, twice the parameters)."""
    summary = likelihood.summary or {}
    npars = int(summary.get("parameters") or 0)
    nbins = int(summary.get("bins") or 0)
    nsb = int(summary.get("samples") or 0) * nbins
    per_point = services.bytes_per_point(2 * npars, nsb, upper_limit)
    by_memory = settings.REINTERPRET_MEMORY_BUDGET_MB * 2**20 // max(per_point, 1)
    return max(1, min(settings.REINTERPRET_SCAN_CHUNK, by_memory))


def plan_scan(job: Job) -> ScanPlan:
    names = scan_names(job)
    size = chunk_size(job.likelihood, job.params.get("upper_limit", False))
    return ScanPlan(names, [names[i : i + size] for i in range(0, len(names), size)])


# --------------------------------------------------------------------------- state changes
def start(job_id: int, worker: str) -> Job | None:
    """Mark the job running (if it was queued) and return it; None when it is terminal."""
    now = timezone.now()
    Job.objects.filter(pk=job_id, state=JobState.QUEUED).update(
        state=JobState.RUNNING, started=now, heartbeat=now, worker=worker
    )
    job = Job.objects.select_related("likelihood").filter(pk=job_id).first()
    if job is None or job.is_terminal:
        return None
    return job


def finish(job: Job, state: str, result=None, error: str = "", worker: str | None = None) -> bool:
    """Move a running job to a terminal state; False when it was no longer running (by
    worker, if given)."""
    running = Job.objects.filter(pk=job.pk, state=JobState.RUNNING)
    if worker is not None:
        running = running.filter(worker=worker)
    done = running.update(state=state, result=result, error=error, finished=timezone.now())
    if done:
        log.info("job %s %s", job.pk, state)
    return bool(done)


def cancel_requested(job: Job) -> bool:
    return Job.objects.filter(pk=job.pk, cancel_requested=True).exists()


def is_running(job_id: int) -> bool:
    return Job.objects.filter(pk=job_id, state=JobState.RUNNING).exists()


# --------------------------------------------------------------------------- work
def run_custom(job: Job) -> dict:
    Job.objects.filter(pk=job.pk).update(progress_total=1)
    result, _ = services.cached_evaluation(job.likelihood, job.params["patch"], "custom")
    Job.objects.filter(pk=job.pk).update(progress_done=1)
    return result


def run_whole(job: Job) -> dict | None:
    """A job that is not cut into chunks: a custom signal, or a combination's job (whose
    scan runs point by point in one worker and skips, when resumed, the points already
    stored). None when it was cancelled."""
    if job.kind in COMBINATION_KINDS:
        from reinterpret import combination_jobs

        return combination_jobs.run(job)
    return run_custom(job)


def run_chunk(job: Job, names: list[str], worker: str) -> int:
    """Evaluate the chunk's points not stored yet and store them; returns how many were new.

    Reads the background-only workspace (cached) and only these points' patches."""
    import time

    from hepstore import blobs

    started = time.perf_counter()
    evaluating = 0.0
    done = set(
        ScanPointResult.objects.filter(job=job, name__in=names).values_list("name", flat=True)
    )
    todo = [n for n in names if n not in done]
    if todo:
        likelihood = job.likelihood
        stored = {
            sp.name: sp
            for sp in likelihood.signals.filter(name__in=todo).only("name", "values", "patch")
        }
        missing = [n for n in todo if n not in stored]
        if missing:
            raise ReinterpretError(f"unknown signal points: {', '.join(missing[:10])}")
        bkg = background(likelihood.background_id)
        if all(stored[n].patch_id for n in todo):
            points = [
                services.Point(
                    n,
                    tuple(stored[n].values or ()),
                    services.apply_patch(bkg, blobs.read_json(stored[n].patch_id), n),
                )
                for n in todo
            ]
        else:  # records from before points had patches of their own: read the patchset
            points = services.patch_points(bkg, blobs.read_json(likelihood.patchset_id), todo)
        t0 = time.perf_counter()
        results = services.evaluate(
            points, services.service_settings(upper_limit=job.params.get("upper_limit", False))
        )
        evaluating = time.perf_counter() - t0
        with transaction.atomic():
            ScanPointResult.objects.bulk_create(
                [
                    ScanPointResult(job=job, name=r["patch"], result=r, worker=worker)
                    for r in results
                ],
                ignore_conflicts=True,
            )
    # Counted after the commit: of chunks finishing together, the last to commit sees all.
    count = ScanPointResult.objects.filter(job=job).count()
    Job.objects.filter(pk=job.pk).update(progress_done=count, heartbeat=timezone.now())
    log.info(
        "job %s: chunk of %d points done (%d new, evaluated in %.3f s, chunk %.3f s); %d stored",
        job.pk,
        len(names),
        len(todo),
        evaluating,
        time.perf_counter() - started,
        count,
    )
    return len(todo)


def all_points_stored(job: Job) -> bool:
    total = Job.objects.filter(pk=job.pk).values_list("progress_total", flat=True).first() or 0
    return ScanPointResult.objects.filter(job=job).count() >= total


def assemble_scan(job: Job) -> dict:
    """The scan's result: the table in request order, labels, settings and the contour."""
    from reinterpret import contours

    wanted = scan_names(job)
    by_name = {p.name: p.result for p in ScanPointResult.objects.filter(job=job)}
    table = [by_name[n] for n in wanted if n in by_name]
    likelihood = job.likelihood
    labels = likelihood.labels
    settings_ = services.service_settings(upper_limit=job.params.get("upper_limit", False))
    out = {"points": table, "labels": labels, "settings": settings_.as_dict()}
    contour = contours.scan_view(table, labels, job.params)
    if contour is not None:
        out["contour"] = contour
    return out


def workers_of(job: Job) -> list[str]:
    """Names of the workers that ran the job (for a scan: that stored its points)."""
    names = set(
        ScanPointResult.objects.filter(job=job)
        .exclude(worker="")
        .values_list("worker", flat=True)
        .distinct()
    )
    if not names and job.worker:
        names.add(job.worker)
    return sorted(names)
