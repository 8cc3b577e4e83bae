"""Exclusion contours in the plane of two signal labels, and an SVG plot of the grid.

The points need not lie on a regular grid: they are triangulated (Delaunay) and log10(CLs) is
interpolated linearly on each triangle; the contour at CLs = 0.05 is the set of segments where
that plane crosses log10(0.05). Each curve is a list of segments [[x1, y1], [x2, y2]].
"""

from __future__ import annotations

import math
from html import escape

import numpy as np
from scipy.spatial import Delaunay, QhullError

LEVEL = 0.05
CURVES = {"observed": None, "expected": 2, "expected_minus_1sigma": 1, "expected_plus_1sigma": 3}


def _values(results: list[dict], curve: str) -> np.ndarray:
    index = CURVES[curve]
    raw = [r["cls_obs"] if index is None else r["cls_exp"][index] for r in results]
    # A null CLs (see the result's null_reasons) is NaN here: triangles touching it are skipped.
    values = np.array([np.nan if x is None else x for x in raw], dtype=float)
    return np.log10(np.clip(values, 1e-300, None))


def contours(results: list[dict], labels: list[str], x_label: str, y_label: str) -> dict:
    """Segments per curve; results carry 'values' aligned with labels. Points that could not
    be evaluated (their 'error' is set) are left out, and counted in 'left_out'."""
    evaluated = [r for r in results if r.get("error") is None]
    left_out = len(results) - len(evaluated)
    results = evaluated
    ix, iy = labels.index(x_label), labels.index(y_label)
    pts = np.array([[float(r["values"][ix]), float(r["values"][iy])] for r in results])
    out = {"x_label": x_label, "y_label": y_label, "level": LEVEL, "curves": {}}
    if left_out:
        out["left_out"] = left_out
    if len(pts) < 3:
        out["note"] = "fewer than three points: no contour"
        return out
    # Scale axes to unit range so the triangulation is not distorted by different units.
    lo, span = pts.min(axis=0), np.ptp(pts, axis=0)
    span[span == 0] = 1.0
    try:
        tri = Delaunay((pts - lo) / span)
    except QhullError:
        out["note"] = "the points are collinear: no contour"
        return out
    target = math.log10(LEVEL)
    for curve in CURVES:
        f = _values(results, curve) - target
        segments = []
        for simplex in tri.simplices:
            if not np.isfinite(f[simplex]).all():
                continue
            crossing = []
            for a, b in ((0, 1), (1, 2), (2, 0)):
                i, j = simplex[a], simplex[b]
                if (f[i] > 0) != (f[j] > 0):
                    t = f[i] / (f[i] - f[j])
                    crossing.append((pts[i] + t * (pts[j] - pts[i])).tolist())
            if len(crossing) == 2:
                segments.append(crossing)
        out["curves"][curve] = segments
    return out


def _colour(cls: float | None) -> str:
    """Red for excluded (CLs < 0.05), through yellow, to blue for allowed."""
    if cls is None:
        return "rgb(160,160,160)"  # not evaluated, or CLs null (see its reason)
    x = min(max((math.log10(max(cls, 1e-12)) + 4.0) / 4.0, 0.0), 1.0)
    r, g, b = (
        int(215 - 170 * x),
        int(48 + 140 * (1 - abs(x - 0.5) * 2) + 20 * x),
        int(39 + 180 * x),
    )
    return f"rgb({r},{g},{b})"


def _cls_text(result: dict) -> str:
    if result.get("error"):
        return f"not evaluated: {result['error']}"
    if result["cls_obs"] is None:
        return f"CLs null: {result.get('null_reasons', {}).get('cls_obs', 'no value')}"
    return f"CLs {result['cls_obs']:.3g}"


def svg(
    results: list[dict], contour: dict, labels: list[str], width: int = 640, height: int = 480
) -> str:
    """A standalone SVG: points coloured by observed CLs, observed and expected contours."""
    x_label, y_label = contour["x_label"], contour["y_label"]
    ix, iy = labels.index(x_label), labels.index(y_label)
    xs = [float(r["values"][ix]) for r in results]
    ys = [float(r["values"][iy]) for r in results]
    margin = 60
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    y0, y1 = min(ys), max(ys) if max(ys) > min(ys) else min(ys) + 1

    def px(x, y):
        return (
            margin + (x - x0) / (x1 - x0) * (width - 2 * margin),
            height - margin - (y - y0) / (y1 - y0) * (height - 2 * margin),
        )

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        '<rect width="100%" height="100%" fill="white"/>',
        f'<line x1="{margin}" y1="{height - margin}" x2="{width - margin}" '
        f'y2="{height - margin}" stroke="black"/>',
        f'<line x1="{margin}" y1="{margin}" x2="{margin}" y2="{height - margin}" stroke="black"/>',
    ]
    for value, pos in ((x0, "start"), (x1, "end")):
        x, _ = px(value, y0)
        parts.append(
            f'<text x="{x:.1f}" y="{height - margin + 16}" text-anchor="{pos}">{value:g}</text>'
        )
    for value in (y0, y1):
        _, y = px(x0, value)
        parts.append(f'<text x="{margin - 6}" y="{y + 4:.1f}" text-anchor="end">{value:g}</text>')
    parts.append(
        f'<text x="{width / 2}" y="{height - 18}" text-anchor="middle">{escape(x_label)}</text>'
    )
    parts.append(
        f'<text x="16" y="{height / 2}" text-anchor="middle" '
        f'transform="rotate(-90 16 {height / 2})">{escape(y_label)}</text>'
    )
    for r, x, y in zip(results, xs, ys, strict=True):
        cx, cy = px(x, y)
        parts.append(
            f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="5" fill="{_colour(r["cls_obs"])}">'
            f"<title>{escape(str(r.get('patch')))}: {_cls_text(r)}</title>"
            "</circle>"
        )
    styles = {
        "observed": 'stroke="black" stroke-width="2.5"',
        "expected": 'stroke="#1f5fbf" stroke-width="2" stroke-dasharray="6 4"',
        "expected_minus_1sigma": 'stroke="#1f5fbf" stroke-width="1" stroke-dasharray="2 3"',
        "expected_plus_1sigma": 'stroke="#1f5fbf" stroke-width="1" stroke-dasharray="2 3"',
    }
    for curve, segments in contour.get("curves", {}).items():
        for (ax, ay), (bx, by) in segments:
            (p1x, p1y), (p2x, p2y) = px(ax, ay), px(bx, by)
            parts.append(
                f'<line x1="{p1x:.1f}" y1="{p1y:.1f}" x2="{p2x:.1f}" y2="{p2y:.1f}" '
                f'{styles[curve]} class="{curve}"/>'
            )
    parts.append(
        f'<text x="{width - margin}" y="{margin - 20}" text-anchor="end">'
        "black: observed CLs = 0.05; blue dashed: expected (dotted: ±1σ)</text>"
    )
    parts.append("</svg>")
    return "\n".join(parts)
