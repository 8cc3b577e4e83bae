"""Figures and contour data of stored results: picks the data of a scan (a plane and a slice of
its table) or of an archived point (its fit detail) and hands it to reinterpret.plots."""

from __future__ import annotations

import math

from hepstore.errors import NotFound
from reinterpret import contours, plots
from reinterpret.errors import ReinterpretError


def _parse(value: str):
    """A query-string value as a number when it reads as one (slices compare numbers)."""
    try:
        number = float(value)
    except ValueError:
        return value
    if not math.isfinite(number):
        return value
    return int(number) if number.is_integer() else number


def view_params(job, query) -> dict:
    """The plane and slice asked for in a query (?x=&y=&LABEL=value...), defaulting to the
    scan's own; a slice not given on a grid of more than two labels is the most populated."""
    labels = job.result["labels"]
    stored = job.result.get("contour") or {}
    x = query.get("x") or stored.get("x_label")
    y = query.get("y") or stored.get("y_label")
    x, y = contours.axes(labels, x, y)
    for axis, label in (("x", x), ("y", y)):
        if label not in labels:
            raise ReinterpretError(f"{axis}: {label!r} is not one of the labels {labels}")
    fixed = {k: _parse(v) for k, v in query.items() if k in labels and k not in (x, y)}
    if not fixed:
        previous = stored.get("fixed") or {}
        if x == stored.get("x_label") and y == stored.get("y_label"):
            fixed = previous
    if not fixed and len(labels) > 2:
        values = [p["values"] for p in job.result["points"] if p.get("values")]
        fixed = contours.default_slice(labels, values, x, y)
    contours.check_fixed(labels, x, y, fixed)
    return {"x": x, "y": y, "fixed": fixed}


def scan_slice(job, query) -> tuple[dict, list[dict]]:
    """(contour, points of the slice) of a finished scan in the plane/slice of the query."""
    if not job.result or "points" not in job.result:
        raise NotFound("the scan has no results (yet)")
    params = view_params(job, query)
    labels = job.result["labels"]
    points = [
        p
        for p in job.result["points"]
        if p.get("values") and contours.in_slice(labels, p["values"], params["fixed"])
    ]
    if not points:
        raise NotFound(f"no point of the scan in the slice {params['fixed']}")
    contour = contours.scan_view(points, labels, params)
    contour["slices"] = contours.slices(
        labels,
        [p["values"] for p in job.result["points"] if p.get("values")],
        params["x"],
        params["y"],
    )
    return contour, points


def scan_figure(job, kind: str, fmt: str, query) -> bytes:
    """The exclusion plot (kind "exclusion") or upper-limit map ("upper-limits") of a scan."""
    contour, points = scan_slice(job, query)
    likelihood = job.likelihood
    info = getattr(likelihood, "label_info", None) or {}
    title = f"{likelihood.version.analysis.title[:70]} / {likelihood.region}"
    labels = job.result["labels"]
    if kind == "exclusion":
        return plots.exclusion_plot(contour, points, labels, fmt, info, title)
    return plots.upper_limit_map(
        contour, points, labels, fmt, info, title, poi_bound=poi_upper_bound(likelihood)
    )


def poi_upper_bound(likelihood) -> float | None:
    """The upper bound of the POI in the likelihood's first measurement (10 by default)."""
    from hepstore.services import background_workspace

    config = background_workspace(likelihood)["measurements"][0]["config"]
    for par in config.get("parameters", []):
        if par.get("name") == config.get("poi") and par.get("bounds"):
            return float(par["bounds"][0][1])
    return 10.0
