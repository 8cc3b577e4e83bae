"""Upper limits (reinterpret/fitter/limits.py): each limit is where CLs, computed afresh by
a hypothesis test at that mu, equals the level; including where the warm-started fits of the
search follow a valley that is not the lowest one at the limit."""

from __future__ import annotations

import numpy as np
import pytest

from reinterpret.fitter import InferenceOptions, compile_models, hypotest
from reinterpret.fitter.limits import expected_targets
from tests.shared_data import load
from tests.test_fitter_random import random_workspace

LEVEL = 0.05


def _cls_at_limits(model, result) -> list[tuple[float, float]]:
    """(CLs at the limit, level) for every limit of the point: observed, then the band."""
    out = []
    if result.mu_up_obs is not None:
        (at,) = hypotest(model, InferenceOptions(mu_test=result.mu_up_obs))
        out.append((at.cls_obs, LEVEL))
    for k, mu in enumerate(result.mu_up_exp):
        if mu is not None:
            (at,) = hypotest(model, InferenceOptions(mu_test=mu))
            out.append((at.cls_exp[k], LEVEL))
    return out


def test_the_expected_targets_give_the_level():
    """sqrt(q_A) targets: Q(n + s) / Q(n) = level for each band n."""
    from scipy.stats import norm

    n = np.array([2.0, 1.0, 0.0, -1.0, -2.0])
    s = expected_targets(LEVEL)
    assert np.allclose(norm.sf(n + s) / norm.sf(n), LEVEL, rtol=1e-12)
    assert s[2] == pytest.approx(1.959964, abs=1e-6)


@pytest.mark.parametrize("seed", [0, 3, 4, 6])
def test_cls_is_the_level_at_every_limit(seed):
    model = compile_models([random_workspace(seed)])
    (result,) = hypotest(model, InferenceOptions(upper_limit=True))
    assert result.limits_converged, result.warnings
    checked = _cls_at_limits(model, result)
    assert len(checked) == 6
    for cls, level in checked:
        assert cls == pytest.approx(level, rel=2e-5)


def test_a_limit_in_a_lower_valley_than_the_warm_starts_one():
    """sbottom_400_205_60: the observed limit's fits, warm-started from the fit at mu = 1,
    stay in a valley that at mu ~ 0.32 lies above another; the limit had come out 0.3233
    where CLs is 0.0508. Fits from the signal-free optimum find the lower valley."""
    bkg = load("sbottom", "BkgOnly.json")
    ps = load("sbottom", "patchset.json")
    from reinterpret import services

    (point,) = services.patch_points(bkg, ps, ["sbottom_400_205_60"])
    model = compile_models([point.workspace])
    (result,) = hypotest(model, InferenceOptions(upper_limit=True))
    assert result.limits_converged, result.warnings
    assert result.mu_up_obs == pytest.approx(0.32614, abs=2e-5)
    for cls, level in _cls_at_limits(model, result):
        assert cls == pytest.approx(level, rel=2e-5)


def test_a_limit_whose_newton_step_ends_beyond_the_bound_is_above_the_bound():
    """sbottom_600_580_450: CLs of the +1 sigma band is still 0.0506 at the POI's upper bound
    10, where Newton steps land just past it: the limit is null and flagged, not 10."""
    bkg = load("sbottom", "BkgOnly.json")
    ps = load("sbottom", "patchset.json")
    from reinterpret import services

    (point,) = services.patch_points(bkg, ps, ["sbottom_600_580_450"])
    model = compile_models([point.workspace])
    (result,) = hypotest(model, InferenceOptions(upper_limit=True))
    (at_bound,) = hypotest(model, InferenceOptions(mu_test=10.0))
    for k, above in enumerate(result.limit_above_poi_bound_exp):
        if at_bound.cls_exp[k] > LEVEL:
            assert above and result.mu_up_exp[k] is None
        else:
            assert not above and result.mu_up_exp[k] < 10.0
    assert any(result.limit_above_poi_bound_exp)


class _Fits:
    """The part of the CLs fits the Asimov curve reads: the Asimov global fit."""

    def __init__(self, theta, hessian):
        self.asimov_free = type("Fit", (), {"theta": theta, "hessian": hessian})


