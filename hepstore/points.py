"""Signal points addressed by the values of their labels (e.g. msb=1000, mn2=131) rather
than by patch name: how a theorist thinks of a point of the grid."""

from __future__ import annotations

import math
from collections.abc import Mapping

from hepstore.errors import AmbiguousPoint, NotFound, UnusableInput
from hepstore.models import Likelihood, SignalPoint

# Query parameters that are not label values (pagination, DRF's format switch).
RESERVED = {"page", "page_size", "format"}
# Two label values are the same when they differ by less than this, relatively (a grid
# published as 131.0 is found by 131).
REL_TOL = 1e-9


def label_values(likelihood: Likelihood, params: Mapping[str, str]) -> dict[str, float | str]:
    """The label values in query params, numbers where they parse. Raises UnusableInput
    naming the labels when a parameter is not one of them."""
    wanted: dict[str, float | str] = {}
    for key, raw in params.items():
        if key in RESERVED:
            continue
        if key not in likelihood.labels:
            raise UnusableInput(
                f"{key!r} is not a label of this likelihood; its labels are "
                f"{', '.join(likelihood.labels) or 'none'}"
            )
        try:
            number = float(raw)
        except ValueError:
            wanted[key] = raw
        else:
            wanted[key] = number if math.isfinite(number) else raw
    return wanted


def _same(a, b) -> bool:
    if isinstance(a, int | float) and isinstance(b, int | float) and not isinstance(a, bool):
        return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=1e-12)
    return str(a) == str(b)


def labelled(likelihood: Likelihood, point: SignalPoint) -> dict:
    """The point's values keyed by label."""
    return dict(zip(likelihood.labels, point.values, strict=False))


def matching(likelihood: Likelihood, wanted: Mapping[str, float | str]) -> list[SignalPoint]:
    """Points whose values equal every wanted one, in patchset order."""
    index = {label: i for i, label in enumerate(likelihood.labels)}
    return [
        p
        for p in likelihood.signals.all()
        if all(index[k] < len(p.values) and _same(p.values[index[k]], v) for k, v in wanted.items())
    ]


def nearest(
    likelihood: Likelihood, wanted: Mapping[str, float | str], count: int = 5
) -> list[SignalPoint]:
    """The count points closest to the wanted values: distance over the numeric labels, each
    scaled by the grid's range in that label (a string label that differs counts as 1)."""
    points = list(likelihood.signals.all())
    index = {label: i for i, label in enumerate(likelihood.labels)}
    spans = {}
    for key, value in wanted.items():
        numbers = [
            p.values[index[key]]
            for p in points
            if index[key] < len(p.values) and isinstance(p.values[index[key]], int | float)
        ]
        if isinstance(value, float) and numbers:
            spans[key] = (max(numbers) - min(numbers)) or 1.0

    def distance(p: SignalPoint) -> float:
        total = 0.0
        for key, value in wanted.items():
            have = p.values[index[key]] if index[key] < len(p.values) else None
            if key in spans and isinstance(have, int | float):
                total += ((have - value) / spans[key]) ** 2
            else:
                total += 0.0 if _same(have, value) else 1.0
        return total

    return sorted(points, key=distance)[:count]


def resolve(likelihood: Likelihood, params: Mapping[str, str]) -> SignalPoint:
    """The one point the label values name. Raises AmbiguousPoint listing the candidates,
    or NotFound listing the nearest points."""
    wanted = label_values(likelihood, params)
    if not wanted:
        raise UnusableInput(
            f"give the point's label values, e.g. "
            f"{'&'.join(f'{label}=...' for label in likelihood.labels) or 'none (no labels)'}"
        )
    found = matching(likelihood, wanted)
    if len(found) == 1:
        return found[0]
    if found:
        raise AmbiguousPoint(
            f"{len(found)} points have these values; add the other labels "
            f"({', '.join(k for k in likelihood.labels if k not in wanted)}) to choose one",
            [_candidate(likelihood, p, "candidate") for p in found[:50]],
        )
    raise NotFound(
        "no signal point has these label values; the nearest are listed",
        [_candidate(likelihood, p, "nearest") for p in nearest(likelihood, wanted)],
    )


def _candidate(likelihood: Likelihood, point: SignalPoint, kind: str) -> dict:
    values = labelled(likelihood, point)
    text = ", ".join(f"{k}={v}" for k, v in values.items())
    return {
        "pointer": "",
        "severity": "error",
        "message": f"{kind}: {point.name} ({text})",
        "name": point.name,
        "values": values,
    }
