"""Reinterpretation API: results of archived points, custom signals, scans and jobs."""

from __future__ import annotations

import threading

from django.conf import settings
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from hepstore import points
from hepstore.api.parsers import StrictJSONParser
from hepstore.api.schema import errors, label_values_parameter
from hepstore.api.throttles import client_ident
from hepstore.converters import ID_REGEX
from hepstore.errors import NotFound
from hepstore.models import Likelihood
from hepstore.services import background_workspace
from reinterpret import contours, jobs, services
from reinterpret.api.filters import JobFilterSet
from reinterpret.api.serializers import (
    JobCreatedSerializer,
    JobSerializer,
    ReinterpretRequestSerializer,
    ScanRequestSerializer,
)
from reinterpret.errors import ReinterpretError
from reinterpret.models import Job, JobKind

TOKEN_HEADER = "X-Job-Token"
TOKEN_PARAMETERS = [
    OpenApiParameter(
        "token",
        str,
        description="the secret returned when an anonymous client created the job",
    ),
    OpenApiParameter(
        TOKEN_HEADER,
        str,
        location=OpenApiParameter.HEADER,
        description="the same secret as a header",
    ),
]
# Synchronous fits running at once in this process; more become jobs.
sync_fits = threading.BoundedSemaphore(settings.REINTERPRET_MAX_SYNC_FITS)


def job_token(request) -> str | None:
    return request.headers.get(TOKEN_HEADER) or request.query_params.get("token") or None


def job_owner(request):
    """The user a new job belongs to (None: anonymous, owned by the bearer of its token)."""
    return request.user if request.user.is_authenticated else None


def job_response(request, job: Job, code=status.HTTP_202_ACCEPTED) -> Response:
    body = JobSerializer(job, context={"request": request}).data
    token = getattr(job, "token", None)
    response = Response({**body, "token": token} if token else body, status=code)
    response["Location"] = body["url"]
    if token:
        response[TOKEN_HEADER] = token
    return response


class PointResultView(APIView):
    """CLs (observed, expected band), mu_hat and upper limits of an archived signal point;
    computed on the first request and cached by the digests of the inputs and the settings."""

    @extend_schema(
        responses={200: OpenApiResponse(OpenApiTypes.OBJECT, "CLs, mu_hat, limits, settings")}
    )
    def get(self, request, pk: int, name: str):
        likelihood = get_object_or_404(Likelihood, pk=pk)
        result, cached = services.archived_point_result(likelihood, name)
        response = Response({**result, "cached": cached})
        response["X-Cache"] = "hit" if cached else "miss"
        return response


class PointResultByValuesView(APIView):
    """The result of the archived point the label values name (?msb=1000&mn2=131&mn1=60):
    400 listing the candidates when several points match, 404 with the nearest when none."""

    @extend_schema(
        operation_id="likelihoods_signals_result_by_values",
        parameters=[label_values_parameter(required=True)],
        responses={200: OpenApiResponse(OpenApiTypes.OBJECT, "CLs, mu_hat, limits, settings")},
    )
    @errors(400)
    def get(self, request, pk: int):
        likelihood = get_object_or_404(Likelihood, pk=pk)
        point = points.resolve(likelihood, request.query_params)
        result, cached = services.archived_point_result(likelihood, point.name)
        response = Response({**result, "name": point.name, "cached": cached})
        response["X-Cache"] = "hit" if cached else "miss"
        return response