class _Model:
    def __init__(self, size):
        self.size, self.poi_index = size, 0
        self.lower = np.zeros((size, 2))
        self.fixed = np.zeros((size, 2), dtype=bool)


def test_the_shared_asimov_curve_interpolates_between_evaluations_that_bracket_a_target():
    """sqrt(q_A) = mu (1 + mu / 4) / sigma: evaluations of two points at a few mu give every
    target's root to the cubic interpolant's accuracy; a target beyond the evaluations, or
    between evaluations that do not increase, gets none; forgotten evaluations are gone."""
    from reinterpret.fitter.limits import _AsimovCurve

    sigma = np.array([0.5, 2.0])
    # Hessians whose POI variance is sigma^2 (the nuisance parameter uncorrelated).
    hessian = np.zeros((2, 2, 2))
    hessian[:, 0, 0] = 1.0 / sigma**2
    hessian[:, 1, 1] = 1.0
    curve = _AsimovCurve(_Model(2), _Fits(np.zeros((2, 2)), hessian))

    def s(mu, b):
        return mu * (1.0 + mu / 4.0) / sigma[b]

    def ds(mu, b):
        return (1.0 + mu / 2.0) / sigma[b]

    for b in (0, 1):
        mu = np.array([0.3, 0.6, 1.0]) * sigma[b] * 2.0
        curve.add(np.full(3, b), mu, s(mu, b), ds(mu, b))
    targets = expected_targets(LEVEL)
    points = np.repeat([0, 1], 5)
    found = curve.roots(points, np.tile(targets, 2))
    truth = np.array([(-1.0 + np.sqrt(1.0 + sigma[b] * t)) * 2.0 for b in (0, 1) for t in targets])
    inside = np.tile(targets, 2) <= np.repeat([s(2.0 * sigma[b], b) for b in (0, 1)], 5)
    assert inside.any() and not inside.all()
    assert np.allclose(found[inside], truth[inside], rtol=2e-3)
    assert np.isnan(found[~inside]).all()
    # An evaluation that breaks the increase: no root from the pair around it.
    curve.add(np.array([0]), np.array([0.7]), np.array([0.1]), np.array([1.0]))
    assert np.isnan(curve.roots(np.array([0]), np.array([targets[0]])))[0]
    curve.forget(np.array([0]))
    assert np.isnan(curve.roots(np.array([0]), targets[:1])).all()
    assert np.isfinite(curve.roots(np.array([1]), targets[:1])).all()


def test_a_warm_start_where_the_likelihood_is_not_finite_is_fitted_again_from_the_background(
    monkeypatch,
):
    """sbottom_500_131_1 on its own: the Asimov fits of the +1 and +2 sigma curves at the
    first guesses (2.7 and 3.9), warm-started from mu = 1 moved along the profile path,
    start where -log L is not finite. Those evaluations counted as excluded, and the search
    walked down to mu = 1.000003 in some twenty rounds before fits from the signal-free
    optimum found their way back (25 rounds in all). Now such a fit starts again from there
    at once: every evaluation of the search is a number, and the limits are where CLs is
    the level."""
    from reinterpret import services
    from reinterpret.fitter import limits

    (point,) = services.patch_points(
        load("sbottom", "BkgOnly.json"), load("sbottom", "patchset.json"), ["sbottom_500_131_1"]
    )
    model = compile_models([point.workspace])
    residuals = []
    step = limits._step

    def spy(curves, roots, x, values, *rest):
        residuals.append(values[0])
        return step(curves, roots, x, values, *rest)

    monkeypatch.setattr(limits, "_step", spy)
    (result,) = hypotest(model, InferenceOptions(upper_limit=True))
    assert result.limits_converged, result.warnings
    assert np.isfinite(np.concatenate(residuals)).all()
    assert len(residuals) <= 6
    assert result.mu_up_exp[3] == pytest.approx(3.0362, abs=2e-4)
    assert result.mu_up_exp[4] == pytest.approx(3.7190, abs=2e-4)
    checked = _cls_at_limits(model, result)
    assert len(checked) == 6
    for cls, level in checked:
        assert cls == pytest.approx(level, rel=2e-5)


