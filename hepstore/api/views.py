"""REST API of the archive: thin views over services."""

from __future__ import annotations

from django.db.models import Prefetch
from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, permissions, serializers, viewsets
from rest_framework.decorators import action, api_view, permission_classes, schema
from rest_framework.parsers import MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from hepstore import citations, points, services
from hepstore.api import serializers as s
from hepstore.api.downloads import blob_download, bytes_download
from hepstore.api.filters import AnalysisFilterSet, check_single_values
from hepstore.api.schema import IF_NONE_MATCH, NOT_MODIFIED, errors, label_values_parameter
from hepstore.converters import ID_REGEX
from hepstore.errors import InvalidSubmission, NotFound, UnusableInput
from hepstore.jsonio import canonical_bytes
from hepstore.models import Analysis, AnalysisVersion, Likelihood
from hepstore.uploads import refuse_oversized, saved_uploads

FORM_PARAMETER = OpenApiParameter(
    "form",
    str,
    enum=["published", "canonical"],
    description="published (default): the bytes as submitted; canonical: sorted keys, "
    "compact separators (the portal's form, also served where nothing was published)",
)


def _form(request) -> str:
    # An empty value is not the default: it is a value outside the documented enum.
    form = request.query_params.get("form", "published")
    if form not in ("published", "canonical"):
        raise UnusableInput("form must be 'published' or 'canonical'")
    return form


def _document(request, published_sha: str | None, canonical_sha: str, filename: str):
    """A stored document as published (default) or canonical; X-Content-Form says which."""
    if _form(request) == "published" and published_sha:
        return blob_download(request, published_sha, filename, **{"X-Content-Form": "published"})
    return blob_download(request, canonical_sha, filename, **{"X-Content-Form": "canonical"})


JSON_DOCUMENT = OpenApiResponse(
    OpenApiTypes.OBJECT,
    "the JSON document as published (headers X-Content-SHA256, ETag, Content-Disposition)",
)


class AnalysisViewSet(viewsets.ReadOnlyModelViewSet):
    """Analyses with their publication metadata and versions, newest first; filtered by
    collaboration, inspire_id, year and words (q)."""

    filterset_class = AnalysisFilterSet
    lookup_value_regex = ID_REGEX

    queryset = Analysis.objects.select_related("collaboration").prefetch_related(
        Prefetch("versions", queryset=AnalysisVersion.objects.prefetch_related("likelihoods"))
    )

    def get_serializer_class(self):
        return s.AnalysisDetailSerializer if self.action == "retrieve" else s.AnalysisSerializer


class LikelihoodViewSet(mixins.RetrieveModelMixin, mixins.ListModelMixin, viewsets.GenericViewSet):
    """One region of one analysis version: workspace, patchset and signal points."""

    queryset = Likelihood.objects.select_related("version__analysis")
    serializer_class = s.LikelihoodSerializer
    lookup_value_regex = ID_REGEX

    @extend_schema(
        parameters=[FORM_PARAMETER, IF_NONE_MATCH],
        responses={200: JSON_DOCUMENT, 304: NOT_MODIFIED},
    )
    @errors(400)
    @action(detail=True, url_path="background-only", filter_backends=[], pagination_class=None)
    def background_only(self, request, pk=None):
        lh = self.get_object()
        return _document(
            request, lh.background_published_id, lh.background_id, f"{lh.region}-BkgOnly.json"
        )

    @extend_schema(
        parameters=[FORM_PARAMETER, IF_NONE_MATCH],
        responses={200: JSON_DOCUMENT, 304: NOT_MODIFIED},
    )
    @errors(400)
    @action(detail=True, filter_backends=[], pagination_class=None)
    def patchset(self, request, pk=None):
        lh = self.get_object()
        if not lh.patchset_id:
            raise NotFound("this likelihood has no patchset")
        return _document(
            request, lh.patchset_published_id, lh.patchset_id, f"{lh.region}-patchset.json"
        )

    @extend_schema(
        parameters=[IF_NONE_MATCH],
        responses={
            (200, "application/gzip"): OpenApiResponse(
                OpenApiTypes.BINARY, "the region as .tar.gz (one directory per region)"
            ),
            304: NOT_MODIFIED,
        },
    )
    @action(detail=True, filter_backends=[], pagination_class=None)
    def archive(self, request, pk=None):
        lh = self.get_object()
        return bytes_download(
            request, services.region_archive(lh), f"{lh.region}.tar.gz", "application/gzip"
        )

    @extend_schema(
        parameters=[label_values_parameter(required=False)],
        responses=s.SignalPointSerializer(many=True),
    )
    @errors(400)
    @action(detail=True, filter_backends=[])
    def signals(self, request, pk=None):
        """The signal grid; label=value parameters keep the points with those values."""
        lh = self.get_object()
        wanted = points.label_values(lh, request.query_params)
        chosen = points.matching(lh, wanted) if wanted else lh.signals.all()
        page = self.paginate_queryset(chosen)
        return self.get_paginated_response(s.SignalPointSerializer(page, many=True).data)

    @extend_schema(
        parameters=[IF_NONE_MATCH],
        responses={
            200: OpenApiResponse(
                {"type": "array", "items": {"type": "object"}},
                "the point's JSON Patch operations (RFC 6902)",
            ),
            304: NOT_MODIFIED,
        },
    )
    @action(
        detail=True,
        url_path=r"signals/(?P<name>[^/]+)/patch",
        filter_backends=[],
        pagination_class=None,
    )
    def signal_patch(self, request, pk=None, name=None):
        """The point's patch operations alone (as `pyhf patchset extract` gives them)."""
        lh = self.get_object()
        point = lh.signals.filter(name=name).first()
        if point is None or point.patch_id is None:
            raise NotFound(f"no signal point {name!r} in this likelihood")
        return blob_download(request, point.patch_id, f"{name}-patch.json")

    @extend_schema(
        parameters=[IF_NONE_MATCH],
        responses={
            200: OpenApiResponse(
                OpenApiTypes.OBJECT,
                "full workspace of the signal point (headers X-Content-SHA256, ETag, "
                "X-Background-Digest)",
            ),
            304: NOT_MODIFIED,
        },
    )
    @action(
        detail=True,
        url_path=r"signals/(?P<name>[^/]+)/workspace",
        filter_backends=[],
        pagination_class=None,
    )
    def signal_workspace(self, request, pk=None, name=None):
        lh = self.get_object()
        data = canonical_bytes(services.patched_workspace(lh, name))
        return bytes_download(
            request, data, f"{name}.json", **{"X-Background-Digest": lh.background_digest}
        )


