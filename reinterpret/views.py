"""Pages of the reinterpretation app."""

from __future__ import annotations

from django.shortcuts import get_object_or_404, render
from django.utils.safestring import mark_safe

from hepstore.models import Likelihood
from reinterpret import plots, services


def point_page(request, pk: int, name: str):
    """Result of one archived signal point with pre- and post-fit yields per channel."""
    likelihood = get_object_or_404(Likelihood.objects.select_related("version__analysis"), pk=pk)
    result, cached = services.archived_point_result(likelihood, name)
    yields = services.point_yields(likelihood, name)
    channels = []
    for channel, observed in yields["observed"].items():
        channels.append(
            {
                "name": channel,
                "prefit": mark_safe(
                    plots.stacked_yields_svg(  # noqa: S308 - built with escape()
                        f"{channel} pre-fit", yields["prefit"][channel], observed
                    )
                ),
                "postfit": mark_safe(
                    plots.stacked_yields_svg(  # noqa: S308
                        f"{channel} post-fit", yields["postfit"][channel], observed
                    )
                ),
            }
        )
    return render(
        request,
        "reinterpret/point.html",
        {
            "likelihood": likelihood,
            "analysis": likelihood.version.analysis,
            "name": name,
            "result": result,
            "cached": cached,
            "channels": channels,
            "fit_converged": yields["converged"],
            "band": list(
                zip(
                    ["−2σ", "−1σ", "median", "+1σ", "+2σ"],
                    result["cls_exp"],
                    result.get("mu_up_exp") or [None] * 5,
                    strict=True,
                )
            ),
        },
    )