@pytest.mark.parametrize(
    ("analysis", "name", "curve"),
    [("sbottom", "sbottom_600_131_1", 3), ("1lbb", "C1N2_Wh_hbb_600_100", 0)],
)
def test_a_root_settled_by_a_warm_evaluation_is_checked_from_the_signal_free_optimum(
    monkeypatch, analysis, name, curve
):
    """A root whose last evaluation had warm-started fits only is settled by it once fits
    from the signal-free optimum at the same mu find no lower minimum (limits._check). On
    these points they do find one for one root (sbottom_600_131_1: the -1 sigma curve's
    Asimov fit; 1lbb C1N2_Wh_hbb_600_100: the observed curve's): that root's search goes on
    from the lower minimum, and every limit is still where CLs computed afresh is the level."""
    from reinterpret import services
    from reinterpret.fitter import limits

    (point,) = services.patch_points(
        load(analysis, "BkgOnly.json"), load(analysis, "patchset.json"), [name]
    )
    model = compile_models([point.workspace])
    checks = []
    check = limits._check

    def spy(model, fits, options, curves, roots, x, warm):
        deeper = check(model, fits, options, curves, roots, x, warm)
        checks.extend(zip(curves.curve[roots].tolist(), deeper.tolist(), strict=True))
        return deeper

    monkeypatch.setattr(limits, "_check", spy)
    (result,) = hypotest(model, InferenceOptions(upper_limit=True))
    assert result.limits_converged, result.warnings
    assert (curve, True) in checks
    assert sum(not deeper for _, deeper in checks) > 0  # roots settled after the check
    checked = _cls_at_limits(model, result)
    assert len(checked) == 6
    for cls, level in checked:
        assert cls == pytest.approx(level, rel=2e-5)


@pytest.mark.parametrize("seed", [0, 4])
def test_the_residuals_second_derivative_comes_from_the_profile_curvature(seed):
    """Each root's residual r(mu) (sqrt(q_A) minus its target; log level - log CLs for the
    observed curve) has a second derivative computed from the curvatures of the profile
    likelihoods (H_mu,mu minus its Schur complement over the free parameters, from the
    fits' Hessians): it agrees with the difference quotient of r's slopes from fits at
    mu -+ h, and the second-order step it gives lands nearer the root than Newton's."""
    from reinterpret.fitter import limits
    from reinterpret.fitter.infer import run_fits
    from reinterpret.fitter.optimize import FitOptions, minimize, profile_path

    tight = FitOptions(tolerance=1e-15)  # slopes to rounding, for the difference quotient
    model = compile_models([random_workspace(seed)])
    options = InferenceOptions(upper_limit=True)
    (result,) = hypotest(model, options)
    fits = run_fits(model, options)
    curves = limits._Curves(model, fits, options)
    poi = model.poi_index
    roots = np.arange(limits.CURVES)
    fixed = np.repeat(model.fixed, 2, axis=0)
    fixed[:, poi] = True

    def residuals(mu):
        start = np.stack([fits.asimov_fixed_mu.theta[0], fits.fixed_mu.theta[0]])
        start[:, poi] = mu
        main = np.stack([fits.asimov_main[0], model.observed[0]])
        aux = np.stack([fits.asimov_aux[0], model.aux[0]])
        out = minimize(model, np.zeros(2, dtype=int), main, aux, start, fixed, tight, True)
        assert out.converged.all()
        _, curvature = profile_path(out, fixed, poi)
        slope = out.gradient[:, poi]
        asimov = (out.nll[0], slope[0], True, curvature[0])
        return curves.residuals(
            roots,
            np.full(roots.size, mu),
            tuple(np.full(roots.size, v) for v in asimov),
            (out.nll[1:], slope[1:], out.converged[1:], curvature[1:]),
        )

    mu = result.mu_up_exp[2]  # where every curve's residual is defined and smooth
    r, dr, d2r, ok, *_ = residuals(mu)
    h = 1e-3 * mu
    quotient = (residuals(mu + h)[1] - residuals(mu - h)[1]) / (2.0 * h)
    assert ok.all() and np.isfinite(d2r).all()
    assert np.abs(d2r).max() * mu * mu > 1e-2  # the curves are not straight lines
    assert np.allclose(d2r, quotient, rtol=1e-3, atol=1e-6 / (mu * mu))
    # From mu, the median expected curve is at its root; the others are 10-40 % away.
    truth = np.array([result.mu_up_obs, *result.mu_up_exp])
    newton = mu - r / dr
    second = mu - 2.0 * r / (dr + np.sqrt(dr * dr - 2.0 * r * d2r))
    far = np.abs(truth - mu) > 0.05 * mu
    assert far.sum() >= 3
    err_second, err_newton = np.abs(second - truth)[far], np.abs(newton - truth)[far]
    assert np.all(err_second < err_newton)
    assert err_second.sum() < 0.5 * err_newton.sum()