class RecordView(APIView):
    """An analysis by its INSPIRE id, with one version (?version=N, the latest by default),
    its likelihoods, links and how to cite it."""

    permission_classes = [permissions.AllowAny]

    @extend_schema(
        parameters=[OpenApiParameter("version", int, description="version number")],
        responses={200: OpenApiTypes.OBJECT},
    )
    def get(self, request, inspire_id: int):
        analysis = AnalysisViewSet.queryset.filter(inspire_id=inspire_id).first()
        if analysis is None:
            raise NotFound(f"no analysis with INSPIRE id {inspire_id} in the archive")
        versions = {v.number: v for v in analysis.versions.all()}
        wanted = request.query_params.get("version")
        if wanted is None:
            number = max(versions, default=None)
        elif wanted.isdigit():
            number = int(wanted)
        else:
            raise UnusableInput("version must be a version number")
        if number not in versions:
            raise NotFound(
                f"no version {number} of INSPIRE record {inspire_id}; versions: "
                f"{', '.join(map(str, sorted(versions))) or 'none'}"
            )
        version = versions[number]
        body = s.AnalysisSerializer(analysis, context={"request": request}).data
        url = f"{body['links']['record']}?version={number}"
        body["version"] = s.VersionSerializer(version, context={"request": request}).data
        body["versions"] = sorted(versions)
        body["citation"] = citations.citations(analysis, version, url)
        return Response(body)


class ValidateView(APIView):
    """Validate an uploaded submission; nothing is stored."""

    parser_classes = [MultiPartParser]
    permission_classes = [permissions.AllowAny]
    throttle_scope = "validate"

    @extend_schema(
        request={"multipart/form-data": s.ValidateSerializer},
        responses={200: s.ReportSerializer},
    )
    def post(self, request):
        refuse_oversized(request)
        files = request.FILES.getlist("file") or list(request.FILES.values())
        with saved_uploads(files) as paths:
            report, _ = services.validate_paths(paths)
        return Response(report.as_dict())


class SubmissionView(APIView):
    """Submit a likelihood bundle (token authentication; members of the collaboration)."""

    parser_classes = [MultiPartParser]
    permission_classes = [permissions.IsAuthenticated]
    throttle_scope = "submissions"
    error_statuses = (409, 422)

    @extend_schema(
        request={"multipart/form-data": s.SubmissionSerializer},
        responses={201: s.SubmissionResultSerializer},
    )
    def post(self, request):
        refuse_oversized(request)
        serializer = s.SubmissionSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        files = request.FILES.getlist("file")
        data.pop("file")
        publication = services.Publication(
            **{**data, "keywords": tuple(data["keywords"]), "notes": tuple(data["notes"])}
        )
        with saved_uploads(files) as paths:
            report, version = services.ingest_paths(paths, publication, user=request.user)
        if version is None:
            raise InvalidSubmission(
                "the submission is not valid; nothing was stored",
                [p.as_dict() for p in report.problems],
            )
        analysis = Analysis.objects.get(pk=version.analysis_id)
        body = s.AnalysisDetailSerializer(analysis, context={"request": request}).data
        return Response(
            {"analysis": body, "version": version.number, "report": report.as_dict()}, status=201
        )


class SearchView(APIView):
    """Free text (ranked) with fielded filters and facets: q, collaboration, year,
    modifier_type, label (+ label_min/label_max: a signal point's label value in range),
    npars_min/npars_max, sort=relevance|date, page."""

    permission_classes = [permissions.AllowAny]
    error_statuses = (400, 503)

    @extend_schema(parameters=[s.SearchParamsSerializer], responses=s.SearchResultSerializer)
    def get(self, request):
        from hepstore import search

        fields = s.SearchParamsSerializer().fields
        typed = {n for n, f in fields.items() if not isinstance(f, serializers.CharField)}
        check_single_values(request, fields, typed)
        query = search.SearchQuery.from_params(request.query_params)
        return Response(search.search(query).as_dict())


@api_view(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"])
@permission_classes([AllowAny])
@schema(None)
def unknown_path(request, rest: str = ""):
    """Every path under /api/v1/ that names no endpoint: the envelope, not an HTML page."""
    raise Http404(f"no API endpoint at {request.path}; see /api/v1/schema/")
