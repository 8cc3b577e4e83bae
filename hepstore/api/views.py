"""REST API of the archive: thin views over services."""

from __future__ import annotations

import hashlib

from django.db.models import Prefetch
from django.http import Http404, HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, permissions, serializers, viewsets
from rest_framework.decorators import action, api_view, permission_classes, schema
from rest_framework.parsers import MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from hepstore import blobs, services
from hepstore.api import serializers as s
from hepstore.api.filters import AnalysisFilterSet, check_single_values
from hepstore.converters import ID_REGEX
from hepstore.errors import InvalidSubmission
from hepstore.jsonio import canonical_bytes
from hepstore.models import Analysis, AnalysisVersion, Likelihood
from hepstore.uploads import refuse_oversized, saved_uploads


def json_download(data: bytes, filename: str, **headers) -> HttpResponse:
    response = HttpResponse(data, content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["X-Content-SHA256"] = hashlib.sha256(data).hexdigest()
    for key, value in headers.items():
        response[key] = value
    return response


JSON_DOCUMENT = OpenApiResponse(
    OpenApiTypes.OBJECT,
    "the JSON document as published (headers X-Content-SHA256, Content-Disposition)",
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

    @extend_schema(responses={200: JSON_DOCUMENT})
    @action(detail=True, url_path="background-only", filter_backends=[], pagination_class=None)
    def background_only(self, request, pk=None):
        lh = self.get_object()
        return json_download(blobs.read_bytes(lh.background_id), f"{lh.region}-BkgOnly.json")

    @extend_schema(responses={200: JSON_DOCUMENT})
    @action(detail=True, filter_backends=[], pagination_class=None)
    def patchset(self, request, pk=None):
        lh = self.get_object()
        if not lh.patchset_id:
            return Response(
                {
                    "error": {
                        "code": "not_found",
                        "message": "this likelihood has no patchset",
                        "problems": [],
                    }
                },
                status=404,
            )
        return json_download(blobs.read_bytes(lh.patchset_id), f"{lh.region}-patchset.json")

    @extend_schema(
        responses={
            (200, "application/gzip"): OpenApiResponse(
                OpenApiTypes.BINARY, "the region as .tar.gz (one directory per region)"
            )
        }
    )
    @action(detail=True, filter_backends=[], pagination_class=None)
    def archive(self, request, pk=None):
        lh = self.get_object()
        response = HttpResponse(services.region_archive(lh), content_type="application/gzip")
        response["Content-Disposition"] = f'attachment; filename="{lh.region}.tar.gz"'
        return response

    @extend_schema(responses=s.SignalPointSerializer(many=True))
    @action(detail=True, filter_backends=[])
    def signals(self, request, pk=None):
        lh = self.get_object()
        page = self.paginate_queryset(lh.signals.all())
        return self.get_paginated_response(s.SignalPointSerializer(page, many=True).data)

    @extend_schema(
        responses={
            200: OpenApiResponse(
                OpenApiTypes.OBJECT,
                "full workspace of the signal point (headers X-Content-SHA256, "
                "X-Background-Digest)",
            )
        }
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
        return json_download(data, f"{name}.json", **{"X-Background-Digest": lh.background_digest})


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
        publication = services.Publication(**{**data, "keywords": tuple(data["keywords"])})
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
