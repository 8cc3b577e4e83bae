"""Stored combinations: create and validate them, build the combined workspace of any point,
evaluate points (cached by every member's digests and the policy) side by side with each
member alone, custom signals with yields per member, and whole-grid scans as jobs."""

from __future__ import annotations

import logging
import time

from django.db import transaction

from hepstore import blobs
from hepstore.errors import NotFound
from hepstore.jsonio import canonical_sha256
from hepstore.models import Likelihood
from reinterpret import services
from reinterpret.combinations import MemberSignals, combined_grid, evaluation_points
from reinterpret.errors import ReinterpretError
from reinterpret.fitter.combine import Combiner, Member, Policy
from reinterpret.fitter.combine_points import CombinedPoint
from reinterpret.fitter.combine_policy import TAG_PATTERN, CombinationError
from reinterpret.models import Combination, CombinationMember, CombinedResult

log = logging.getLogger(__name__)


class CombinationInvalid(ReinterpretError):
    code = "invalid_combination"
    status = 422


def _problem(pointer: str, message: str) -> dict:
    return {"file": "request", "pointer": pointer, "severity": "error", "message": message}


# --------------------------------------------------------------------------- definition
def read_definition(data) -> tuple[str, list[tuple[Likelihood, str, str]], Policy, dict]:
    """(name, [(likelihood, tag, measurement)], policy, label_map) from a request body
    {"name", "members": [{"likelihood": id, "tag"?, "measurement"?}], "policy"?,
    "label_map"?}; raises CombinationInvalid with a problem per mistake."""
    if not isinstance(data, dict):
        raise CombinationInvalid("the body must be a JSON object")
    problems = []
    name = data.get("name", "")
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        problems.append(_problem("/name", "give a name (at most 200 characters)"))
    raw = data.get("members")
    members = []
    if not isinstance(raw, list) or len(raw) < 2:
        problems.append(_problem("/members", "give at least two members"))
        raw = []
    for i, item in enumerate(raw):
        if isinstance(item, int) and not isinstance(item, bool):
            item = {"likelihood": item}
        if not isinstance(item, dict) or not isinstance(item.get("likelihood"), int):
            problems.append(_problem(f"/members/{i}", "must be {'likelihood': id, 'tag': ...}"))
            continue
        likelihood = Likelihood.objects.filter(pk=item["likelihood"]).first()
        if likelihood is None:
            problems.append(_problem(f"/members/{i}/likelihood", "no such likelihood"))
            continue
        tag = item.get("tag") or f"L{likelihood.pk}"
        if not isinstance(tag, str) or not TAG_PATTERN.match(tag):
            problems.append(
                _problem(f"/members/{i}/tag", "letters, digits, '_', '.', '-' (at most 64)")
            )
            continue
        measurement = item.get("measurement") or ""
        if not isinstance(measurement, str):
            problems.append(_problem(f"/members/{i}/measurement", "must be a name"))
            continue
        members.append((likelihood, tag, measurement))
    label_map = data.get("label_map") or {}
    if not isinstance(label_map, dict) or not all(
        isinstance(v, dict) and all(isinstance(a, str) and isinstance(b, str) for a, b in v.items())
        for v in label_map.values()
    ):
        problems.append(_problem("/label_map", "must be {tag: {member label: label}}"))
        label_map = {}
    try:
        policy = Policy.from_dict(data.get("policy") or {})
    except CombinationError as exc:
        problems += [
            {**p.as_dict(), "file": "request", "pointer": "/policy" + p.pointer}
            for p in exc.problems
        ]
        policy = Policy()
    if problems:
        raise CombinationInvalid("the combination is not usable", problems)
    return name.strip(), members, policy, label_map


def check(members: list[tuple[Likelihood, str, str]], policy: Policy, label_map: dict) -> dict:
    """The validation report of a would-be combination: every clash with its member and
    pointer, the summary, and the combined signal grid's size."""
    combiner = Combiner(
        [
            Member(tag, services_background(likelihood), measurement or None)
            for likelihood, tag, measurement in members
        ],
        policy,
    )
    report = combiner.report.as_dict()
    if combiner.report.valid:
        try:
            labels, points, problems = combined_grid(
                [_signals(likelihood, tag) for likelihood, tag, _ in members], label_map
            )
        except CombinationError as exc:
            report["valid"] = False
            report["problems"] += [p.as_dict() for p in exc.problems]
        else:
            report["problems"] += [p.as_dict() for p in problems]
            report["summary"]["labels"] = list(labels)
            report["summary"]["points"] = len(points)
            report["summary"]["points_background_only_somewhere"] = sum(
                bool(p.background_only) for p in points
            )
    tags = {tag: likelihood.pk for likelihood, tag, _ in members}
    for problem in report["problems"]:
        problem["likelihood"] = tags.get(problem["file"])
    return report


