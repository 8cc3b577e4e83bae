"""Exclusion contours and upper-limit maps in the plane of two signal labels.

The conventions of the ATLAS/CMS SUSY summary plots: the observed limit a solid line, the
expected limit a dashed line inside a yellow ±1σ band (±2σ as dotted lines), the grid points
behind them coloured by their observed CLs, axis titles with units, a legend.
"""

from __future__ import annotations

import math

import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.tri import Triangulation

from reinterpret import contours as contour_lib
from reinterpret import formatting
from reinterpret.plots.render import PlotError, axis_title, render

BAND_1SIGMA = "#ffdf00"  # the SUSY plots' yellow
EXPECTED = "#1f3f9f"
OBSERVED = "#b2182b"
LINE_STYLES = {
    "observed": {"color": OBSERVED, "linewidth": 2.4, "linestyle": "-"},
    "expected": {"color": EXPECTED, "linewidth": 1.8, "linestyle": "--"},
    "expected_minus_1sigma": {"color": "#c9a800", "linewidth": 0.8, "linestyle": "-"},
    "expected_plus_1sigma": {"color": "#c9a800", "linewidth": 0.8, "linestyle": "-"},
    "expected_minus_2sigma": {"color": "#777777", "linewidth": 0.8, "linestyle": ":"},
    "expected_plus_2sigma": {"color": "#777777", "linewidth": 0.8, "linestyle": ":"},
}
DRAW_ORDER = (
    "expected_minus_2sigma",
    "expected_plus_2sigma",
    "expected_minus_1sigma",
    "expected_plus_1sigma",
    "expected",
    "observed",
)


def _grid(points: list[dict], labels: list[str], x: str, y: str):
    ix, iy = labels.index(x), labels.index(y)
    xs = np.array([float(p["values"][ix]) for p in points])
    ys = np.array([float(p["values"][iy]) for p in points])
    return xs, ys


def _band(ax, points: list[dict], labels: list[str], x: str, y: str) -> bool:
    """Fill the ±1σ band: where the -1σ expectation excludes and the +1σ one does not.

    Both are linear in log10(CLs) on the triangles the contour lines use; the filled region is
    where max(f_-1, -f_+1) < 0 (f = log10 CLs - log10 0.05), which meets the band's two lines."""
    rows = []
    for p in points:
        lo = contour_lib.curve_value(p, "expected_minus_1sigma")
        hi = contour_lib.curve_value(p, "expected_plus_1sigma")
        if lo is not None and hi is not None:
            rows.append((p, min(lo, hi), max(lo, hi)))
    if len(rows) < 3:
        return False
    pts = np.column_stack(_grid([p for p, _, _ in rows], labels, x, y))
    triangles = contour_lib._triangulate(pts)
    if triangles is None:
        return False
    target = math.log10(contour_lib.LEVEL)
    f_lo = np.log10(np.clip([lo for _, lo, _ in rows], contour_lib.CLS_FLOOR, None)) - target
    f_hi = np.log10(np.clip([hi for _, _, hi in rows], contour_lib.CLS_FLOOR, None)) - target
    g = np.maximum(f_lo, -f_hi)
    if not (g < 0).any():
        return False
    tri = Triangulation(pts[:, 0], pts[:, 1], triangles=triangles)
    ax.tricontourf(tri, g, levels=[float(g.min()) - 1.0, 0.0], colors=[BAND_1SIGMA], zorder=1)
    return True


def _draw_lines(ax, contour: dict, curves=DRAW_ORDER) -> None:
    for curve in curves:
        style = LINE_STYLES[curve]
        for i, line in enumerate(contour.get("curves", {}).get(curve, [])):
            arr = np.asarray(line, dtype=float)
            (artist,) = ax.plot(arr[:, 0], arr[:, 1], zorder=4, **style)
            artist.set_gid(f"{curve}-{i}")


def _title(contour: dict, title: str) -> str:
    """The title on one line (shortened) and the slice on the next."""
    fixed = contour.get("fixed") or {}
    parts = [title if len(title) <= 80 else title[:79] + "…"] if title else []
    if fixed:
        parts.append(
            ", ".join(
                f"{k} = {v:g}" if isinstance(v, int | float) else f"{k} = {v}"
                for k, v in fixed.items()
            )
        )
    return "\n".join(parts)


