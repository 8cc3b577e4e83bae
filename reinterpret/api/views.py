"""Reinterpretation API: results of archived points, custom signals, scans and jobs."""

from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.decorators import api_view
from rest_framework.response import Response

from hepstore.errors import NotFound
from hepstore.models import Likelihood
from hepstore.services import background_workspace
from reinterpret import contours, figures, jobs, plots, points, services
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


DETAIL_PARAMETER = OpenApiParameter(
    "detail",
    str,
    enum=["fit"],
    description="fit: add the fit detail (pre/post-fit yields per sample with the "
    "prediction's uncertainty per bin, every parameter's constraint, fitted value and error)",
)


def _point(pk: int, name: str | None = None, digest: str | None = None) -> points.Point:
    likelihood = get_object_or_404(Likelihood.objects.select_related("version__analysis"), pk=pk)
    return points.Point(likelihood, name=name, digest=digest)


def _point_result(request, point: points.Point) -> Response:
    result, cached = point.result()
    body = {**result, "cached": cached}
    if request.query_params.get("detail") == "fit":
        body["fit"] = point.fit()
    response = Response(body)
    response["X-Cache"] = "hit" if cached else "miss"
    return response


@extend_schema(parameters=[DETAIL_PARAMETER], responses={200: OpenApiTypes.OBJECT})
@api_view(["GET"])
def point_result(request, pk: int, name: str):
    """CLs (observed, expected band), mu_hat and upper limits of an archived signal point;
    computed on the first request and cached by the digests of the inputs and the settings."""
    return _point_result(request, _point(pk, name=name))


@extend_schema(parameters=[DETAIL_PARAMETER], responses={200: OpenApiTypes.OBJECT})
@api_view(["GET"])
def custom_result(request, pk: int, digest: str):
    """The result of a custom signal evaluated before (digest: its patch_sha256)."""
    return _point_result(request, _point(pk, digest=digest))


FIGURE_PARAMETERS = [
    OpenApiParameter("channel", str, description="yields: the channel (default: the first)"),
    OpenApiParameter("stage", str, enum=["prefit", "postfit"], description="yields: the stage"),
]


def _point_figure(request, point: points.Point, kind: str, fmt: str) -> HttpResponse:
    body = point.figure(
        kind,
        fmt,
        channel=request.query_params.get("channel"),
        stage=request.query_params.get("stage", "postfit"),
    )
    return _download(body, plots.FORMATS[fmt], f"{kind}.{fmt}")


@extend_schema(
    parameters=FIGURE_PARAMETERS, responses={(200, "image/svg+xml"): OpenApiTypes.BINARY}
)
@api_view(["GET"])
def point_figure(request, pk: int, name: str, kind: str, fmt: str):
    """Yields of a channel before or after the fit (stacked samples, data with error bars, the
    prediction's uncertainty band), or the pulls of the fitted parameters; SVG, PNG or PDF."""
    return _point_figure(request, _point(pk, name=name), kind, fmt)


@extend_schema(
    parameters=FIGURE_PARAMETERS, responses={(200, "image/svg+xml"): OpenApiTypes.BINARY}
)
@api_view(["GET"])
def custom_figure(request, pk: int, digest: str, kind: str, fmt: str):
    """The yields and pulls figures of a custom signal evaluated before."""
    return _point_figure(request, _point(pk, digest=digest), kind, fmt)


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
    channel_set = (
        services.likelihood_channel_set(likelihood, bkg) if "signal" in request.data else None
    )
    operations = services.custom_signal_patch(bkg, request.data, channel_set)
    services.apply_patch(bkg, operations)  # fail fast on operations that do not apply
    digest = services.store_patch(operations)
    view = {
        "patch_sha256": digest,
        "page": request.build_absolute_uri(f"/likelihoods/{likelihood.pk}/custom/{digest}/"),
    }
    if channel_set is not None:
        view["channels"] = {k: channel_set[k] for k in ("removed", "added", "note")}
    if services.is_small(likelihood):
        result, cached = services.cached_evaluation(likelihood, operations, "custom")
        return Response({**result, **view, "cached": cached})
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
    if params.get("fixed"):
        x, y = contours.axes(likelihood.labels, params.get("x"), params.get("y"))
        contours.check_fixed(likelihood.labels, x, y, params["fixed"])
        candidates = likelihood.signals.all()
        if params.get("points"):
            candidates = candidates.filter(name__in=params["points"])
        if not any(
            contours.in_slice(likelihood.labels, v, params["fixed"])
            for v in candidates.values_list("values", flat=True)
        ):
            raise NotFound(f"no signal point in the slice {params['fixed']}")
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


SLICE_PARAMETERS = [
    OpenApiParameter("x", str, description="label on the x axis (default: the scan's)"),
    OpenApiParameter("y", str, description="label on the y axis (default: the scan's)"),
    OpenApiParameter(
        "LABEL",
        str,
        description="any other label name = a value: the slice (default: the scan's, or the "
        "most populated one), e.g. ?mn1=60",
    ),
]


def _scan_job(pk: int) -> Job:
    job = get_object_or_404(Job.objects.select_related("likelihood__version__analysis"), pk=pk)
    if job.kind != JobKind.SCAN:
        raise NotFound(f"job {pk} is not a scan")
    return job


def _download(body: bytes | str, content_type: str, filename: str) -> HttpResponse:
    response = HttpResponse(body, content_type=content_type)
    response["Content-Disposition"] = f'inline; filename="{filename}"'
    return response


@extend_schema(parameters=SLICE_PARAMETERS, responses={(200, "image/svg+xml"): OpenApiTypes.BINARY})
@api_view(["GET"])
def job_figure(request, pk: int, kind: str, fmt: str):
    """The scan's exclusion plot (observed line, expected dashed with its ±1σ band, ±2σ,
    points coloured by CLs) or its map of observed and expected upper limits on mu, as SVG,
    PNG or PDF, in a plane and slice of the grid."""
    job = _scan_job(pk)
    body = figures.scan_figure(job, kind, fmt, request.query_params)
    return _download(body, plots.FORMATS[fmt], f"job{pk}-{kind}.{fmt}")


@extend_schema(parameters=SLICE_PARAMETERS, responses={200: OpenApiTypes.OBJECT})
@api_view(["GET"])
def job_contour(request, pk: int, fmt: str):
    """The scan's CLs = 0.05 contours as polylines: JSON {"x_label", "y_label", "fixed",
    "level", "curves": {curve: [[[x, y], ...] per line]}, "slices"} or CSV (curve, line,
    point, x, y); curves observed, expected, expected_{minus,plus}_{1,2}sigma."""
    job = _scan_job(pk)
    contour, _ = figures.scan_slice(job, request.query_params)
    if fmt == "csv":
        return _download(contours.contour_csv(contour), "text/csv", f"job{pk}-contour.csv")
    return Response(contour)


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
