"""What a worker does for the combination kinds of job: a custom signal with yields per
member, and a whole-grid scan written point by point (a restarted scan skips the points
already written), with the exclusion contour in the plane of two labels."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from reinterpret import combination_services as cs
from reinterpret import contours, services
from reinterpret.combinations import evaluation_points
from reinterpret.errors import ReinterpretError
from reinterpret.fitter.combine_policy import CombinationError
from reinterpret.models import Job, JobKind, ScanPointResult

log = logging.getLogger(__name__)


def run(job: Job) -> dict | None:
    """The job's result, or None when it was cancelled."""
    if job.kind == JobKind.COMBINATION_SCAN:
        return _run_scan(job)
    Job.objects.filter(pk=job.pk).update(progress_total=1)
    result, _ = cs.custom_result(job.combination, job.params["operations"])
    Job.objects.filter(pk=job.pk).update(progress_done=1)
    return result


def _cancelled(job: Job) -> bool:
    return Job.objects.filter(pk=job.pk, cancel_requested=True).exists()


def _run_scan(job: Job) -> dict | None:
    combination = job.combination
    members = cs.members_of(combination)
    labels, points = cs.grid(combination, members)
    wanted = job.params.get("points") or [p.name for p in points]
    by_name = {p.name: p for p in points}
    done = set(ScanPointResult.objects.filter(job=job).values_list("name", flat=True))
    Job.objects.filter(pk=job.pk).update(progress_total=len(wanted), progress_done=len(done))
    todo = [by_name[n] for n in wanted if n not in done]
    settings_ = services.service_settings(upper_limit=job.params.get("upper_limit", False))
    combiner = cs.combiner_for(combination, members)
    signals = {m.tag: cs._signals(m.likelihood, m.tag) for m in members}
    chunk = settings.REINTERPRET_SCAN_CHUNK
    for start in range(0, len(todo), chunk):
        if _cancelled(job):
            return None
        job.beat()
        part = todo[start : start + chunk]
        try:
            ready = evaluation_points(combiner, signals, part)
        except CombinationError as exc:
            raise ReinterpretError(str(exc)) from exc
        results = services.evaluate(ready, settings_)
        with transaction.atomic():
            ScanPointResult.objects.bulk_create(
                [
                    ScanPointResult(
                        job=job,
                        name=p.name,
                        result={
                            **r,
                            "members": p.as_dict()["members"],
                            "background_only": p.background_only,
                        },
                    )
                    for p, r in zip(part, results, strict=True)
                ],
                ignore_conflicts=True,
            )
            count = ScanPointResult.objects.filter(job=job).count()
            Job.objects.filter(pk=job.pk).update(progress_done=count, heartbeat=timezone.now())
    stored = {p.name: p.result for p in ScanPointResult.objects.filter(job=job)}
    table = [stored[n] for n in wanted if n in stored]
    out = {
        "points": table,
        "labels": labels,
        "settings": settings_.as_dict(),
        "combination": combination.pk,
    }
    contour = contours.scan_view(table, labels, job.params)
    if contour is not None:
        out["contour"] = contour
    return out
