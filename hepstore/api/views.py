"""REST API of the archive: thin views over services."""

from __future__ import annotations

import hashlib

from django.db.models import Prefetch
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, permissions, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from hepstore import blobs, services
from hepstore.api import serializers as s
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


class AnalysisViewSet(viewsets.ReadOnlyModelViewSet):
    """Analyses with their publication metadata and versions."""

    queryset = Analysis.objects.select_related("collaboration").prefetch_related(
        Prefetch("versions", queryset=AnalysisVersion.objects.prefetch_related("likelihoods"))
    )

    def get_serializer_class(self):
        return s.AnalysisDetailSerializer if self.action == "retrieve" else s.AnalysisSerializer


class LikelihoodViewSet(mixins.RetrieveModelMixin, mixins.ListModelMixin, viewsets.GenericViewSet):
    """One region of one analysis version: workspace, patchset and signal points."""

    queryset = Likelihood.objects.select_related("version__analysis")
    serializer_class = s.LikelihoodSerializer

    @extend_schema(
        responses={200: OpenApiResponse(OpenApiTypes.OBJECT, "background-only workspace JSON")}
    )
    @action(detail=True, url_path="background-only")
    def background_only(self, request, pk=None):
        lh = self.get_object()
        return json_download(blobs.read_bytes(lh.background_id), f"{lh.region}-BkgOnly.json")

    @extend_schema(responses={200: OpenApiResponse(OpenApiTypes.OBJECT, "patchset JSON")})
    @action(detail=True)
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

    @extend_schema(responses={200: OpenApiResponse(OpenApiTypes.BINARY, "region .tar.gz")})
    @action(detail=True)
    def archive(self, request, pk=None):
        lh = self.get_object()
        response = HttpResponse(services.region_archive(lh), content_type="application/gzip")
        response["Content-Disposition"] = f'attachment; filename="{lh.region}.tar.gz"'
        return response

    @extend_schema(responses=s.SignalPointSerializer(many=True))
    @action(detail=True)
    def signals(self, request, pk=None):
        lh = self.get_object()
        page = self.paginate_queryset(lh.signals.all())
        return self.get_paginated_response(s.SignalPointSerializer(page, many=True).data)

    @extend_schema(
        responses={200: OpenApiResponse(OpenApiTypes.OBJECT, "full workspace of the signal point")}
    )
    @action(detail=True, url_path=r"signals/(?P<name>[^/]+)/workspace")
    def signal_workspace(self, request, pk=None, name=None):
        lh = self.get_object()
        data = canonical_bytes(services.patched_workspace(lh, name))
        return json_download(data, f"{name}.json", **{"X-Background-Digest": lh.background_digest})


class ValidateView(APIView):
    """Validate an uploaded submission; nothing is stored."""

    parser_classes = [MultiPartParser, FormParser]
    permission_classes = [permissions.AllowAny]

    @extend_schema(
        request={"multipart/form-data": s.ValidateSerializer}, responses={200: OpenApiTypes.OBJECT}
    )
    def post(self, request):
        refuse_oversized(request)
        files = request.FILES.getlist("file") or list(request.FILES.values())
        with saved_uploads(files) as paths:
            report, _ = services.validate_paths(paths)
        return Response(report.as_dict())


class SubmissionView(APIView):
    """Submit a likelihood bundle (token authentication; members of the collaboration)."""

    parser_classes = [MultiPartParser, FormParser]
    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(
        request={"multipart/form-data": s.SubmissionSerializer},
        responses={201: s.AnalysisDetailSerializer},
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

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request):
        from hepstore import search

        query = search.SearchQuery.from_params(request.query_params)
        return Response(search.search(query).as_dict())
