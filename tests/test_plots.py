"""Exclusion contours as polylines, grid slices and the figures, without Django: the real
sbottom grid's mn1 = 60 slice (130 points, evaluated once per session) and small synthetic
grids whose contour is known."""

from __future__ import annotations

import csv
import io
import math

import numpy as np
import pytest
from scipy.interpolate import LinearNDInterpolator

from reinterpret import contours, formatting, plots
from tests.shared_data import load

LABELS = ["msb", "mn2", "mn1"]


@pytest.fixture(scope="module")
def sbottom_slice():
    """Hypothesis-test results of the sbottom points with mn1 = 60 (no limits: ~1 s)."""
    from reinterpret import services

    bkg = load("sbottom", "BkgOnly.json")
    ps = load("sbottom", "patchset.json")
    names = contours.select_points(ps["patches"], LABELS, {"fixed": {"mn1": 60}})
    results = services.evaluate(services.patch_points(bkg, ps, names), services.Settings())
    return ps, results


def _interpolated_log_cls(results, curve):
    """An independent interpolator of log10 CLs on the same unit-scaled Delaunay grid."""
    pts, logs, _ = contours.triangulation(results, LABELS, "msb", "mn2", curve)
    lo, span = pts.min(axis=0), np.ptp(pts, axis=0)
    interp = LinearNDInterpolator((pts - lo) / span, logs)
    return lambda xy: interp((np.asarray(xy) - lo) / span)


def test_sbottom_slices_are_offered_most_populated_first(sbottom_slice):
    ps, _ = sbottom_slice
    found = contours.slices(LABELS, [p["metadata"]["values"] for p in ps["patches"]], "msb", "mn2")
    assert found[0] == {"fixed": {"mn1": 60}, "points": 130}
    assert len(found) == 22 and sum(s["points"] for s in found) == len(ps["patches"])
    assert contours.default_slice(
        LABELS, [p["metadata"]["values"] for p in ps["patches"]], "msb", "mn2"
    ) == {"mn1": 60}


def test_sbottom_mn1_60_contours_are_a_handful_of_polylines_on_the_005_level(sbottom_slice):
    _, results = sbottom_slice
    assert len(results) == 130
    contour = contours.scan_view(results, LABELS, {"x": "msb", "y": "mn2", "fixed": {"mn1": 60}})
    assert contour["fixed"] == {"mn1": 60}
    for curve, lines in contour["curves"].items():
        assert 1 <= len(lines) <= 5, (curve, [len(line) for line in lines])
        level = _interpolated_log_cls(results, curve)
        vertices = np.array([xy for line in lines for xy in line])
        values = level(vertices)
        assert np.all(np.isfinite(values)), curve
        np.testing.assert_allclose(values, math.log10(0.05), atol=1e-6, err_msg=curve)
        for line in lines:
            assert len(line) >= 2
            steps = np.diff(np.asarray(line), axis=0)
            # Consecutive vertices of a line are neighbours on the grid, never a jump across it.
            assert np.hypot(*steps.T).max() < 300, curve
    # One clean observed line: the bulk of the crossings are joined into the first polyline.
    observed = sorted(contour["curves"]["observed"], key=len, reverse=True)
    assert len(observed[0]) >= 0.8 * sum(len(line) for line in observed)


def test_polylines_of_a_known_plane_cross_where_the_function_is_zero():
    # CLs = 0.05 exactly on the circle x^2 + y^2 = 1 of log10 CLs - log10 0.05 = r^2 - 1.
    xs, ys = np.meshgrid(np.linspace(-2, 2, 21), np.linspace(-2, 2, 21))
    results = [
        {
            "values": [float(x), float(y), 0],
            "cls_obs": 0.05 * 10 ** (x * x + y * y - 1.0),
            "cls_exp": [0.05 * 10 ** (x * x + y * y - 1.0)] * 5,
        }
        for x, y in zip(xs.ravel(), ys.ravel(), strict=True)
    ]
    contour = contours.contours(results, ["a", "b", "c"], "a", "b")
    (line,) = contour["curves"]["observed"]
    assert line[0] == line[-1], "a closed curve repeats its first vertex"
    radii = np.hypot(*np.asarray(line).T)
    assert np.all(np.abs(radii - 1.0) < 0.05) and len(line) > 20