def create(data) -> tuple[Combination, dict]:
    """Store a combination that validates; raises CombinationInvalid with the report's
    problems otherwise."""
    name, members, policy, label_map = read_definition(data)
    report = check(members, policy, label_map)
    if not report["valid"]:
        raise CombinationInvalid("the members cannot be combined", report["problems"])
    with transaction.atomic():
        combination = Combination.objects.create(
            name=name,
            description=str(data.get("description") or "")[:5000],
            policy=policy.as_dict(),
            label_map=label_map,
        )
        CombinationMember.objects.bulk_create(
            CombinationMember(
                combination=combination,
                likelihood=likelihood,
                tag=tag,
                position=i,
                measurement=measurement,
            )
            for i, (likelihood, tag, measurement) in enumerate(members)
        )
    return combination, report


# --------------------------------------------------------------------------- building
def services_background(likelihood: Likelihood) -> dict:
    return blobs.read_json(likelihood.background_id)


def _signals(likelihood: Likelihood, tag: str) -> MemberSignals:
    rows = list(likelihood.signals.values_list("name", "values", "patch_id"))
    return MemberSignals(
        tag,
        tuple(likelihood.labels),
        tuple((name, tuple(values)) for name, values, _ in rows),
        {name: (lambda sha=sha: blobs.read_json(sha)) for name, _, sha in rows},
    )


def members_of(combination: Combination) -> list[CombinationMember]:
    return list(combination.members.select_related("likelihood__version__analysis"))


def combiner_for(combination: Combination, members=None) -> Combiner:
    members = members or members_of(combination)
    return Combiner(
        [Member(m.tag, services_background(m.likelihood), m.measurement or None) for m in members],
        Policy.from_dict(combination.policy),
    )


def grid(combination: Combination, members=None) -> tuple[list[str], list[CombinedPoint]]:
    members = members or members_of(combination)
    labels, points, _ = combined_grid(
        [_signals(m.likelihood, m.tag) for m in members], combination.label_map
    )
    return list(labels), points


def find_point(combination: Combination, name: str, members=None) -> CombinedPoint:
    _, points = grid(combination, members)
    for point in points:
        if point.name == name:
            return point
    raise NotFound(f"no combined point {name!r} in this combination")


def _point_key(combination, members, point: CombinedPoint, settings) -> tuple[str, dict]:
    patches = {
        m.tag: m.likelihood.signals.filter(name=source).values_list("patch_id", flat=True).first()
        for m, (_, source) in zip(members, point.sources, strict=True)
        if source is not None
    }
    return _key(combination, members, patches, settings)


def _key(combination, members, patch_digests: dict, settings) -> tuple[str, dict]:
    inputs = {
        "members": [
            {
                "tag": m.tag,
                "background_sha256": m.likelihood.background_id,
                "patch_sha256": patch_digests.get(m.tag),
                "measurement": m.measurement or None,
            }
            for m in members
        ],
        "policy": combination.policy,
        "settings": settings.as_dict(),
    }
    return canonical_sha256(inputs), inputs


def _cached(combination, key, inputs, point_name, compute) -> tuple[dict, bool]:
    hit = CombinedResult.objects.filter(key=key).first()
    if hit is not None:
        return hit.result, True
    t0 = time.perf_counter()
    result = compute()
    seconds = time.perf_counter() - t0
    result = {**result, "inputs": inputs, "seconds": round(seconds, 4)}
    CombinedResult.objects.get_or_create(
        key=key,
        defaults={
            "combination": combination,
            "point": point_name[:600],
            "result": result,
            "inputs": inputs,
            "seconds": seconds,
        },
    )
    return result, False


def _evaluate(workspace: dict, name, values, settings) -> dict:
    (result,) = services.evaluate([services.Point(name, values, workspace)], settings)
    return {**result, "settings": settings.as_dict()}


def point_result(combination: Combination, name: str) -> tuple[dict, bool]:
    """CLs, expected band and limits of one combined point (cached), with its provenance,
    each contributing member alone (the archive's cached single results) and the member with
    the best expected limit."""
    members = members_of(combination)
    point = find_point(combination, name, members)
    settings = services.service_settings(upper_limit=True)
    key, inputs = _point_key(combination, members, point, settings)

    def compute():
        combiner = combiner_for(combination, members)
        signals = {m.tag: _signals(m.likelihood, m.tag) for m in members}
        try:
            (p,) = evaluation_points(combiner, signals, [point])
        except CombinationError as exc:
            raise CombinationInvalid(exc.message, [q.as_dict() for q in exc.problems]) from exc
        return _evaluate(p.workspace, point.name, point.values, settings)

    result, cached = _cached(combination, key, inputs, point.name, compute)
    return {**result, **provenance(members, point)}, cached


