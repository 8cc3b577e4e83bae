"""Pages of combinations: the list with a form to create one, a combination (members,
policy, validation report, combined grid, scan with contour), and one combined point with
its provenance and each member alone."""

from __future__ import annotations

from django.shortcuts import get_object_or_404, render

from hepstore.models import Likelihood
from reinterpret import combination_services as cs
from reinterpret.fitter.combine import Policy
from reinterpret.models import Combination

BAND = ["−2σ", "−1σ", "median", "+1σ", "+2σ"]


def combination_list(request):
    """Stored combinations and a form to combine archived likelihoods."""
    likelihoods = Likelihood.objects.select_related("version__analysis").order_by(
        "version__analysis__title", "-version__number", "region"
    )
    return render(
        request,
        "reinterpret/combination_list.html",
        {
            "combinations": Combination.objects.prefetch_related("members__likelihood")[:100],
            "likelihoods": likelihoods[:500],
        },
    )


def combination_detail(request, pk: int):
    combination = get_object_or_404(Combination, pk=pk)
    members = cs.members_of(combination)
    report = cs.check(
        [(m.likelihood, m.tag, m.measurement) for m in members],
        Policy.from_dict(combination.policy),
        combination.label_map,
    )
    labels, points = cs.grid(combination, members) if report["valid"] else ([], [])
    return render(
        request,
        "reinterpret/combination_detail.html",
        {
            "combination": combination,
            "members": members,
            "policy": combination.policy,
            "report": report,
            "labels": labels,
            "points": [
                {
                    "name": p.name,
                    "values": p.values,
                    "sources": [source for _, source in p.sources],
                }
                for p in points
            ],
        },
    )


def combination_point(request, pk: int, name: str):
    combination = get_object_or_404(Combination, pk=pk)
    result, cached = cs.point_result(combination, name)
    members = {m.tag: m for m in cs.members_of(combination)}
    alone = [
        {
            "tag": tag,
            "member": members[tag],
            "result": r,
            "best": tag == result["best_expected_member"],
        }
        for tag, r in result["members_alone"].items()
    ]
    return render(
        request,
        "reinterpret/combination_point.html",
        {
            "combination": combination,
            "name": name,
            "result": result,
            "cached": cached,
            "alone": alone,
            "background_only": [members[t] for t in result["point"]["background_only"]],
            "band": list(
                zip(BAND, result["cls_exp"], result.get("mu_up_exp") or [None] * 5, strict=True)
            ),
        },
    )
