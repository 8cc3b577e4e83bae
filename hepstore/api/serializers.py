from __future__ import annotations

from rest_framework import serializers

from hepstore.models import Analysis, AnalysisVersion, Likelihood, SignalPoint


class LikelihoodBriefSerializer(serializers.ModelSerializer):
    url = serializers.HyperlinkedIdentityField(view_name="api-likelihood-detail")
    signal_points = serializers.SerializerMethodField()

    class Meta:
        model = Likelihood
        fields = ["id", "url", "region", "labels", "signal_points", "background_digest"]

    def get_signal_points(self, obj) -> int:
        return obj.summary.get("signal_points", 0)


class VersionSerializer(serializers.ModelSerializer):
    likelihoods = LikelihoodBriefSerializer(many=True, read_only=True)

    class Meta:
        model = AnalysisVersion
        fields = ["number", "created", "note", "likelihoods"]


class AnalysisSerializer(serializers.ModelSerializer):
    url = serializers.HyperlinkedIdentityField(view_name="api-analysis-detail")
    collaboration = serializers.CharField(source="collaboration.name")
    latest_version = serializers.SerializerMethodField()

    class Meta:
        model = Analysis
        fields = [
            "id",
            "url",
            "title",
            "collaboration",
            "abstract",
            "inspire_id",
            "arxiv_id",
            "doi",
            "keywords",
            "year",
            "created",
            "latest_version",
        ]

    def get_latest_version(self, obj) -> int | None:
        numbers = [v.number for v in obj.versions.all()]
        return max(numbers) if numbers else None


class AnalysisDetailSerializer(AnalysisSerializer):
    versions = VersionSerializer(many=True, read_only=True)

    class Meta(AnalysisSerializer.Meta):
        fields = [*AnalysisSerializer.Meta.fields, "versions"]


class SignalPointSerializer(serializers.ModelSerializer):
    class Meta:
        model = SignalPoint
        fields = ["name", "values"]


class LikelihoodSerializer(serializers.ModelSerializer):
    analysis = serializers.IntegerField(source="version.analysis_id")
    analysis_title = serializers.CharField(source="version.analysis.title")
    version = serializers.IntegerField(source="version.number")
    links = serializers.SerializerMethodField()

    class Meta:
        model = Likelihood
        fields = [
            "id",
            "analysis",
            "analysis_title",
            "version",
            "region",
            "labels",
            "label_info",
            "notes",
            "background_digest",
            "summary",
            "links",
            "created",
        ]

    def get_links(self, obj) -> dict:
        request = self.context.get("request")
        base = f"/api/v1/likelihoods/{obj.pk}"
        paths = {
            "background_only": f"{base}/background-only",
            "patchset": f"{base}/patchset",
            "signals": f"{base}/signals/",
            "archive": f"{base}/archive",
        }
        if request is not None:
            paths = {k: request.build_absolute_uri(v) for k, v in paths.items()}
        return paths


class SubmissionSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="a .tar.gz/.tgz/.zip archive or a single JSON file")
    title = serializers.CharField(max_length=500)
    collaboration = serializers.CharField(max_length=100)
    abstract = serializers.CharField(required=False, allow_blank=True, default="")
    inspire_id = serializers.IntegerField(required=False, allow_null=True, default=None)
    arxiv_id = serializers.CharField(required=False, allow_blank=True, default="")
    doi = serializers.CharField(required=False, allow_blank=True, default="")
    year = serializers.IntegerField(required=False, allow_null=True, default=None)
    keywords = serializers.ListField(child=serializers.CharField(), required=False, default=list)
    label_info = serializers.JSONField(
        required=False,
        default=dict,
        binary=True,
        help_text='axis titles and units of the signal labels, JSON: {"msb": {"title": '
        '"m(b1)", "unit": "GeV"}}',
    )
    notes = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        default=list,
        help_text="caveats shown with the likelihood's results (repeat the field)",
    )

    def validate_label_info(self, value):
        if not isinstance(value, dict) or not all(
            isinstance(v, dict) and all(isinstance(x, str) for x in v.values())
            for v in value.values()
        ):
            raise serializers.ValidationError(
                'give {"label": {"title": "...", "unit": "..."}} with text values'
            )
        return value


class ValidateSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="archive, submission files or JSON documents")