def provenance(members, point: CombinedPoint) -> dict:
    """Which member points went in, and each of them evaluated alone (cached per member)."""
    alone = {}
    for member, (tag, source) in zip(members, point.sources, strict=True):
        if source is None:
            continue
        result, _ = services.archived_point_result(member.likelihood, source)
        alone[tag] = {
            "likelihood": member.likelihood.pk,
            "point": source,
            "cls_obs": result["cls_obs"],
            "cls_exp": result["cls_exp"],
            "mu_up_obs": result.get("mu_up_obs"),
            "mu_up_exp": result.get("mu_up_exp"),
            "converged": result["converged"],
        }
    return {
        "point": point.as_dict(),
        "members_alone": alone,
        "best_expected_member": best_expected(alone),
    }


def best_expected(alone: dict) -> str | None:
    """The member with the lowest median expected upper limit (the usual fallback where a
    combination is not allowed); by median expected CLs where limits are missing."""

    def rank(item):
        r = item[1]
        limit = (r.get("mu_up_exp") or [None] * 5)[2]
        return (limit is None, limit if limit is not None else r["cls_exp"][2])

    usable = [(t, r) for t, r in alone.items() if r["cls_exp"] and r["cls_exp"][2] is not None]
    return min(usable, key=rank)[0] if usable else None


def custom_operations(combination: Combination, payload, members=None) -> dict[str, list]:
    """Per member tag: the JSON Patch operations of a theorist's signal. payload:
    {"members": {tag: {"signal": {channel: [yields]}, "modifiers": [...]} or {"patch": [...]}}};
    members left out contribute background only."""
    members = members or members_of(combination)
    by_tag = {m.tag: m for m in members}
    body = payload.get("members") if isinstance(payload, dict) else None
    if not isinstance(body, dict) or not body:
        raise CombinationInvalid(
            "give 'members': {tag: {'signal': {channel: [yields]}}} for at least one member",
            [_problem("/members", f"the members are {sorted(by_tag)}")],
        )
    problems, out = [], {}
    for tag, sub in body.items():
        if tag not in by_tag:
            problems.append(_problem(f"/members/{tag}", f"no member {tag!r}: {sorted(by_tag)}"))
            continue
        if not isinstance(sub, dict):
            problems.append(_problem(f"/members/{tag}", "must be an object"))
            continue
        bkg = services_background(by_tag[tag].likelihood)
        try:
            ops = services.custom_signal_patch(bkg, sub)
            patched = services.apply_patch(bkg, ops)
            if "patch" in sub:
                # Raw operations can make anything of the workspace: it must still be one.
                _require_workspace(patched, "/patch")
        except ReinterpretError as exc:
            problems += [
                {**p, "pointer": f"/members/{tag}{p.get('pointer', '')}"} for p in exc.problems
            ] or [_problem(f"/members/{tag}", exc.message)]
            continue
        out[tag] = ops
    if problems:
        raise CombinationInvalid("the signal is not usable", problems)
    return out


def _require_workspace(workspace, pointer: str) -> None:
    from hepstore.schemas import validator

    errors = list(validator("workspace").iter_errors(workspace))[:10]
    if errors:
        raise ReinterpretError(
            "the patched workspace is not a valid workspace",
            [
                _problem(
                    pointer,
                    f"the workspace after the patch, at "
                    f"{''.join(f'/{p}' for p in e.absolute_path) or '/'}: {e.message}",
                )
                for e in errors
            ],
        )


def custom_result(combination: Combination, operations: dict[str, list]) -> tuple[dict, bool]:
    """The combined fit of a custom signal (operations per member tag), cached."""
    members = members_of(combination)
    settings = services.service_settings(upper_limit=True)
    digests = {tag: canonical_sha256(ops) for tag, ops in operations.items()}
    key, inputs = _key(combination, members, digests, settings)
    sources = tuple((m.tag, "custom" if m.tag in operations else None) for m in members)
    point = CombinedPoint("custom", (), sources)

    def compute():
        combiner = combiner_for(combination, members)
        workspaces = [
            services.apply_patch(mem.workspace, operations[mem.tag])
            if mem.tag in operations
            else mem.workspace
            for mem in combiner.members
        ]
        try:
            workspace = combiner.point(workspaces)
        except CombinationError as exc:
            raise CombinationInvalid(exc.message, [q.as_dict() for q in exc.problems]) from exc
        return _evaluate(workspace, "custom", None, settings)

    result, cached = _cached(combination, key, inputs, "custom", compute)
    return {**result, "point": point.as_dict()}, cached


def is_small(combination: Combination) -> bool:
    return all(services.is_small(m.likelihood) for m in members_of(combination))