@pytest.mark.parametrize("name", ["sbottom_400_205_60", "sbottom_1000_205_60"])
def test_the_checking_fits_stop_in_the_warm_fits_basin_and_change_no_limit(monkeypatch, name):
    """The limit search's fits from the signal-free optimum are given the warm-started fits'
    minima to beat (minimize's beat): most stop once they head into that very minimum
    (SAME_MESSAGE), and the limits are those of checking fits run to convergence (for
    sbottom_400_205_60 the observed limit's checking fit finds a lower valley, which it
    still does)."""
    from reinterpret import services
    from reinterpret.fitter import limits
    from reinterpret.fitter.optimize import SAME_MESSAGE

    (point,) = services.patch_points(
        load("sbottom", "BkgOnly.json"), load("sbottom", "patchset.json"), [name]
    )
    model = compile_models([point.workspace])
    minimize = limits.minimize
    messages = []

    def spy(*args, **kw):
        out = minimize(*args, **kw)
        if kw.get("beat") is not None:
            messages.extend(out.messages)
        return out

    monkeypatch.setattr(limits, "minimize", spy)
    (result,) = hypotest(model, InferenceOptions(upper_limit=True))
    stopped = messages.count(SAME_MESSAGE)
    assert stopped >= len(messages) // 2 > 0

    def unbeaten(*args, **kw):
        kw.pop("beat", None)
        return minimize(*args, **kw)

    monkeypatch.setattr(limits, "minimize", unbeaten)
    (full,) = hypotest(model, InferenceOptions(upper_limit=True))
    assert result.limits_converged and full.limits_converged, (result.warnings, full.warnings)
    assert result.mu_up_obs == pytest.approx(full.mu_up_obs, rel=1e-6)
    assert result.mu_up_exp == pytest.approx(full.mu_up_exp, rel=1e-6)
    if name == "sbottom_400_205_60":
        assert result.mu_up_obs == pytest.approx(0.32614, abs=2e-5)


@pytest.mark.parametrize("name", ["C1N2_Wh_hbb_800_100", "C1N2_Wh_hbb_900_100"])
def test_the_limit_search_tries_mirrored_starts_as_the_hypothesis_test_does(monkeypatch, name):
    """The fits that settle a limit (limits._from_signal_free) also get the hypothesis test's
    mirrored starts (starts.try_flips), from the lower of the warm and the signal-free fit.
    On these 1lbb points the data's fixed-POI fit at the observed limit has a lower minimum
    one mirror away; without them CLs computed afresh at the limit was 0.4-0.9 % off the
    level, with them it is the level."""
    from types import SimpleNamespace

    from reinterpret import services
    from reinterpret.fitter import limits, starts

    (point,) = services.patch_points(
        load("1lbb", "BkgOnly.json"), load("1lbb", "patchset.json"), [name]
    )
    model = compile_models([point.workspace])

    def observed_off_level() -> float:
        (result,) = hypotest(model, InferenceOptions(upper_limit=True))
        assert result.limits_converged, result.warnings
        (at,) = hypotest(model, InferenceOptions(mu_test=result.mu_up_obs))
        return abs(at.cls_obs / LEVEL - 1.0)

    assert observed_off_level() < 2e-5
    no_flips = SimpleNamespace(try_flips=lambda *args: args[-1], IMPROVEMENT=starts.IMPROVEMENT)
    monkeypatch.setattr(limits, "starts", no_flips)
    assert observed_off_level() > 1e-3
