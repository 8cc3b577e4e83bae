"""Combinations API: create, list, see, validate; results per combined point with provenance
and each member alone; custom signals per member; whole-grid scans as jobs."""

from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import api_view
from rest_framework.response import Response

from hepstore.api.throttles import client_ident
from hepstore.errors import NotFound
from reinterpret import combination_services as cs
from reinterpret import contours, jobs, plots
from reinterpret.api.serializers import JobSerializer, ScanRequestSerializer
from reinterpret.api.views import job_owner, job_response
from reinterpret.errors import ReinterpretError
from reinterpret.models import Combination, Job, JobKind


class MemberSerializer(serializers.Serializer):
    likelihood = serializers.IntegerField()
    tag = serializers.CharField(required=False, help_text="default L<likelihood id>")
    measurement = serializers.CharField(required=False, help_text="default: the first")


class CombinationRequestSerializer(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField(required=False)
    members = MemberSerializer(many=True)
    policy = serializers.DictField(
        required=False,
        help_text="{decorrelate: [names], correlate_only: [names] | null, renames: [{old, new, "
        "member}], prefer: [{member, parameter}], measurement_name}",
    )
    label_map = serializers.DictField(
        required=False, help_text="{member tag: {member label: combination label}}"
    )


class CustomCombinationSerializer(serializers.Serializer):
    members = serializers.DictField(
        help_text="{tag: {'signal': {channel: [yields]}, 'modifiers': [...]} or {'patch': [...]}}"
    )


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
        scans = combination.jobs.filter(kind=JobKind.COMBINATION_SCAN).order_by("-created", "-id")
        latest = scans.first()
        body["latest_scan"] = (
            JobSerializer(latest, context={"request": request}).data if latest else None
        )
    return body


@extend_schema(
    methods=["POST"],
    request=CombinationRequestSerializer,
    responses={201: OpenApiTypes.OBJECT},
    operation_id="combinations_create",
)
@extend_schema(
    methods=["GET"], responses={200: OpenApiTypes.OBJECT}, operation_id="combinations_list"
)
@api_view(["GET", "POST"])
def combination_list(request):
    """GET: the stored combinations (newest first). POST: create one; refused (422) with every
    clash and its pointer unless the members combine under the policy."""
    if request.method == "POST":
        combination, report = cs.create(request.data)
        body = describe(combination, request)
        body["report"] = report
        return Response(body, status=status.HTTP_201_CREATED)
    page = Combination.objects.all()[:100]
    return Response({"results": [describe(c, request) for c in page]})


@extend_schema(request=CombinationRequestSerializer, responses={200: OpenApiTypes.OBJECT})
@api_view(["POST"])
def combination_validate(request):
    """The validation report of a would-be combination (nothing is stored): every clash with
    its member, pointer and message, and the combined grid's size."""
    _, members, policy, label_map = cs.read_definition(request.data)
    return Response(cs.check(members, policy, label_map))


@extend_schema(responses={200: OpenApiTypes.OBJECT})
@api_view(["GET"])
def combination_detail(request, pk: int):
    """Members, policy, the validation report and the latest scan."""
    combination = get_object_or_404(Combination, pk=pk)
    return Response(describe(combination, request, with_report=True))


@extend_schema(responses={200: OpenApiTypes.OBJECT})
@api_view(["GET"])
def combination_points(request, pk: int):
    """The combined signal grid: per point, which member point goes in (null: background
    only)."""
    combination = get_object_or_404(Combination, pk=pk)
    labels, points = cs.grid(combination)
    return Response({"labels": labels, "points": [p.as_dict() for p in points]})


@extend_schema(responses={200: OpenApiTypes.OBJECT})
@api_view(["GET"])
def combination_point_result(request, pk: int, name: str):
    """CLs (observed, expected band), mu_hat and upper limits of a combined point, cached by
    every member's digests and the policy; with the member points that went in, each member
    alone and the best-expected member."""
    combination = get_object_or_404(Combination, pk=pk)
    result, cached = cs.point_result(combination, name)
    response = Response({**result, "cached": cached})
    response["X-Cache"] = "hit" if cached else "miss"
    return response


@extend_schema(
    request=CustomCombinationSerializer,
    responses={200: OpenApiTypes.OBJECT, 202: JobSerializer},
)
@api_view(["POST"])
def combination_reinterpret(request, pk: int):
    """Your own signal, with yields per member (members left out: background only). Small
    combinations answer at once; otherwise 202 with the job to poll."""
    combination = get_object_or_404(Combination, pk=pk)
    operations = cs.custom_operations(combination, request.data)
    if cs.is_small(combination):
        result, cached = cs.custom_result(combination, operations)
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


@extend_schema(request=ScanRequestSerializer, responses={202: JobSerializer})
@api_view(["POST"])
def combination_scan(request, pk: int):
    """Every combined point (or the named ones) as a job; its result is the per-point table
    (with each point's member provenance) and the exclusion contour."""
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
            raise ReinterpretError(f"{axis}: {params[axis]!r} is not one of the labels {labels}")
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


@extend_schema(responses={200: OpenApiTypes.STR})
@api_view(["GET"])
def combination_contour_svg(request, pk: int, job: int):
    """A finished scan's grid coloured by CLs with its contours, as SVG."""
    scan = get_object_or_404(Job, pk=job, combination_id=pk, kind=JobKind.COMBINATION_SCAN)
    if not scan.result or "contour" not in scan.result:
        raise NotFound("the scan has no contour (yet)")
    contour, labels = scan.result["contour"], scan.result["labels"]
    shown = [
        p
        for p in scan.result["points"]
        if p.get("values") and contours.in_slice(labels, p["values"], contour.get("fixed") or {})
    ]
    title = f"combination {scan.combination.name}"[:80]
    body = plots.exclusion_plot(contour, shown, labels, "svg", title=title)
    return HttpResponse(body, content_type="image/svg+xml")