class ReinterpretView(APIView):
    """Evaluate your own signal: yields per channel and bin (or raw JSON Patch operations).
    A fit that fits the CPU-time budget answers at once (200); otherwise 202 with the job to
    poll (anonymous clients: keep the returned token)."""

    throttle_scope = "reinterpret"
    parser_classes = [StrictJSONParser]
    error_statuses = (422,)

    @extend_schema(
        request=ReinterpretRequestSerializer,
        responses={
            200: OpenApiResponse(OpenApiTypes.OBJECT, "the result (as for an archived point)"),
            202: JobCreatedSerializer,
        },
    )
    def post(self, request, pk: int):
        likelihood = get_object_or_404(Likelihood, pk=pk)
        if not isinstance(request.data, dict):
            raise ReinterpretError("the body must be a JSON object")
        bkg = background_workspace(likelihood)
        operations = services.custom_signal_patch(bkg, request.data)
        services.check_custom_workspace(services.apply_patch(bkg, operations))
        if services.fits_synchronously(likelihood) and sync_fits.acquire(blocking=False):
            try:
                result, cached = services.cached_evaluation(likelihood, operations, "custom")
            finally:
                sync_fits.release()
            return Response({**result, "cached": cached})
        job = jobs.submit(
            likelihood,
            JobKind.CUSTOM,
            {"patch": operations},
            owner=job_owner(request),
            client=client_ident(request),
        )
        return job_response(request, job)


class ScanView(APIView):
    """Evaluate every signal point (or the named ones, duplicates dropped) as a job with
    progress; its result is the per-point table and the exclusion contour in the plane of
    two labels."""

    throttle_scope = "scan"
    parser_classes = [StrictJSONParser]

    @extend_schema(request=ScanRequestSerializer, responses={202: JobCreatedSerializer})
    def post(self, request, pk: int):
        likelihood = get_object_or_404(Likelihood, pk=pk)
        body = ScanRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        params = dict(body.validated_data)
        if "points" in params:
            params["points"] = list(dict.fromkeys(params["points"]))
            names = set(
                likelihood.signals.filter(name__in=params["points"]).values_list("name", flat=True)
            )
            unknown = [n for n in params["points"] if n not in names]
            if unknown:
                raise NotFound(f"unknown signal points: {', '.join(unknown[:10])}")
        for axis in ("x", "y"):
            if axis in params and params[axis] not in likelihood.labels:
                raise ReinterpretError(
                    f"{axis}: {params[axis]!r} is not one of the labels {likelihood.labels}"
                )
        job = jobs.submit(
            likelihood,
            JobKind.SCAN,
            params,
            owner=job_owner(request),
            client=client_ident(request),
        )
        return job_response(request, job)


@extend_schema(parameters=TOKEN_PARAMETERS)
class JobViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Jobs are seen (with their parameters) and cancelled by their owner only: the user who
    made them, or the bearer of the token returned when they were made anonymously; staff
    see all. The list holds one's own jobs, newest first."""

    serializer_class = JobSerializer
    filterset_class = JobFilterSet
    lookup_value_regex = ID_REGEX

    def get_queryset(self):
        return Job.objects.visible_to(self.request.user, job_token(self.request)).order_by(
            "-created", "-id"
        )

    def get_object(self):
        try:
            return super().get_object()
        except Http404:
            raise NotFound(
                f"no job {self.kwargs['pk']} of yours: a job is shown to its owner only "
                f"(anonymous owners send the token returned at creation as {TOKEN_HEADER} "
                "or ?token=)"
            ) from None

    def retrieve(self, request, *args, **kwargs):
        return job_response(request, self.get_object(), status.HTTP_200_OK)

    @extend_schema(request=None, responses=JobSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        return job_response(request, jobs.cancel(self.get_object()), status.HTTP_200_OK)

    @extend_schema(
        responses={
            (200, "image/svg+xml"): OpenApiResponse(
                OpenApiTypes.BINARY, "the scan's grid coloured by CLs with its contours"
            )
        }
    )
    @action(detail=True, url_path="contour.svg", filter_backends=[], pagination_class=None)
    def contour(self, request, pk=None):
        """The scan's grid coloured by CLs with its observed and expected contours, as SVG."""
        job = self.get_object()
        if job.kind != JobKind.SCAN or not job.result or "contour" not in job.result:
            raise NotFound("the job has no contour (only a finished scan has one)")
        body = contours.svg(job.result["points"], job.result["contour"], job.result["labels"])
        return HttpResponse(body, content_type="image/svg+xml")
