"""Reinterpretation API: results of archived points, custom signals, scans and jobs."""

from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.decorators import api_view
from rest_framework.response import Response

from hepstore import points
from hepstore.errors import NotFound
from hepstore.models import Likelihood
from hepstore.services import background_workspace
from reinterpret import contours, jobs, services
from reinterpret.api.serializers import (
    JobSerializer,
    ReinterpretRequestSerializer,
    ScanRequestSerializer,
)
from reinterpret.errors import ReinterpretError
from reinterpret.models import Job, JobKind


def _job_response(request, job: Job, code=status.HTTP_202_ACCEPTED) -> Response:
    body = JobSerializer(job, context={"request": request}).data
    response = Response(body, status=code)
    response["Location"] = body["url"]
    return response


@extend_schema(responses={200: OpenApiTypes.OBJECT})
@api_view(["GET"])
def point_result(request, pk: int, name: str):
    """CLs (observed, expected band), mu_hat and upper limits of an archived signal point;
    computed on the first request and cached by the digests of the inputs and the settings."""
    likelihood = get_object_or_404(Likelihood, pk=pk)
    result, cached = services.archived_point_result(likelihood, name)
    response = Response({**result, "cached": cached})
    response["X-Cache"] = "hit" if cached else "miss"
    return response


@extend_schema(
    operation_id="likelihoods_signals_result_by_values",
    parameters=[
        OpenApiParameter("<label>", str, description="a label's value, e.g. msb=1000 (each label)")
    ],
    responses={200: OpenApiTypes.OBJECT},
)
@api_view(["GET"])
def point_result_by_values(request, pk: int):
    """The result of the archived point the label values name (?msb=1000&mn2=131&mn1=60):
    400 listing the candidates when several points match, 404 with the nearest when none."""
    likelihood = get_object_or_404(Likelihood, pk=pk)
    point = points.resolve(likelihood, request.query_params)
    result, cached = services.archived_point_result(likelihood, point.name)
    response = Response({**result, "name": point.name, "cached": cached})
    response["X-Cache"] = "hit" if cached else "miss"
    return response


@extend_schema(
    request=ReinterpretRequestSerializer, responses={200: OpenApiTypes.OBJECT, 202: JobSerializer}
)
@api_view(["POST"])
def reinterpret(request, pk: int):
    """Evaluate your own signal: yields per channel and bin (or raw JSON Patch operations).
    Small models answer at once; otherwise 202 with the job to poll."""
    likelihood = get_object_or_404(Likelihood, pk=pk)
    if not isinstance(request.data, dict):
        raise ReinterpretError("the body must be a JSON object")
    bkg = background_workspace(likelihood)
    operations = services.custom_signal_patch(bkg, request.data)
    services.apply_patch(bkg, operations)  # fail fast on operations that do not apply
    if services.is_small(likelihood):
        result, cached = services.cached_evaluation(likelihood, operations, "custom")
        return Response({**result, "cached": cached})
    job = jobs.submit(likelihood, JobKind.CUSTOM, {"patch": operations})
    return _job_response(request, job)


@extend_schema(request=ScanRequestSerializer, responses={202: JobSerializer})
@api_view(["POST"])
def scan(request, pk: int):
    """Evaluate every signal point (or the named ones) as a job with progress; its result is
    the per-point table and the exclusion contour in the plane of two labels."""
    likelihood = get_object_or_404(Likelihood, pk=pk)
    body = ScanRequestSerializer(data=request.data)
    body.is_valid(raise_exception=True)
    params = dict(body.validated_data)
    names = set(likelihood.signals.values_list("name", flat=True))
    unknown = [n for n in params.get("points", []) if n not in names]
    if unknown:
        raise NotFound(f"unknown signal points: {', '.join(unknown[:10])}")
    for axis in ("x", "y"):
        if axis in params and params[axis] not in likelihood.labels:
            raise ReinterpretError(
                f"{axis}: {params[axis]!r} is not one of the labels {likelihood.labels}"
            )
    job = jobs.submit(likelihood, JobKind.SCAN, params)
    return _job_response(request, job)


@extend_schema(responses=JobSerializer)
@api_view(["GET"])
def job_detail(request, pk: int):
    return _job_response(request, get_object_or_404(Job, pk=pk), status.HTTP_200_OK)


@extend_schema(request=None, responses=JobSerializer)
@api_view(["POST"])
def job_cancel(request, pk: int):
    return _job_response(request, jobs.cancel(get_object_or_404(Job, pk=pk)), status.HTTP_200_OK)


@extend_schema(responses={200: OpenApiTypes.STR})
@api_view(["GET"])
def job_contour_svg(request, pk: int):
    """The scan's grid coloured by CLs with its observed and expected contours, as SVG."""
    job = get_object_or_404(Job, pk=pk, kind=JobKind.SCAN)
    if not job.result or "contour" not in job.result:
        raise NotFound("the scan has no contour (yet)")
    body = contours.svg(job.result["points"], job.result["contour"], job.result["labels"])
    return HttpResponse(body, content_type="image/svg+xml")


@extend_schema(responses=JobSerializer(many=True))
@api_view(["GET"])
def job_list(request):
    """Recent jobs, filtered by ?likelihood=ID, ?kind=scan|custom and ?state=..."""
    jobs_ = Job.objects.order_by("-created", "-id")
    for field in ("likelihood", "kind", "state"):
        value = request.query_params.get(field)
        if value:
            jobs_ = jobs_.filter(**{f"{field}_id" if field == "likelihood" else field: value})
    body = JobSerializer(jobs_[:20], many=True, context={"request": request}).data
    return Response({"results": body})
