from __future__ import annotations

from rest_framework import serializers

from reinterpret.models import Job

# Names a scan request may list (before duplicates are dropped; the scan itself is bounded
# by the patchset).
MAX_SCAN_NAMES = 100_000


class JobSerializer(serializers.ModelSerializer):
    progress = serializers.SerializerMethodField()
    url = serializers.SerializerMethodField()
    likelihood = serializers.IntegerField(source="likelihood_id", allow_null=True)
    combination = serializers.IntegerField(source="combination_id", allow_null=True)
    workers = serializers.SerializerMethodField(help_text="workers that ran the job's parts")

    class Meta:
        model = Job
        fields = [
            "id",
            "url",
            "kind",
            "state",
            "likelihood",
            "combination",
            "progress",
            "params",
            "result",
            "error",
            "created",
            "started",
            "finished",
            "attempts",
            "workers",
        ]

    def get_progress(self, obj) -> dict:
        return {"done": obj.progress_done, "total": obj.progress_total}

    def get_workers(self, obj) -> list[str]:
        from reinterpret.jobs import workers_of

        return workers_of(obj)

    def get_url(self, obj) -> str:
        request = self.context.get("request")
        path = f"/api/v1/jobs/{obj.pk}"
        return request.build_absolute_uri(path) if request else path


class JobCreatedSerializer(JobSerializer):
    token = serializers.CharField(
        required=False,
        help_text="only for a job made anonymously: the secret that shows and cancels it "
        "(send it as X-Job-Token or ?token=); given once",
    )

    class Meta(JobSerializer.Meta):
        fields = [*JobSerializer.Meta.fields, "token"]


class PatchOperationSerializer(serializers.Serializer):
    """One RFC 6902 operation."""

    op = serializers.ChoiceField(choices=["add", "remove", "replace", "move", "copy", "test"])
    path = serializers.CharField(allow_blank=True, help_text="JSON pointer")
    value = serializers.JSONField(required=False)

    def get_fields(self):
        fields = super().get_fields()
        fields["from"] = serializers.CharField(required=False, allow_blank=True)
        return fields


class ReinterpretRequestSerializer(serializers.Serializer):
    """Either signal (+ modifiers) or patch. The channels, their bin counts and the patch's
    targets must fit the likelihood (otherwise 400 or 422 with a problem each)."""

    signal = serializers.DictField(
        child=serializers.ListField(
            child=serializers.FloatField(min_value=0, max_value=1e12), min_length=1
        ),
        required=False,
        help_text="yields per channel and bin (events, 0 to 1e12)",
    )
    modifiers = serializers.ListField(
        child=serializers.DictField(),
        required=False,
        help_text="HistFactory modifiers added to the signal sample",
    )
    patch = PatchOperationSerializer(
        many=True, required=False, help_text="raw RFC 6902 operations (experts)"
    )


class ScanRequestSerializer(serializers.Serializer):
    points = serializers.ListField(
        child=serializers.CharField(max_length=300),
        required=False,
        max_length=MAX_SCAN_NAMES,
        help_text="names of the signal points (default: all); duplicates are dropped",
    )
    x = serializers.CharField(required=False, help_text="label on the x axis of the contour")
    y = serializers.CharField(required=False, help_text="label on the y axis of the contour")
    fixed = serializers.DictField(
        required=False,
        help_text="a slice of the grid: fixed values of labels other than x and y, e.g. "
        '{"mn1": 60}; only the points of the slice are evaluated',
    )
    upper_limit = serializers.BooleanField(
        required=False, help_text="also compute upper limits on mu (slower)"
    )
