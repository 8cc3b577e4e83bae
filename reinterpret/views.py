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
    channels = []
    yields = {"observed": {}, "converged": True}
    if result.get("error") is None:
        yields = services.point_yields(likelihood, name)
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
            "shown": services.shown_numbers(result),
            "cached": cached,
            "channels": channels,
            "fit_converged": yields["converged"],
        },
    )