def test_points_without_a_value_are_left_out_not_drawn_as_zero():
    results = [
        {
            "values": [x, y],
            "cls_obs": (0.01 if x < 1.5 else 0.5) if (x, y) != (1, 1) else None,
            "cls_exp": [0.01 if x < 1.5 else 0.5] * 5,
        }
        for x in range(4)
        for y in range(4)
    ]
    contour = contours.contours(results, ["a", "b"], "a", "b")
    xs = [xy[0] for line in contour["curves"]["observed"] for xy in line]
    # Every crossing lies between an excluded (x <= 1) and an allowed (x >= 2) point.
    assert xs and all(0.0 < x < 2.0 for x in xs)
    assert contours.contours(results, ["a", "b"], "a", "b")["points"] == 16


def test_contour_csv_has_one_row_per_vertex(sbottom_slice):
    _, results = sbottom_slice
    contour = contours.scan_view(results, LABELS, {"x": "msb", "y": "mn2", "fixed": {"mn1": 60}})
    rows = list(csv.reader(io.StringIO(contours.contour_csv(contour))))
    assert rows[0] == ["curve", "line", "point", "msb", "mn2"]
    assert len(rows) - 1 == sum(len(line) for lines in contour["curves"].values() for line in lines)


@pytest.mark.parametrize("fmt, magic", [("svg", b"<svg"), ("png", b"\x89PNG"), ("pdf", b"%PDF")])
def test_exclusion_plot_carries_titles_legend_and_curves(sbottom_slice, fmt, magic):
    _, results = sbottom_slice
    contour = contours.scan_view(results, LABELS, {"x": "msb", "y": "mn2", "fixed": {"mn1": 60}})
    info = {"msb": {"title": "sbottom mass", "unit": "GeV"}}
    body = plots.exclusion_plot(contour, results, LABELS, fmt, info)
    assert magic in body[:300]
    if fmt == "svg":
        text = body.decode()
        for words in (
            "sbottom mass [GeV]",
            "mn2",
            "Observed limit",
            "Expected limit",
            "Expected ±1σ",
            "mn1 = 60",
            "Observed CLs",
        ):
            assert words in text, words
        assert 'id="observed-0"' in text and 'id="expected-0"' in text


def test_upper_limit_map_needs_limits_and_labels_values():
    grid = [
        {
            "values": [x, y],
            "cls_obs": 0.02 * (1 + x),
            "cls_exp": [0.03 * (1 + x)] * 5,
            "mu_up_obs": 0.5 + x,
            "mu_up_exp": [0.4 + x] * 5,
        }
        for x in range(3)
        for y in range(3)
    ]
    contour = contours.contours(grid, ["a", "b"], "a", "b")
    svg = plots.upper_limit_map(contour, grid, ["a", "b"], "svg").decode()
    assert "95% CL upper limit on μ" in svg and "Observed" in svg and "2.5" in svg
    no_limits = [{k: v for k, v in p.items() if not k.startswith("mu_up")} for p in grid]
    with pytest.raises(plots.PlotError, match="no upper limits"):
        plots.upper_limit_map(contour, no_limits, ["a", "b"], "svg")
    with pytest.raises(plots.PlotError, match="unknown figure format"):
        plots.exclusion_plot(contour, grid, ["a", "b"], "gif")


def test_numbers_are_written_one_way():
    assert formatting.cls(7.08e-18) == "< 1e-6"
    assert formatting.cls(0.00000234) == "2.34e-06"
    assert formatting.cls(0.123456) == "0.123"
    assert formatting.cls(None) == "–" and formatting.cls(float("nan")) == "–"
    assert formatting.limit(None, above_bound=True, bound=10) == "> 10"
    assert formatting.limit(1.23456) == "1.23"
    assert formatting.limit(10.0, bound=10.0) == "> 10"
    assert formatting.limit(9.99, bound=10) == "9.99"
    assert formatting.limit(None, above_bound=True) == "> bound"
    assert formatting.verdict(0.01) == "excluded" and formatting.verdict(0.2) == "not excluded"
    assert formatting.verdict(None) == "unknown"


