from __future__ import annotations

from rest_framework import serializers

from reinterpret.models import Job


class JobSerializer(serializers.ModelSerializer):
    progress = serializers.SerializerMethodField()
    url = serializers.SerializerMethodField()
    likelihood = serializers.IntegerField(source="likelihood_id")
    workers = serializers.SerializerMethodField(help_text="workers that ran the job's parts")

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
