from __future__ import annotations

from rest_framework import serializers

from reinterpret.models import Job

# Names a scan request may list (before duplicates are dropped; the scan itself is bounded
# by the patchset).
MAX_SCAN_NAMES = 100_000


class JobSerializer(serializers.ModelSerializer):
    progress = serializers.SerializerMethodField()
    url = serializers.SerializerMethodField()
    likelihood = serializers.IntegerField(source="likelihood_id")

    class Meta:
        model = Job
        fields = [
            "id",
            "url",
            "kind",
            "state",
            "likelihood",
            "progress",
            "params",
            "result",
            "error",
            "created",
            "started",
            "finished",
            "attempts",
        ]

    def get_progress(self, obj) -> dict:
        return {"done": obj.progress_done, "total": obj.progress_total}

    def get_url(self, obj) -> str:
        request = self.context.get("request")
        path = f"/api/v1/jobs/{obj.pk}"
        return request.build_absolute_uri(path) if request else path


class ReinterpretRequestSerializer(serializers.Serializer):
    signal = serializers.DictField(
        child=serializers.ListField(), required=False, help_text="yields per channel and bin"
    )
    modifiers = serializers.ListField(child=serializers.DictField(), required=False)
    patch = serializers.ListField(
        child=serializers.DictField(), required=False, help_text="raw RFC 6902 operations (experts)"
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
