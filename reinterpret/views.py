"""Pages of the reinterpretation app: one view of a signal point, archived or custom."""

from __future__ import annotations

from django.shortcuts import get_object_or_404, render

from hepstore.errors import HepstoreError
from hepstore.models import Likelihood
from reinterpret import points


def _render_point(request, pk: int, **which):
    likelihood = get_object_or_404(Likelihood.objects.select_related("version__analysis"), pk=pk)
    try:
        context = points.page_context(points.Point(likelihood, **which))
    except HepstoreError as exc:
        context = {
            "likelihood": likelihood,
            "analysis": likelihood.version.analysis,
            "name": which.get("name") or "custom signal",
            "failure": exc.message,
        }
        return render(request, "reinterpret/point.html", context, status=exc.status)
    return render(request, "reinterpret/point.html", context)


def point_page(request, pk: int, name: str):
    """An archived signal point: CLs, limits, yields before and after the fit, pulls."""
    return _render_point(request, pk, name=name)


def custom_point_page(request, pk: int, digest: str):
    """A theorist's signal, evaluated before, shown as an archived point is."""
    return _render_point(request, pk, digest=digest)
