"""Reinterpretation records: cached results and jobs (a database-backed queue)."""

from __future__ import annotations

import json

from django.db import models
from django.utils import timezone


class FiniteJSONEncoder(json.JSONEncoder):
    """Refuses NaN and infinities (they are not JSON): a stored result holds null with a
    reason instead, and a value that slipped through fails loudly rather than being stored."""

    def __init__(self, *args, **kwargs):
        kwargs["allow_nan"] = False
        super().__init__(*args, **kwargs)


class CachedResult(models.Model):
    """One evaluated signal hypothesis, keyed by the digests of its inputs and the settings."""

    key = models.CharField(max_length=64, unique=True)
    likelihood = models.ForeignKey(
        "hepstore.Likelihood", on_delete=models.CASCADE, related_name="cached_results"
    )
    signal = models.CharField(max_length=300, blank=True, help_text="archived point, if any")
    result = models.JSONField(encoder=FiniteJSONEncoder)
    inputs = models.JSONField(help_text="digests and settings the key was computed from")
    seconds = models.FloatField(default=0.0)
    created = models.DateTimeField(auto_now_add=True)


class JobState(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL_STATES = (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


class JobKind(models.TextChoices):
    CUSTOM = "custom", "custom signal"
    SCAN = "scan", "grid scan"


class Job(models.Model):
    kind = models.CharField(max_length=20, choices=JobKind.choices)
    state = models.CharField(
        max_length=20, choices=JobState.choices, default=JobState.QUEUED, db_index=True
    )
    likelihood = models.ForeignKey(
        "hepstore.Likelihood", on_delete=models.CASCADE, related_name="jobs"
    )
    params = models.JSONField(default=dict)
    progress_done = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(default=0)
    result = models.JSONField(null=True, blank=True, encoder=FiniteJSONEncoder)
    error = models.TextField(blank=True)
    cancel_requested = models.BooleanField(default=False)
    attempts = models.PositiveIntegerField(default=0)
    worker = models.CharField(max_length=100, blank=True)
    heartbeat = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    started = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created", "id"]

    def __str__(self) -> str:
        return f"job {self.pk} ({self.kind}, {self.state})"

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    def beat(self) -> None:
        Job.objects.filter(pk=self.pk).update(heartbeat=timezone.now())


class ScanPointResult(models.Model):
    """Per-point results of a scan, written as they finish: a restarted scan skips them."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="points")
    name = models.CharField(max_length=300)
    result = models.JSONField(encoder=FiniteJSONEncoder)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["job", "name"], name="unique_scan_point")]
