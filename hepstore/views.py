"""HTML pages of the archive: thin views over services and models."""

from __future__ import annotations

import math

from django.core.paginator import Paginator
from django.db.models import Count
from django.http import Http404
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_http_methods

from hepstore import citations, services
from hepstore.api.filters import AnalysisFilterSet
from hepstore.api.throttles import page_throttled
from hepstore.errors import BadParameters, HepstoreError
from hepstore.models import Analysis, Likelihood
from hepstore.uploads import refuse_oversized, saved_uploads


def analysis_list(request):
    analyses = (
        Analysis.objects.select_related("collaboration")
        .annotate(n_versions=Count("versions", distinct=True))
        .order_by("-created", "-id")
    )
    # The API's FilterSet: the same filters (q, collaboration, inspire_id, year), the same
    # refusals (a 400 page naming the parameter).
    filterset = AnalysisFilterSet(request.GET, queryset=analyses)
    if not filterset.is_valid():
        raise BadParameters.from_form_errors(filterset.errors)
    q = request.GET.get("q", "").strip()
    page = Paginator(filterset.qs, 25).get_page(request.GET.get("page"))
    return render(request, "hepstore/analysis_list.html", {"page": page, "q": q})


def analysis_detail(request, pk: int):
    analysis = get_object_or_404(Analysis.objects.select_related("collaboration"), pk=pk)
    return _analysis_page(request, analysis)


def record_page(request, inspire_id: int):
    """The analysis by its INSPIRE id: /record/ins<N>, the address to cite."""
    analysis = get_object_or_404(
        Analysis.objects.select_related("collaboration"), inspire_id=inspire_id
    )
    return _analysis_page(request, analysis)


def _analysis_page(request, analysis: Analysis):
    versions = list(analysis.versions.prefetch_related("likelihoods"))
    chosen = request.GET.get("version", "")
    if chosen.isdigit():
        versions = [v for v in versions if v.number == int(chosen)]
        if not versions:
            raise Http404(f"no version {chosen} of this analysis")
    record_url = request.build_absolute_uri(citations.record_path(analysis))
    cited = [
        (v, citations.citations(analysis, v, f"{record_url}?version={v.number}")) for v in versions
    ]
    return render(
        request,
        "hepstore/analysis_detail.html",
        {
            "analysis": analysis,
            "versions": cited,
            "links": citations.links(analysis),
            "record_url": record_url,
        },
    )


def likelihood_detail(request, pk: int):
    likelihood = get_object_or_404(Likelihood.objects.select_related("version__analysis"), pk=pk)
    workspace = services.background_workspace(likelihood)
    observed = {o["name"]: o["data"] for o in workspace["observations"]}
    channels = []
    for channel in workspace["channels"]:
        nbins = len(observed.get(channel["name"], []))
        totals = [0.0] * nbins
        samples = []
        for sample in channel["samples"]:
            for i, value in enumerate(sample["data"][:nbins]):
                totals[i] += value
            samples.append(
                {
                    "name": sample["name"],
                    "data": sample["data"],
                    "modifiers": len(sample["modifiers"]),
                }
            )
        channels.append(
            {
                "name": channel["name"],
                "bins": nbins,
                "observed": observed.get(channel["name"], []),
                "expected": totals,
                "samples": samples,
            }
        )
    measurement = workspace["measurements"][0]
    from reinterpret.tables import likelihood_context

    return render(
        request,
        "hepstore/likelihood_detail.html",
        {
            "likelihood": likelihood,
            "analysis": likelihood.version.analysis,
            "channels": channels,
            "measurement": measurement,
            "summary": likelihood.summary,
            **likelihood_context(likelihood, workspace, request.GET),
        },
    )


@require_http_methods(["GET", "POST"])
def validate_page(request):
    context = {}
    if request.method == "POST":
        wait = page_throttled(request, "validate")
        if wait is not None:
            response = render(
                request,
                "error.html",
                {"status": 429, "message": "Too many validations from you; try again shortly."},
                status=429,
            )
            response["Retry-After"] = str(max(1, math.ceil(wait)))
            return response
        try:
            refuse_oversized(request)
            with saved_uploads(request.FILES.getlist("file")) as paths:
                report, _ = services.validate_paths(paths)
            context["report"] = report
        except HepstoreError as exc:
            context["failure"] = exc.message
        context["uploaded"] = [f.name for f in request.FILES.getlist("file")]
    return render(
        request, "hepstore/validate.html", context, status=400 if "failure" in context else 200
    )


def search_page(request):
    """Faceted search inside likelihoods, with highlighted matches."""
    from hepstore import search

    context = {"params": request.GET}
    try:
        query = search.SearchQuery.from_params(request.GET)
        result = search.search(query)
        context.update(query=query, result=result)
    except HepstoreError as exc:
        context.update(failure=exc.message, status=exc.status)
    base = request.GET.copy()
    base.pop("page", None)
    links = {}
    for facet in search.FACETS:
        entries = []
        for value, count in context["result"].facets.get(facet, []) if "result" in context else []:
            params = base.copy()
            params[facet] = value
            entries.append(
                {
                    "value": value,
                    "count": count,
                    "query": params.urlencode(),
                    "active": str(base.get(facet, "")) == str(value),
                }
            )
        links[facet] = entries
    context["facet_links"] = links
    context["base_query"] = base.urlencode()
    return render(request, "hepstore/search.html", context, status=context.get("status", 200))
