"""Records of the archive: analyses, their versions, likelihoods (one per region) and the
signal points of each likelihood's patchset. JSON documents live in the blob store."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.urls import reverse


class Collaboration(models.Model):
    name = models.CharField(max_length=100, unique=True)
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="collaborations"
    )

    def __str__(self) -> str:
        return self.name

    def allows(self, user) -> bool:
        return bool(
            user
            and user.is_authenticated
            and (user.is_superuser or self.members.filter(pk=user.pk).exists())
        )


class Analysis(models.Model):
    title = models.CharField(max_length=500)
    collaboration = models.ForeignKey(
        Collaboration, on_delete=models.PROTECT, related_name="analyses"
    )
    abstract = models.TextField(blank=True)
    inspire_id = models.PositiveIntegerField(null=True, blank=True, unique=True)
    arxiv_id = models.CharField(max_length=40, blank=True)
    doi = models.CharField(max_length=200, blank=True)
    keywords = models.JSONField(default=list, blank=True)
    year = models.PositiveIntegerField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created", "-id"]
        verbose_name_plural = "analyses"

    def __str__(self) -> str:
        return self.title

    def get_absolute_url(self) -> str:
        return reverse("analysis-detail", args=[self.pk])

    @property
    def latest_version(self):
        return self.versions.order_by("-number").first()


class AnalysisVersion(models.Model):
    analysis = models.ForeignKey(Analysis, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    created = models.DateTimeField(auto_now_add=True)
    submitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    note = models.CharField(max_length=500, blank=True)
    # Set in the ingestion's transaction and cleared once search has the version, so a
    # crash between commit and indexing leaves a mark that services.index_pending picks up.
    search_pending = models.BooleanField(default=True, db_index=True)

    class Meta:
        ordering = ["analysis", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["analysis", "number"], name="unique_version_number")
        ]

    def __str__(self) -> str:
        return f"{self.analysis} v{self.number}"


class Blob(models.Model):
    """A stored JSON document; sha256 of its canonical serialisation is its name."""

    sha256 = models.CharField(max_length=64, primary_key=True)
    size = models.PositiveBigIntegerField()
    created = models.DateTimeField(auto_now_add=True)


class Likelihood(models.Model):
    version = models.ForeignKey(
        AnalysisVersion, on_delete=models.CASCADE, related_name="likelihoods"
    )
    region = models.CharField(max_length=200)
    background = models.ForeignKey(Blob, on_delete=models.PROTECT, related_name="+")
    patchset = models.ForeignKey(
        Blob, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # The files as submitted (None where the portal assembled the document, e.g. a patchset
    # from per-point files): downloads serve these bytes, the canonical blobs feed the rest.
    background_published = models.ForeignKey(
        Blob, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    patchset_published = models.ForeignKey(
        Blob, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # sha256 of the background-only workspace in the patchset convention (see jsonio).
    background_digest = models.CharField(max_length=64)
    labels = models.JSONField(default=list)
    # Optional, from the submitter: {label: {"title": str, "unit": str}} for axis titles.
    label_info = models.JSONField(default=dict, blank=True)
    # Caveats from the submitter (list of texts), shown with every result.
    notes = models.JSONField(default=list, blank=True)
    summary = models.JSONField(default=dict)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["version", "region"]
        constraints = [
            models.UniqueConstraint(fields=["version", "region"], name="unique_region_per_version")
        ]

    def __str__(self) -> str:
        return f"{self.version} / {self.region}"

    def get_absolute_url(self) -> str:
        return reverse("likelihood-detail", args=[self.pk])

    @property
    def analysis(self) -> Analysis:
        return self.version.analysis


class SignalPoint(models.Model):
    likelihood = models.ForeignKey(Likelihood, on_delete=models.CASCADE, related_name="signals")
    name = models.CharField(max_length=300)
    values = models.JSONField(default=list)
    index = models.PositiveIntegerField(help_text="position of the patch in the patchset")
    # The point's patch operations as a blob of their own, so that one point can be patched,
    # evaluated or looked up in the result cache without reading the whole patchset.
    patch = models.ForeignKey(Blob, null=True, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["likelihood", "index"]
        constraints = [
            models.UniqueConstraint(fields=["likelihood", "name"], name="unique_signal_name")
        ]

    def __str__(self) -> str:
        return self.name


class SearchDocument(models.Model):
    """What search knows about one likelihood (with its analysis), flattened for filtering
    and facets. Filled after ingestion commits; `manage.py reindex` rebuilds it."""

    likelihood = models.OneToOneField(
        Likelihood, on_delete=models.CASCADE, primary_key=True, related_name="search_document"
    )
    analysis = models.ForeignKey(Analysis, on_delete=models.CASCADE, related_name="+")
    title = models.TextField()
    abstract = models.TextField(blank=True)
    collaboration = models.CharField(max_length=100, db_index=True)
    year = models.PositiveIntegerField(null=True, db_index=True)
    version = models.PositiveIntegerField()
    # Free text of everything else: ids, keywords, region, channels, samples, modifiers, POI.
    body = models.TextField(blank=True)
    modifier_types = models.JSONField(default=list)
    labels = models.JSONField(default=list)
    label_ranges = models.JSONField(default=dict)
    n_parameters = models.PositiveIntegerField(null=True, db_index=True)
    n_bins = models.PositiveIntegerField(default=0)
    n_points = models.PositiveIntegerField(default=0)
    created = models.DateTimeField(db_index=True)
    document = models.JSONField(default=dict, help_text="the full indexed document")
