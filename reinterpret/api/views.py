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
from reinterpret import contours, figures, jobs, plots, services
from reinterpret import points as point_views
from reinterpret.api.filters import JobFilterSet
from reinterpret.api.serializers import (
    CustomJobCreatedSerializer,
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


def job_response(request, job: Job, code=status.HTTP_202_ACCEPTED, **extra) -> Response:
    body = {**JobSerializer(job, context={"request": request}).data, **extra}
    token = getattr(job, "token", None)
    response = Response({**body, "token": token} if token else body, status=code)
    response["Location"] = body["url"]
    if token:
        response[TOKEN_HEADER] = token
    return response


DETAIL_PARAMETER = OpenApiParameter(
    "detail",
    str,
    enum=["fit"],
    description="fit: add the fit detail (pre/post-fit yields per sample with the "
    "prediction's uncertainty per bin, every parameter's constraint, fitted value and error)",
)
FIGURE_PARAMETERS = [
    OpenApiParameter("channel", str, description="yields: the channel (default: the first)"),
    OpenApiParameter("stage", str, enum=["prefit", "postfit"], description="yields: the stage"),
]
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
FIGURE_RESPONSES = {
    (200, "image/svg+xml"): OpenApiResponse(OpenApiTypes.BINARY, "SVG"),
    (200, "image/png"): OpenApiResponse(OpenApiTypes.BINARY, "PNG"),
    (200, "application/pdf"): OpenApiResponse(OpenApiTypes.BINARY, "PDF"),
}


def _point(pk: int, name: str | None = None, digest: str | None = None) -> point_views.Point:
    likelihood = get_object_or_404(Likelihood.objects.select_related("version__analysis"), pk=pk)
    return point_views.Point(likelihood, name=name, digest=digest)


def _point_result(request, point: point_views.Point) -> Response:
    detail = request.query_params.get("detail")
    if detail not in (None, "fit"):
        raise ReinterpretError(f"detail: {detail!r} is not 'fit'")
    result, cached = point.result()
    body = {**result, "cached": cached}
    if detail == "fit":
        body["fit"] = point.fit()
    response = Response(body)
    response["X-Cache"] = "hit" if cached else "miss"
    return response


def _download(body: bytes | str, content_type: str, filename: str) -> HttpResponse:
    response = HttpResponse(body, content_type=content_type)
    response["Content-Disposition"] = f'inline; filename="{filename}"'
    return response


def _point_figure(request, point: point_views.Point, kind: str, fmt: str) -> HttpResponse:
    body = point.figure(
        kind,
        fmt,
        channel=request.query_params.get("channel"),
        stage=request.query_params.get("stage", "postfit"),
    )
    return _download(body, plots.FORMATS[fmt], f"{kind}.{fmt}")


class PointResultView(APIView):
    """CLs (observed, expected band), mu_hat and upper limits of an archived signal point;
    computed on the first request and cached by the digests of the inputs and the settings."""

    error_statuses = (400,)

    @extend_schema(
        parameters=[DETAIL_PARAMETER],
        responses={200: OpenApiResponse(OpenApiTypes.OBJECT, "CLs, mu_hat, limits, settings")},
    )
    def get(self, request, pk: int, name: str):
        return _point_result(request, _point(pk, name=name))


class CustomResultView(APIView):
    """The result of a custom signal evaluated before (digest: its patch_sha256)."""

    error_statuses = (400,)

    @extend_schema(
        parameters=[DETAIL_PARAMETER],
        responses={200: OpenApiResponse(OpenApiTypes.OBJECT, "CLs, mu_hat, limits, settings")},
    )
    def get(self, request, pk: int, digest: str):
        return _point_result(request, _point(pk, digest=digest))


class PointFigureView(APIView):
    """Yields of a channel before or after the fit (stacked samples, data with error bars, the
    prediction's uncertainty band), or the pulls of the fitted parameters; SVG, PNG or PDF."""

    error_statuses = (400,)

    @extend_schema(parameters=FIGURE_PARAMETERS, responses=FIGURE_RESPONSES)
    def get(self, request, pk: int, name: str, kind: str, fmt: str):
        return _point_figure(request, _point(pk, name=name), kind, fmt)


class CustomFigureView(APIView):
    """The yields and pulls figures of a custom signal evaluated before."""

    error_statuses = (400,)

    @extend_schema(parameters=FIGURE_PARAMETERS, responses=FIGURE_RESPONSES)
    def get(self, request, pk: int, digest: str, kind: str, fmt: str):
        return _point_figure(request, _point(pk, digest=digest), kind, fmt)


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
            202: CustomJobCreatedSerializer,
        },
    )
    def post(self, request, pk: int):
        likelihood = get_object_or_404(Likelihood, pk=pk)
        if not isinstance(request.data, dict):
            raise ReinterpretError("the body must be a JSON object")
        bkg = background_workspace(likelihood)
        channel_set = (
            services.likelihood_channel_set(likelihood, bkg) if "signal" in request.data else None
        )
        operations = services.custom_signal_patch(bkg, request.data, channel_set)
        services.check_custom_workspace(services.apply_patch(bkg, operations))
        digest = services.store_patch(operations)
        view = {
            "patch_sha256": digest,
            "page": request.build_absolute_uri(f"/likelihoods/{likelihood.pk}/custom/{digest}/"),
        }
        if channel_set is not None:
            view["channels"] = {k: channel_set[k] for k in ("removed", "added", "note")}
        if services.fits_synchronously(likelihood) and sync_fits.acquire(blocking=False):
            try:
                result, cached = services.cached_evaluation(likelihood, operations, "custom")
            finally:
                sync_fits.release()
            return Response({**result, **view, "cached": cached})
        job = jobs.submit(
            likelihood,
            JobKind.CUSTOM,
            {"patch": operations},
            owner=job_owner(request),
            client=client_ident(request),
        )
        # The same description of the custom workspace as the immediate answer has.
        return job_response(request, job, **view)


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
    # The figure and contour actions add 400 (a plane or slice the scan does not have).
    error_statuses: tuple[int, ...] = ()

    def get_queryset(self):
        visible = Job.objects.visible_to(self.request.user, job_token(self.request))
        return visible.select_related("likelihood__version__analysis").order_by("-created", "-id")

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
        job = self.get_object()
        jobs.look_after(job)
        return job_response(request, job, status.HTTP_200_OK)

    @extend_schema(request=None, responses=JobSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        return job_response(request, jobs.cancel(self.get_object()), status.HTTP_200_OK)

    def _scan(self) -> Job:
        job = self.get_object()
        if job.kind != JobKind.SCAN:
            raise NotFound(f"job {job.pk} is not a scan")
        return job

    @extend_schema(parameters=SLICE_PARAMETERS, responses=FIGURE_RESPONSES)
    @action(
        detail=True,
        url_path=r"exclusion\.(?P<fmt>svg|png|pdf)",
        url_name="exclusion",
        filter_backends=[],
        pagination_class=None,
        error_statuses=(400,),
    )
    def exclusion(self, request, pk=None, fmt="svg"):
        """The scan's exclusion plot (observed line, expected dashed with its ±1σ band, ±2σ,
        points coloured by CLs) as SVG, PNG or PDF, in a plane and slice of the grid."""
        body = figures.scan_figure(self._scan(), "exclusion", fmt, request.query_params)
        return _download(body, plots.FORMATS[fmt], f"job{pk}-exclusion.{fmt}")

    @extend_schema(parameters=SLICE_PARAMETERS, responses=FIGURE_RESPONSES)
    @action(
        detail=True,
        url_path=r"upper-limits\.(?P<fmt>svg|png|pdf)",
        url_name="upper-limits",
        filter_backends=[],
        pagination_class=None,
        error_statuses=(400,),
    )
    def upper_limits(self, request, pk=None, fmt="svg"):
        """The scan's map of observed and expected upper limits on mu (scans with
        upper_limit), as SVG, PNG or PDF, in a plane and slice of the grid."""
        body = figures.scan_figure(self._scan(), "upper-limits", fmt, request.query_params)
        return _download(body, plots.FORMATS[fmt], f"job{pk}-upper-limits.{fmt}")

    @extend_schema(
        parameters=SLICE_PARAMETERS,
        responses={
            (200, "application/json"): OpenApiResponse(OpenApiTypes.OBJECT, "the contours"),
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, "curve, line, point, x, y"),
        },
    )
    @action(
        detail=True,
        url_path=r"contour\.(?P<fmt>json|csv)",
        url_name="contour-data",
        filter_backends=[],
        pagination_class=None,
        error_statuses=(400,),
    )
    def contour_data(self, request, pk=None, fmt="json"):
        """The scan's CLs = 0.05 contours as polylines: JSON {"x_label", "y_label", "fixed",
        "level", "curves": {curve: [[[x, y], ...] per line]}, "slices"} or CSV (curve, line,
        point, x, y); curves observed, expected, expected_{minus,plus}_{1,2}sigma."""
        contour, _ = figures.scan_slice(self._scan(), request.query_params)
        if fmt == "csv":
            return _download(contours.contour_csv(contour), "text/csv", f"job{pk}-contour.csv")
        return Response(contour)

    @extend_schema(
        responses={
            (200, "image/svg+xml"): OpenApiResponse(
                OpenApiTypes.BINARY, "the scan's exclusion plot (as exclusion.svg)"
            )
        }
    )
    @action(detail=True, url_path="contour.svg", filter_backends=[], pagination_class=None)
    def contour(self, request, pk=None):
        """The scan's exclusion plot as SVG (the same figure as exclusion.svg)."""
        job = self.get_object()
        if job.kind != JobKind.SCAN or not job.result or "contour" not in job.result:
            raise NotFound("the job has no contour (only a finished scan has one)")
        body = figures.scan_figure(job, "exclusion", "svg", request.query_params)
        return HttpResponse(body, content_type="image/svg+xml")