def test_yields_and_pulls_of_a_fit(sbottom_slice):
    from reinterpret import services
    from reinterpret.fitter import compile_models
    from reinterpret.fitter.postfit import fit_detail

    bkg = load("sbottom", "BkgOnly.json")
    ps, _ = sbottom_slice
    (point,) = services.patch_points(bkg, ps, ["sbottom_1000_650_60"])
    detail = fit_detail(compile_models([point.workspace]))
    assert detail["converged"] and not detail["notes"]
    assert sorted(c for c, _ in detail["channels"]) == ["CRtt_meff", "SR_meff"]
    for stage in ("prefit", "postfit"):
        for channel, total in detail[stage]["total"].items():
            summed = np.sum(list(detail[stage]["samples"][channel].values()), axis=0)
            np.testing.assert_allclose(summed, total, rtol=1e-9)
            band = detail[stage]["uncertainty"][channel]
            assert all(0 < b < t for b, t in zip(band, total, strict=True))
    pars = {p["name"]: p for p in detail["parameters"]}
    assert pars["mu_SIG"]["poi"] and pars["mu_SIG"]["constraint"] == "none"
    assert pars["lumi"]["constraint"] == "gaussian" and pars["lumi"]["error"] > 0
    svg = plots.yields_plot(detail, "SR_meff", "postfit", "svg").decode()
    assert "Data" in svg and "Uncertainty (post-fit)" in svg and "ttbar" in svg
    colours = plots.sample_colours(detail)
    assert colours["ttbar"] in plots.yields_plot(detail, "CRtt_meff", "prefit", "svg").decode()
    pulls = plots.pulls_plot(detail, "svg").decode()
    assert "lumi" in pulls and "mu_SIG (POI)" in pulls


def test_post_fit_uncertainty_of_a_free_normalisation_is_the_data_s_poisson_error():
    from reinterpret.fitter import compile_models
    from reinterpret.fitter.postfit import fit_detail

    workspace = {
        "channels": [
            {
                "name": "SR",
                "samples": [
                    {
                        "name": "bkg",
                        "data": [50.0],
                        "modifiers": [{"name": "mu_b", "type": "normfactor", "data": None}],
                    },
                    {
                        "name": "sig",
                        "data": [1.0],
                        "modifiers": [
                            {"name": "mu", "type": "normfactor", "data": None},
                            {"name": "syst", "type": "normsys", "data": {"hi": 1.1, "lo": 0.9}},
                        ],
                    },
                ],
            }
        ],
        "observations": [{"name": "SR", "data": [64.0]}],
        "measurements": [
            {
                "name": "m",
                "config": {
                    "poi": "mu",
                    "parameters": [
                        {"name": "mu", "fixed": True, "inits": [0.0], "bounds": [[0, 10]]}
                    ],
                },
            }
        ],
        "version": "1.0.0",
    }
    detail = fit_detail(compile_models([workspace]))
    # b * mu_b fitted to n = 64 counts: 64 +- sqrt(64) after the fit.
    assert detail["postfit"]["total"]["SR"][0] == pytest.approx(64.0, rel=1e-4)
    assert detail["postfit"]["uncertainty"]["SR"][0] == pytest.approx(8.0, rel=1e-3)
    # Before the fit only the constrained parameter counts: the signal is off (mu = 0).
    assert detail["prefit"]["uncertainty"]["SR"][0] == pytest.approx(0.0, abs=1e-9)
    pars = {p["name"]: p for p in detail["parameters"]}
    assert pars["mu_b"]["value"] == pytest.approx(1.28, rel=1e-4)
    assert pars["mu_b"]["error"] == pytest.approx(1.28 / 8.0, rel=1e-3)
    assert pars["syst"]["width"] == 1.0 and pars["syst"]["centre"] == 0.0


def test_a_scan_without_a_slice_draws_the_most_populated_one():
    def point(x, y, z):
        cls = 0.5 if x > 1.5 else 0.01
        return {"values": [x, y, z], "cls_obs": cls, "cls_exp": [cls] * 5}

    table = [point(x, y, 60) for x in range(4) for y in range(4)]
    table += [point(x, 7 - x, 1) for x in range(3)]  # a sparse slice across the plane
    contour = contours.scan_view(table, LABELS, {"x": "msb", "y": "mn2"})
    assert contour["fixed"] == {"mn1": 60} and contour["points"] == 16
    xs = [xy[0] for line in contour["curves"]["observed"] for xy in line]
    assert xs and all(1.0 < x < 2.0 for x in xs)
