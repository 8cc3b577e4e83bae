"""What the likelihood page tabulates: yields per bin with uncertainties, the parameters and
their constraints, the signal grid (sorted numerically by a label or by CLs, filtered by label
ranges, paged) with the latest CLs of each point, the slices a scan can choose, the caveats."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from django.core.paginator import Paginator

from reinterpret import caveats, contours, formatting, points, services
from reinterpret.errors import ReinterpretError

PAGE_SIZE = 50


def yields_table(detail: dict) -> list[dict]:
    """Per channel: rows of sample yields per bin, the total with its pre-fit uncertainty, the
    background-only post-fit total with its uncertainty, and the data."""
    out = []
    for channel, nbins in detail["channels"]:
        pre, post = detail["prefit"], detail["postfit"]
        samples = pre["samples"].get(channel, {})
        rows = [
            {"name": name, "cells": [formatting.number(v, 4) for v in values]}
            for name, values in sorted(samples.items(), key=lambda kv: -sum(kv[1]))
        ]
        out.append(
            {
                "name": channel,
                "bins": nbins,
                "samples": rows,
                "prefit": _with_errors(pre["total"][channel], pre["uncertainty"][channel]),
                "postfit": _with_errors(post["total"][channel], post["uncertainty"][channel]),
                "observed": [formatting.number(v, 6) for v in detail["observed"][channel]],
            }
        )
    return out


def _with_errors(values, errors) -> list[str]:
    errors = errors or [None] * len(values)
    return [
        f"{formatting.number(v, 4)} ± {formatting.number(e, 2)}"
        if e is not None
        else formatting.number(v, 4)
        for v, e in zip(values, errors, strict=True)
    ]


def parameter_rows(detail: dict) -> list[dict]:
    """The model's parameters with their modifiers and constraints (pre-fit view)."""
    rows = []
    for p in detail["parameters"]:
        if p["constraint"] == "gaussian":
            constraint = (
                f"Gaussian({formatting.number(p['centre'])}, σ = {formatting.number(p['width'])})"
            )
        elif p["constraint"] == "poisson":
            constraint = f"Poisson, relative σ = {formatting.number(p['width'])}"
        else:
            constraint = "none (free)"
        rows.append(
            {
                "name": p["name"],
                "modifiers": ", ".join(p["modifiers"]),
                "constraint": constraint,
                "init": formatting.number(p["init"]),
                "bounds": "[{}, {}]".format(*(formatting.number(b) for b in p["bounds"])),
                "fixed": p["fixed"],
                "poi": p["poi"],
            }
        )
    return rows


@dataclass(frozen=True)
class GridQuery:
    """?sort=LABEL|-LABEL|cls|-cls|name and ?LABEL_min= / ?LABEL_max= of the signal grid."""

    sort: str
    ranges: dict
    page: str | None

    @classmethod
    def from_params(cls, labels: list[str], params) -> GridQuery:
        sort = params.get("sort", "")
        if sort.lstrip("-") not in ("", "name", "cls", *labels):
            raise ReinterpretError(f"sort: {sort!r} is not name, cls or one of {labels}")
        ranges = {}
        for label in labels:
            lo, hi = params.get(f"{label}_min", ""), params.get(f"{label}_max", "")
            try:
                bounds = (float(lo) if lo != "" else None, float(hi) if hi != "" else None)
            except ValueError as exc:
                raise ReinterpretError(f"{label}: the range must be numbers") from exc
            if bounds != (None, None):
                ranges[label] = bounds
        return cls(sort, ranges, params.get("page"))


def latest_cls(likelihood) -> dict[str, float | None]:
    """Observed CLs per archived point: from cached point results, overridden by the latest
    finished scan."""
    from reinterpret.models import Job, JobKind, JobState

    out: dict[str, float | None] = {}
    for name, result in likelihood.cached_results.exclude(signal="custom").values_list(
        "signal", "result"
    ):
        if name:
            out[name] = result.get("cls_obs")
    job = (
        Job.objects.filter(likelihood=likelihood, kind=JobKind.SCAN, state=JobState.SUCCEEDED)
        .order_by("-finished", "-id")
        .first()
    )
    if job is not None and job.result:
        for point in job.result.get("points", []):
            out[point["patch"]] = point.get("cls_obs")
    return out


