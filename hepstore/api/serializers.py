from __future__ import annotations

from rest_framework import serializers

from hepstore import citations
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
    links = serializers.SerializerMethodField()

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
            "links",
        ]

    def get_links(self, obj) -> dict[str, str]:
        """INSPIRE, HEPData, arXiv and DOI addresses, and the portal's citable record."""
        found = citations.links(obj)
        request = self.context.get("request")
        record = citations.record_path(obj)
        found["record"] = request.build_absolute_uri(record) if request else record
        return found

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
    inspire_id = serializers.IntegerField(
        required=False, allow_null=True, default=None, min_value=1, max_value=2**31 - 1
    )
    arxiv_id = serializers.CharField(required=False, allow_blank=True, default="", max_length=40)
    doi = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)
    year = serializers.IntegerField(
        required=False, allow_null=True, default=None, min_value=0, max_value=9999
    )
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


class ReportProblemSerializer(serializers.Serializer):
    file = serializers.CharField()
    pointer = serializers.CharField(help_text="JSON pointer inside the file")
    severity = serializers.ChoiceField(choices=["error", "warning"])
    message = serializers.CharField()


class ReportSerializer(serializers.Serializer):
    """A validation report (what POST validate answers)."""

    valid = serializers.BooleanField()
    problems = ReportProblemSerializer(many=True)
    summary = serializers.DictField(help_text="counts per region: channels, bins, parameters, ...")


class SubmissionResultSerializer(serializers.Serializer):
    analysis = AnalysisDetailSerializer()
    version = serializers.IntegerField()
    report = ReportSerializer()


class SearchParamsSerializer(serializers.Serializer):
    """The query parameters of the search (their ranges are those of SearchQuery)."""

    q = serializers.CharField(required=False, allow_blank=True, help_text="free text, ranked")
    collaboration = serializers.CharField(required=False, allow_blank=True)
    year = serializers.IntegerField(required=False, min_value=0, max_value=9999)
    modifier_type = serializers.CharField(required=False, allow_blank=True)
    label = serializers.CharField(required=False, allow_blank=True, help_text="a signal-grid label")
    label_min = serializers.FloatField(
        required=False,
        min_value=-1e300,
        max_value=1e300,
        help_text="with label: some signal point has label >= label_min (without: 400)",
    )
    label_max = serializers.FloatField(
        required=False,
        min_value=-1e300,
        max_value=1e300,
        help_text="with label: some signal point has label <= label_max (without: 400)",
    )
    npars_min = serializers.IntegerField(required=False, min_value=0, max_value=2**31 - 1)
    npars_max = serializers.IntegerField(required=False, min_value=0, max_value=2**31 - 1)
    sort = serializers.ChoiceField(choices=["relevance", "date"], required=False)
    page = serializers.IntegerField(required=False, min_value=1, max_value=10**6)


class SearchHitSerializer(serializers.Serializer):
    likelihood = serializers.IntegerField()
    analysis = serializers.IntegerField()
    title = serializers.CharField()


class FacetSerializer(serializers.Serializer):
    value = serializers.JSONField()
    count = serializers.IntegerField()


class SearchResultSerializer(serializers.Serializer):
    total = serializers.IntegerField()
    page = serializers.IntegerField()
    page_size = serializers.IntegerField()
    backend = serializers.CharField()
    hits = SearchHitSerializer(many=True, help_text="with highlights and more fields")
    facets = serializers.DictField(child=FacetSerializer(many=True))
