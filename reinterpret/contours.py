"""Exclusion contours in the plane of two signal labels, joined into polylines, and the
slices of a grid with more than two labels.

The points need not lie on a regular grid: they are triangulated (Delaunay, in axes scaled to
unit range) and log10(CLs) is interpolated linearly on each triangle. The contour at
CLs = 0.05 crosses a triangle edge where that linear function crosses log10(0.05); crossings
of the two edges of one triangle are joined, and segments sharing an edge are chained into
polylines. Every vertex of a polyline therefore lies exactly on the level of the interpolated
grid. A polyline is a list of [x, y] in label units; a closed one repeats its first vertex.

Points whose value of a curve is missing (null, with a reason, in the result) are left out of
that curve's triangulation.
"""

from __future__ import annotations

import csv
import io
import math
from collections import Counter, defaultdict
from collections.abc import Iterable

import numpy as np
from scipy.spatial import Delaunay, QhullError

from reinterpret.errors import ReinterpretError

LEVEL = 0.05
# Curve name -> index into cls_exp (None: observed). cls_exp runs from -2 sigma to +2 sigma.
CURVES: dict[str, int | None] = {
    "observed": None,
    "expected": 2,
    "expected_minus_1sigma": 1,
    "expected_plus_1sigma": 3,
    "expected_minus_2sigma": 0,
    "expected_plus_2sigma": 4,
}
# CLs below this is shown and interpolated as this (log10 of 0 is not a number).
CLS_FLOOR = 1e-300


def curve_value(result: dict, curve: str, key: str = "cls") -> float | None:
    """The curve's number of one point result (CLs or, with key="mu_up", the upper limit),
    or None when the result has none."""
    index = CURVES[curve]
    if index is None:
        value = result.get(f"{key}_obs")
    else:
        band = result.get(f"{key}_exp")
        value = band[index] if band and len(band) > index else None
    if value is None or isinstance(value, bool):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


# ---------------------------------------------------------------------------- slices


def slices(labels: list[str], values: Iterable, x: str, y: str) -> list[dict]:
    """The slices of a grid in the (x, y) plane: one per distinct combination of the other
    labels' values, most populated first. Each is {"fixed": {label: value}, "points": n}."""
    others = [i for i, label in enumerate(labels) if label not in (x, y)]
    counts = Counter(tuple(v[i] for i in others) for v in values)
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], [_sort_key(v) for v in kv[0]]))
    return [
        {"fixed": {labels[i]: v for i, v in zip(others, key, strict=True)}, "points": n}
        for key, n in ordered
    ]


def _sort_key(value) -> tuple:
    return (0, float(value), "") if _is_number(value) else (1, 0.0, str(value))


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def axes(labels: list[str], x: str | None, y: str | None) -> tuple[str | None, str | None]:
    """The contour's axes: the labels asked for, else the first two labels."""
    x = x or (labels[0] if labels else None)
    y = y or next((label for label in labels if label != x), None)
    return x, y


def check_fixed(labels: list[str], x: str | None, y: str | None, fixed: dict) -> None:
    """Refuse a slice that names unknown labels or one of the axes."""
    problems = []
    for label in fixed:
        if label not in labels:
            problems.append(f"{label!r} is not one of the labels {labels}")
        elif label in (x, y):
            problems.append(f"{label!r} is an axis of the contour; it cannot also be fixed")
    if problems:
        raise ReinterpretError("fixed: " + "; ".join(problems))


def in_slice(labels: list[str], values, fixed: dict) -> bool:
    """Whether a point's label values match every fixed value (numbers compared as numbers)."""
    for label, want in fixed.items():
        have = values[labels.index(label)]
        if _is_number(have) and _is_number(want):
            if not math.isclose(float(have), float(want), rel_tol=1e-9, abs_tol=1e-12):
                return False
        elif str(have) != str(want):
            return False
    return True


def default_slice(labels: list[str], values: list, x: str, y: str) -> dict:
    """The most populated slice's fixed values ({} for a grid of two labels)."""
    found = slices(labels, values, x, y)
    return found[0]["fixed"] if found else {}


# -------------------------------------------------------------------------- contours


def _triangulate(pts: np.ndarray) -> np.ndarray | None:
    """Delaunay triangles (T, 3) of points (N, 2) in unit-scaled axes, or None."""
    if len(pts) < 3:
        return None
    lo, span = pts.min(axis=0), np.ptp(pts, axis=0)
    span[span == 0] = 1.0
    try:
        return Delaunay((pts - lo) / span).simplices
    except QhullError:
        return None


def triangulation(results: list[dict], labels: list[str], x: str, y: str, curve: str):
    """Points (N, 2), log10 CLs (N,) of the curve and triangles (T, 3) or None: the grid the
    curve's contour is drawn on (points without a value left out)."""
    ix, iy = labels.index(x), labels.index(y)
    rows = [(r, curve_value(r, curve)) for r in results]
    rows = [(r, v) for r, v in rows if v is not None and _numeric_point(r, ix, iy)]
    pts = np.array([[float(r["values"][ix]), float(r["values"][iy])] for r, _ in rows]).reshape(
        -1, 2
    )
    logs = np.log10(np.clip(np.array([v for _, v in rows], dtype=float), CLS_FLOOR, None))
    return pts, logs, _triangulate(pts)


