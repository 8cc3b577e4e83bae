from __future__ import annotations

from rest_framework import serializers

from reinterpret.models import Job


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
        child=serializers.CharField(),
        required=False,
        help_text="names of the signal points (default: all)",
    )
    x = serializers.CharField(required=False, help_text="label on the x axis of the contour")
    y = serializers.CharField(required=False, help_text="label on the y axis of the contour")
    fixed = serializers.DictField(
        required=False,
        help_text="a slice of the grid: fixed values of labels other than x and y, e.g. "
        '{"mn1": 60}; only the points of the slice are evaluated',
    )
    upper_limit = serializers.BooleanField(
        required=False, default=False, help_text="also compute upper limits on mu (slower)"
    )
