"""Combinations API: create, list, see, validate; results per combined point with provenance
and each member alone; custom signals per member; whole-grid scans as jobs."""

from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from hepstore.api.parsers import StrictJSONParser
from hepstore.api.schema import errors
from hepstore.api.throttles import client_ident
from hepstore.errors import NotFound
from reinterpret import combination_services as cs
from reinterpret import contours, jobs, plots
from reinterpret.api.serializers import (
    CombinationCreatedSerializer,
    CombinationDetailSerializer,
    CombinationRequestSerializer,
    CombinationSerializer,
    CustomCombinationSerializer,
    JobCreatedSerializer,
    JobSerializer,
    ScanRequestSerializer,
)
from reinterpret.api.views import job_owner, job_response, job_token, sync_fits
from reinterpret.errors import ReinterpretError
from reinterpret.models import Combination, Job, JobKind


def describe(combination: Combination, request=None, with_report: bool = False) -> dict:
    members = cs.members_of(combination)
    body = {
        "id": combination.pk,
        "url": f"/api/v1/combinations/{combination.pk}",
        "page": combination.get_absolute_url(),
        "name": combination.name,
        "description": combination.description,
        "created": combination.created,
        "members": [
            {
                "tag": m.tag,
                "likelihood": m.likelihood.pk,
                "region": m.likelihood.region,
                "analysis": m.likelihood.version.analysis.title,
                "version": m.likelihood.version.number,
                "measurement": m.measurement or None,
                "background_digest": m.likelihood.background_digest,
            }
            for m in members
        ],
        "policy": combination.policy,
        "label_map": combination.label_map,
    }
    if with_report:
        body["report"] = cs.check(
            [(m.likelihood, m.tag, m.measurement) for m in members],
            cs.Policy.from_dict(combination.policy),
            combination.label_map,
        )
        # Jobs are shown to their owners only (a user, or the bearer of an anonymous job's
        # token): the latest scan this requester may see.
        scans = combination.jobs.filter(kind=JobKind.COMBINATION_SCAN).visible_to(
            request.user, job_token(request)
        )
        latest = scans.order_by("-created", "-id").first()
        body["latest_scan"] = (
            JobSerializer(latest, context={"request": request}).data if latest else None
        )
    return body


class CombinationListView(GenericAPIView):
    """GET: the stored combinations, newest first (paged). POST: create one; refused (422)
    with every clash and its pointer unless the members combine under the policy."""

    queryset = Combination.objects.order_by("-created", "-id")
    # What POST reads (also what OPTIONS describes); GET answers describe() of each.
    serializer_class = CombinationRequestSerializer
    parser_classes = [StrictJSONParser]
    filter_backends = []
    throttle_scope = "submissions"
    throttled_methods = ("POST",)

    @extend_schema(responses=CombinationSerializer(many=True), operation_id="combinations_list")
    def get(self, request):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response([describe(c, request) for c in page])

    @extend_schema(
        request=CombinationRequestSerializer,
        responses={201: CombinationCreatedSerializer},
        operation_id="combinations_create",
    )
    @errors(422)
    def post(self, request):
        body = self.get_serializer(data=request.data)
        body.is_valid(raise_exception=True)
        combination, report = cs.create(body.validated_data)
        created = describe(combination, request)
        created["report"] = report
        return Response(created, status=status.HTTP_201_CREATED)


class CombinationValidateView(APIView):
    """The validation report of a would-be combination (nothing is stored): every clash with
    its member, pointer and message, and the combined grid's size. Likelihoods that do not
    exist and unusable policies are a 422."""

    parser_classes = [StrictJSONParser]
    throttle_scope = "validate"
    error_statuses = (422,)

    @extend_schema(
        request=CombinationRequestSerializer,
        responses={200: OpenApiResponse(OpenApiTypes.OBJECT, "the validation report")},
    )
    def post(self, request):
        body = CombinationRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        _, members, policy, label_map = cs.read_definition(body.validated_data)
        return Response(cs.check(members, policy, label_map))


class CombinationDetailView(APIView):
    """Members, policy, the validation report and the latest scan."""

    @extend_schema(responses={200: CombinationDetailSerializer})
    def get(self, request, pk: int):
        combination = get_object_or_404(Combination, pk=pk)
        return Response(describe(combination, request, with_report=True))


class CombinationPointsView(APIView):
    """The combined signal grid: per point, which member point goes in (null: background
    only)."""

    @extend_schema(
        responses={200: OpenApiResponse(OpenApiTypes.OBJECT, "labels and combined points")}
    )
    def get(self, request, pk: int):
        combination = get_object_or_404(Combination, pk=pk)
        labels, points = cs.grid(combination)
        return Response({"labels": labels, "points": [p.as_dict() for p in points]})


