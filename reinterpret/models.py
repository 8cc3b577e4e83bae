"""Reinterpretation records: cached results and jobs (a database-backed queue)."""

from __future__ import annotations

import hashlib
import json
import secrets
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class FiniteJSONEncoder(json.JSONEncoder):
    """Refuses NaN and infinities (they are not JSON): a stored result holds null with a
    reason instead, and a value that slipped through fails loudly rather than being stored."""

    def __init__(self, *args, **kwargs):
        kwargs["allow_nan"] = False
        super().__init__(*args, **kwargs)


def custom_cache_expiry():
    """When a custom signal's cached result cached now expires."""
    return timezone.now() + timedelta(hours=settings.REINTERPRET_CUSTOM_CACHE_TTL_HOURS)


class CachedResultQuerySet(models.QuerySet):
    def fresh(self) -> CachedResultQuerySet:
        """Entries that have not expired (archived points never expire)."""
        return self.filter(Q(expires__isnull=True) | Q(expires__gt=timezone.now()))

    def prune(self, max_expiring: int) -> int:
        """Delete expired entries, then the oldest expiring ones beyond max_expiring.
        Returns how many were deleted."""
        deleted, _ = self.filter(expires__lte=timezone.now()).delete()
        expiring = self.filter(expires__isnull=False)
        excess = expiring.count() - max_expiring
        if excess > 0:
            oldest = expiring.order_by("created", "id").values_list("pk", flat=True)[:excess]
            more, _ = self.filter(pk__in=list(oldest)).delete()
            deleted += more
        return deleted


class CachedResult(models.Model):
    """One evaluated signal hypothesis, keyed by the digests of its inputs and the settings.

    Results of archived signal points are kept (expires is null); results of custom signals
    expire after REINTERPRET_CUSTOM_CACHE_TTL_HOURS and at most
    REINTERPRET_CUSTOM_CACHE_MAX_ENTRIES of them are kept (the oldest go first)."""

    key = models.CharField(max_length=64, unique=True)
    likelihood = models.ForeignKey(
        "hepstore.Likelihood", on_delete=models.CASCADE, related_name="cached_results"
    )
    signal = models.CharField(max_length=300, blank=True, help_text="archived point, if any")
    result = models.JSONField(encoder=FiniteJSONEncoder)
    inputs = models.JSONField(help_text="digests and settings the key was computed from")
    seconds = models.FloatField(default=0.0)
    cpu_seconds = models.FloatField(default=0.0, help_text="CPU time of the evaluation (s)")
    created = models.DateTimeField(auto_now_add=True)
    expires = models.DateTimeField(null=True, blank=True, db_index=True)

    objects = CachedResultQuerySet.as_manager()


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
    COMBINATION_CUSTOM = "combination_custom", "custom signal of a combination"
    COMBINATION_SCAN = "combination_scan", "grid scan of a combination"


COMBINATION_KINDS = (JobKind.COMBINATION_CUSTOM, JobKind.COMBINATION_SCAN)


def token_digest(token: str) -> str:
    """What is stored of a job's secret: its sha256 (hex)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class JobQuerySet(models.QuerySet):
    def visible_to(self, user, token: str | None) -> JobQuerySet:
        """Jobs the requester may see: staff all, a user their own, anyone the job whose
        secret token they present."""
        if user is not None and user.is_authenticated and user.is_staff:
            return self
        mine = Q(pk__in=[])
        if user is not None and user.is_authenticated:
            mine |= Q(owner=user)
        if token:
            mine |= Q(token_sha256=token_digest(token))
        return self.filter(mine)

    def pending(self) -> JobQuerySet:
        return self.filter(state__in=[JobState.QUEUED, JobState.RUNNING])


class Job(models.Model):
    """A queued computation. It belongs to the user who made it (owner) or, when made
    anonymously, to the bearer of the secret token returned at creation (only its sha256 is
    stored); client identifies the requester (user or address) for per-client caps."""

    kind = models.CharField(max_length=20, choices=JobKind.choices)
    state = models.CharField(
        max_length=20, choices=JobState.choices, default=JobState.QUEUED, db_index=True
    )
    # A job works on one likelihood, or (combination kinds) on one combination.
    likelihood = models.ForeignKey(
        "hepstore.Likelihood", on_delete=models.CASCADE, related_name="jobs", null=True, blank=True
    )
    combination = models.ForeignKey(
        "Combination", on_delete=models.CASCADE, related_name="jobs", null=True, blank=True
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
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="jobs",
    )
    token_sha256 = models.CharField(max_length=64, blank=True, db_index=True)
    client = models.CharField(max_length=200, blank=True, db_index=True)

    objects = JobQuerySet.as_manager()

    class Meta:
        ordering = ["created", "id"]

    def __str__(self) -> str:
        return f"job {self.pk} ({self.kind}, {self.state})"

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    def issue_token(self) -> str:
        """A new secret for an anonymous owner; returned once, only its digest is kept."""
        token = secrets.token_urlsafe(32)
        self.token_sha256 = token_digest(token)
        return token

    def beat(self) -> None:
        Job.objects.filter(pk=self.pk).update(heartbeat=timezone.now())


class ScanPointResult(models.Model):
    """Per-point results of a scan, written as they finish: a restarted scan skips them."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="points")
    name = models.CharField(max_length=300)
    result = models.JSONField(encoder=FiniteJSONEncoder)
    worker = models.CharField(max_length=200, blank=True, help_text="worker that computed it")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["job", "name"], name="unique_scan_point")]


class Combination(models.Model):
    """A named set of archived likelihoods (any versions, any analyses) fitted as one, with
    the correlation policy (reinterpret.fitter.combine_policy.Policy.as_dict()) and the map of
    member signal labels onto the combination's label names."""

    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    policy = models.JSONField(default=dict)
    label_map = models.JSONField(default=dict, help_text="member tag -> {its label: label}")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created", "-id"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        from django.urls import reverse

        return reverse("combination-detail", args=[self.pk])


class CombinationMember(models.Model):
    combination = models.ForeignKey(Combination, on_delete=models.CASCADE, related_name="members")
    likelihood = models.ForeignKey(
        "hepstore.Likelihood", on_delete=models.PROTECT, related_name="combination_memberships"
    )
    tag = models.CharField(max_length=64, help_text="names the member in the policy")
    position = models.PositiveIntegerField()
    measurement = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["combination", "position"]
        constraints = [
            models.UniqueConstraint(fields=["combination", "tag"], name="unique_member_tag")
        ]

    def __str__(self) -> str:
        return f"{self.combination} / {self.tag}"


class CombinedResult(models.Model):
    """One evaluated combined point, keyed by every member's digests (background and signal
    patch, or none), the policy and the settings: combinations with the same members and
    policy share it."""

    key = models.CharField(max_length=64, unique=True)
    combination = models.ForeignKey(
        Combination, on_delete=models.SET_NULL, null=True, related_name="cached_results"
    )
    point = models.CharField(max_length=600, blank=True)
    result = models.JSONField()
    inputs = models.JSONField()
    seconds = models.FloatField(default=0.0)
    created = models.DateTimeField(auto_now_add=True)