def exclusion_plot(
    contour: dict,
    points: list[dict],
    labels: list[str],
    fmt: str = "svg",
    label_info: dict | None = None,
    title: str = "",
) -> bytes:
    """The exclusion plot of one slice: contour as from contours.contours (with "fixed"),
    points the slice's per-point results (values aligned with labels, cls_obs, cls_exp)."""
    x, y = contour["x_label"], contour["y_label"]
    info = label_info or {}
    usable = [p for p in points if contour_lib._numeric_point(p, labels.index(x), labels.index(y))]
    if not usable:
        raise PlotError("no point of this slice has numeric values on both axes")

    def draw(fig) -> None:
        ax = fig.subplots()
        xs, ys = _grid(usable, labels, x, y)
        cls = np.array(
            [contour_lib.curve_value(p, "observed") for p in usable], dtype=float
        )  # None -> nan
        has = np.isfinite(cls)
        norm = LogNorm(vmin=formatting.CLS_FLOOR, vmax=1.0)
        banded = _band(ax, usable, labels, x, y)
        scatter = ax.scatter(
            xs[has],
            ys[has],
            c=np.clip(cls[has], formatting.CLS_FLOOR, 1.0),
            norm=norm,
            cmap="RdYlBu",
            s=22,
            edgecolors="#333333",
            linewidths=0.4,
            zorder=3,
        )
        if (~has).any():
            ax.scatter(xs[~has], ys[~has], marker="x", color="#555555", s=22, zorder=3)
        _draw_lines(ax, contour)
        bar = fig.colorbar(scatter, ax=ax, pad=0.01)
        bar.set_label("Observed CLs")
        ax.set_xlabel(axis_title(x, info.get(x)))
        ax.set_ylabel(axis_title(y, info.get(y)))
        ax.minorticks_on()
        handles = [
            Line2D([], [], **LINE_STYLES["observed"], label="Observed limit (CLs = 0.05)"),
            Line2D([], [], **LINE_STYLES["expected"], label="Expected limit"),
        ]
        if banded:
            handles.append(Patch(facecolor=BAND_1SIGMA, label="Expected ±1σ"))
        handles.append(Line2D([], [], **LINE_STYLES["expected_plus_2sigma"], label="Expected ±2σ"))
        handles.append(
            Line2D([], [], marker="o", linestyle="", color="#888888", label="Signal points")
        )
        if (~has).any():
            # Points without an observed CLs: those that could not be evaluated (their error)
            # and those whose CLs is null (its reason is in the result).
            failed = sum(1 for p in usable if p.get("error"))
            nulls = int((~has).sum()) - failed
            parts = [f"{failed} not evaluated"] if failed else []
            parts += [f"{nulls} with CLs null"] if nulls else []
            handles.append(
                Line2D([], [], marker="x", linestyle="", color="#555555", label="; ".join(parts))
            )
        # Upper left: where a mass grid has no points (the lighter particle is lighter).
        ax.legend(handles=handles, loc="upper left", fontsize="small", frameon=True)
        heading = _title(contour, title)
        if heading:
            ax.set_title(heading, fontsize="small", loc="left")
        _pad_limits(ax, xs, ys)

    return render(draw, fmt, (7.5, 5.6))


def _pad_limits(ax, xs: np.ndarray, ys: np.ndarray) -> None:
    for values, setter in ((xs, ax.set_xlim), (ys, ax.set_ylim)):
        lo, hi = float(values.min()), float(values.max())
        pad = 0.04 * (hi - lo) if hi > lo else 1.0
        # Room above for the legend.
        setter(lo - pad, hi + (pad * 6 if setter == ax.set_ylim else pad))


def upper_limit_map(
    contour: dict,
    points: list[dict],
    labels: list[str],
    fmt: str = "svg",
    label_info: dict | None = None,
    title: str = "",
    poi_bound: float | None = None,
) -> bytes:
    """Observed and expected (median) upper limits on mu at 95% CL over one slice, side by
    side, each point labelled with its value; the mu = 1 contours (CLs = 0.05) drawn over."""
    x, y = contour["x_label"], contour["y_label"]
    info = label_info or {}
    usable = [p for p in points if contour_lib._numeric_point(p, labels.index(x), labels.index(y))]
    if not usable:
        raise PlotError("no point of this slice has numeric values on both axes")
    if not any("mu_up_obs" in p for p in usable):
        raise PlotError("this scan has no upper limits (run it with upper limits)")
    panels = (("observed", "obs", "Observed"), ("expected", 2, "Expected (median)"))

    def draw(fig) -> None:
        axes = fig.subplots(1, 2, sharey=True)
        xs, ys = _grid(usable, labels, x, y)
        values = {
            curve: np.array(
                [
                    np.nan
                    if (v := contour_lib.curve_value(p, curve, "mu_up")) is None or v <= 0
                    else v
                    for p in usable
                ]
            )
            for curve, _, _ in panels
        }
        finite = np.concatenate([v[np.isfinite(v)] for v in values.values()])
        if not finite.size:
            raise PlotError("no point of this slice has an upper limit")
        norm = LogNorm(vmin=float(finite.min()), vmax=max(float(finite.max()), finite.min() * 10))
        for ax, (curve, flag_key, heading) in zip(axes, panels, strict=True):
            v = values[curve]
            has = np.isfinite(v)
            mappable = ax.scatter(
                xs[has], ys[has], c=v[has], norm=norm, cmap="viridis", s=60, marker="s", zorder=2
            )
            if (~has).any():
                ax.scatter(xs[~has], ys[~has], marker="x", color="#555555", s=22, zorder=2)
            for p, px, py, value in zip(usable, xs, ys, v, strict=True):
                above = formatting.limit_above_bound(p, flag_key)
                text = formatting.limit(None if not np.isfinite(value) else value, above, poi_bound)
                ax.annotate(
                    text,
                    (px, py),
                    textcoords="offset points",
                    xytext=(0, 6),
                    ha="center",
                    fontsize=5.5,
                    zorder=5,
                )
            _draw_lines(ax, contour, ("observed",) if curve == "observed" else ("expected",))
            ax.set_title(heading, fontsize="medium", loc="left")
            ax.set_xlabel(axis_title(x, info.get(x)))
            ax.minorticks_on()
            _pad_limits(ax, xs, ys)
        axes[0].set_ylabel(axis_title(y, info.get(y)))
        axes[0].legend(
            handles=[
                Line2D([], [], **LINE_STYLES["observed"], label="Observed μ = 1 (CLs = 0.05)"),
                Line2D([], [], **LINE_STYLES["expected"], label="Expected μ = 1"),
            ],
            loc="upper left",
            fontsize="x-small",
        )
        bar = fig.colorbar(mappable, ax=list(axes), pad=0.01)
        bar.set_label("95% CL upper limit on μ")
        heading = _title(contour, title)
        if heading:
            fig.suptitle(heading, fontsize="small")

    return render(draw, fmt, (11.0, 5.2))