def _numeric_point(result: dict, ix: int, iy: int) -> bool:
    values = result.get("values") or []
    return len(values) > max(ix, iy) and _is_number(values[ix]) and _is_number(values[iy])


def polylines(pts: np.ndarray, f: np.ndarray, triangles: np.ndarray) -> list[list[list[float]]]:
    """The zero level of f (N,), linear on each triangle, as polylines of [x, y].

    A crossing sits on an edge (a pair of vertices with f of opposite signs); the two crossings
    of a triangle are joined; chains are followed across shared edges until they end at the
    hull (open) or come back to their start (closed, first vertex repeated)."""
    positive = f > 0
    links: dict[tuple[int, int], list[tuple[int, int]]] = defaultdict(list)
    for tri in triangles:
        edges = [
            (min(a, b), max(a, b))
            for a, b in ((tri[0], tri[1]), (tri[1], tri[2]), (tri[2], tri[0]))
            if positive[a] != positive[b]
        ]
        if len(edges) == 2:
            links[edges[0]].append(edges[1])
            links[edges[1]].append(edges[0])

    def point(edge: tuple[int, int]) -> list[float]:
        i, j = edge
        t = f[i] / (f[i] - f[j])
        return (pts[i] + t * (pts[j] - pts[i])).tolist()

    seen: set[frozenset] = set()

    def walk(start: tuple[int, int]) -> list[tuple[int, int]]:
        chain = [start]
        while True:
            nxt = next((e for e in links[chain[-1]] if frozenset((chain[-1], e)) not in seen), None)
            if nxt is None:
                return chain
            seen.add(frozenset((chain[-1], nxt)))
            chain.append(nxt)
            if nxt == start:
                return chain

    lines = []
    # Open chains start at an edge with one link (on the hull); the rest are closed loops.
    for start in sorted(links, key=lambda e: len(links[e])):
        while any(frozenset((start, e)) not in seen for e in links[start]):
            chain = walk(start)
            if len(chain) > 1:
                lines.append([point(e) for e in chain])
    return lines


def contours(results: list[dict], labels: list[str], x_label: str, y_label: str) -> dict:
    """Polylines per curve at CLs = LEVEL: {"x_label", "y_label", "level", "curves":
    {curve: [[[x, y], ...], ...]}, "points": n, "notes": [...]}. results carry 'values'
    aligned with labels. Points that could not be evaluated (their 'error' is set) are left
    out and counted in "left_out"."""
    out: dict = {
        "x_label": x_label,
        "y_label": y_label,
        "level": LEVEL,
        "curves": {},
        "points": len(results),
        "notes": [],
    }
    left_out = sum(1 for r in results if r.get("error") is not None)
    if left_out:
        out["left_out"] = left_out
        results = [r for r in results if r.get("error") is None]
    for curve in CURVES:
        pts, logs, triangles = triangulation(results, labels, x_label, y_label, curve)
        if triangles is None:
            out["curves"][curve] = []
            if curve == "observed":
                out["notes"].append(
                    f"{len(pts)} points with a value, or all on one line: no contour"
                )
            continue
        out["curves"][curve] = polylines(pts, logs - math.log10(LEVEL), triangles)
    return out


def contour_csv(contour: dict) -> str:
    """The contour as CSV rows: curve, line (index within the curve), point, x, y."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["curve", "line", "point", contour["x_label"], contour["y_label"]])
    for curve, lines in contour.get("curves", {}).items():
        for i, line in enumerate(lines):
            for j, (x, y) in enumerate(line):
                writer.writerow([curve, i, j, repr(float(x)), repr(float(y))])
    return buffer.getvalue()


# ------------------------------------------------------------------------------ scans


def scan_view(table: list[dict], labels: list[str], params: dict) -> dict | None:
    """The contour of a scan's table in its chosen plane and slice (None without two axes);
    without a slice on a grid of more than two labels, the most populated slice."""
    x, y = axes(labels, params.get("x"), params.get("y"))
    if not x or not y:
        return None
    fixed = params.get("fixed") or {}
    if not fixed and len(labels) > 2:
        # Triangulating across slices would draw a tangle: take the most populated one.
        fixed = default_slice(labels, [r["values"] for r in table if r.get("values")], x, y)
    chosen = [r for r in table if r.get("values") and in_slice(labels, r["values"], fixed)]
    out = contours(chosen, labels, x, y)
    out["fixed"] = fixed
    return out


def select_points(patches: list[dict], labels: list[str], params: dict) -> list[str]:
    """Names of the patches a scan evaluates: those named (default all), in the slice."""
    wanted = params.get("points") or [p["metadata"]["name"] for p in patches]
    fixed = params.get("fixed") or {}
    if not fixed:
        return wanted
    values = {p["metadata"]["name"]: p["metadata"].get("values", []) for p in patches}
    return [n for n in wanted if in_slice(labels, values[n], fixed)]