def _number(value) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def signal_grid(likelihood, query: GridQuery):
    """The page of the signal grid asked for: rows {"name", "values", "values_json", "cls",
    "cls_text", "verdict"}, filtered, sorted (missing values last) and paged."""
    labels = likelihood.labels
    cls_of = latest_cls(likelihood)
    rows = []
    for name, values in likelihood.signals.order_by("index").values_list("name", "values"):
        keep = True
        for label, (lo, hi) in query.ranges.items():
            v = _number(values[labels.index(label)]) if len(values) > labels.index(label) else None
            if v is None or (lo is not None and v < lo) or (hi is not None and v > hi):
                keep = False
                break
        if not keep:
            continue
        cls = cls_of.get(name)
        rows.append(
            {
                "name": name,
                "values": values,
                "values_json": json.dumps(values),
                "cls": cls,
                "cls_text": formatting.cls(cls),
                "verdict": formatting.verdict(cls),
            }
        )
    key = query.sort.lstrip("-")
    reverse = query.sort.startswith("-")
    if key == "name":
        rows.sort(key=lambda r: r["name"], reverse=reverse)
    elif key:

        def value(row):
            return row["cls"] if key == "cls" else row["values"][labels.index(key)]

        # Numbers sort as numbers; points without one (no CLs yet, text labels) come last.
        numeric = [r for r in rows if _number(value(r)) is not None]
        other = [r for r in rows if _number(value(r)) is None]
        numeric.sort(key=lambda r: _number(value(r)), reverse=reverse)
        other.sort(key=lambda r: str(value(r)), reverse=reverse)
        rows = numeric + other
    return Paginator(rows, PAGE_SIZE).get_page(query.page)


def axis_slices(likelihood) -> dict:
    """For every ordered pair of labels "x|y": the slices of the grid in that plane (most
    populated first), for the scan panel's choices."""
    labels = likelihood.labels
    values = list(likelihood.signals.values_list("values", flat=True))
    out = {}
    for x in labels:
        for y in labels:
            if x != y:
                out[f"{x}|{y}"] = contours.slices(labels, values, x, y)
    return out


def likelihood_context(likelihood, workspace: dict, params) -> dict:
    """The results part of the likelihood page."""
    context: dict = {
        "notes": caveats.likelihood_notes(likelihood, workspace),
        "grid_query": None,
    }
    try:
        detail = points.background_detail(likelihood)
    except ReinterpretError as exc:
        context["yields_failure"] = exc.message
    else:
        context["yields"] = yields_table(detail)
        context["parameters"] = parameter_rows(detail)
    try:
        query = GridQuery.from_params(likelihood.labels, params)
    except ReinterpretError as exc:
        context["grid_failure"] = exc.message
        query = GridQuery("", {}, None)
    context["grid_query"] = query
    context["signals"] = signal_grid(likelihood, query)
    context["slices"] = axis_slices(likelihood)
    context["channel_set"] = services.likelihood_channel_set(likelihood, workspace)
    base = params.copy()
    base.pop("page", None)
    context["grid_base_query"] = base.urlencode()
    sort_links = []
    for key in ["name", *likelihood.labels, "cls"]:
        q = base.copy()
        q["sort"] = f"-{key}" if query.sort == key else key
        arrow = " ▲" if query.sort == key else " ▼" if query.sort == f"-{key}" else ""
        sort_links.append({"key": key, "query": q.urlencode(), "arrow": arrow})
    context["sort_links"] = sort_links
    context["ranges"] = [
        {
            "label": label,
            "min": params.get(f"{label}_min", ""),
            "max": params.get(f"{label}_max", ""),
        }
        for label in likelihood.labels
    ]
    return context