class CombinationPointResultView(APIView):
    """CLs (observed, expected band), mu_hat and upper limits of a combined point, cached by
    every member's digests and the policy; with the member points that went in, each member
    alone and the best-expected member."""

    error_statuses = (422,)

    @extend_schema(
        responses={200: OpenApiResponse(OpenApiTypes.OBJECT, "CLs, mu_hat, limits, provenance")}
    )
    def get(self, request, pk: int, name: str):
        combination = get_object_or_404(Combination, pk=pk)
        result, cached = cs.point_result(combination, name)
        response = Response({**result, "cached": cached})
        response["X-Cache"] = "hit" if cached else "miss"
        return response


class CombinationReinterpretView(APIView):
    """Your own signal, with yields per member (members left out: background only). Small
    combinations answer at once while a synchronous fit is free; otherwise 202 with the job
    to poll (anonymous clients: keep the returned token)."""

    parser_classes = [StrictJSONParser]
    throttle_scope = "reinterpret"
    error_statuses = (422,)

    @extend_schema(
        request=CustomCombinationSerializer,
        responses={
            200: OpenApiResponse(OpenApiTypes.OBJECT, "the result (as for a combined point)"),
            202: JobCreatedSerializer,
        },
    )
    def post(self, request, pk: int):
        combination = get_object_or_404(Combination, pk=pk)
        body = CustomCombinationSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        operations = cs.custom_operations(combination, body.validated_data)
        if cs.is_small(combination) and sync_fits.acquire(blocking=False):
            try:
                result, cached = cs.custom_result(combination, operations)
            finally:
                sync_fits.release()
            return Response({**result, "cached": cached})
        job = jobs.submit(
            None,
            JobKind.COMBINATION_CUSTOM,
            {"operations": operations},
            owner=job_owner(request),
            client=client_ident(request),
            combination=combination,
        )
        return job_response(request, job)


class CombinationScanView(APIView):
    """Every combined point (or the named ones, duplicates dropped) as a job; its result is
    the per-point table (with each point's member provenance) and the exclusion contour."""

    parser_classes = [StrictJSONParser]
    throttle_scope = "scan"

    @extend_schema(request=ScanRequestSerializer, responses={202: JobCreatedSerializer})
    def post(self, request, pk: int):
        combination = get_object_or_404(Combination, pk=pk)
        body = ScanRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        params = dict(body.validated_data)
        if "points" in params:
            params["points"] = list(dict.fromkeys(params["points"]))
        labels, points = cs.grid(combination)
        names = {p.name for p in points}
        unknown = [n for n in params.get("points", []) if n not in names]
        if unknown:
            raise NotFound(f"unknown combined points: {', '.join(unknown[:10])}")
        for axis in ("x", "y"):
            if axis in params and params[axis] not in labels:
                raise ReinterpretError(
                    f"{axis}: {params[axis]!r} is not one of the labels {labels}"
                )
        if params.get("fixed"):
            x, y = contours.axes(labels, params.get("x"), params.get("y"))
            contours.check_fixed(labels, x, y, params["fixed"])
        job = jobs.submit(
            None,
            JobKind.COMBINATION_SCAN,
            params,
            owner=job_owner(request),
            client=client_ident(request),
            combination=combination,
        )
        return job_response(request, job)


class CombinationContourView(APIView):
    """A finished scan's grid coloured by CLs with its contours, as SVG."""

    @extend_schema(
        parameters=[OpenApiParameter("job", int, location=OpenApiParameter.PATH)],
        responses={
            (200, "image/svg+xml"): OpenApiResponse(
                OpenApiTypes.BINARY, "the scan's grid coloured by CLs with its contours"
            )
        },
    )
    def get(self, request, pk: int, job: int):
        visible = Job.objects.visible_to(request.user, job_token(request))
        scan = get_object_or_404(visible, pk=job, combination_id=pk, kind=JobKind.COMBINATION_SCAN)
        if not scan.result or "contour" not in scan.result:
            raise NotFound("the scan has no contour (yet)")
        contour, labels = scan.result["contour"], scan.result["labels"]
        shown = [
            p
            for p in scan.result["points"]
            if p.get("values")
            and contours.in_slice(labels, p["values"], contour.get("fixed") or {})
        ]
        title = f"combination {scan.combination.name}"[:80]
        body = plots.exclusion_plot(contour, shown, labels, "svg", title=title)
        return HttpResponse(body, content_type="image/svg+xml")
