"""Global-minimum safeguards: a workspace whose likelihood folds (normsys with hi and lo both
above 1) has two minima in its signal-free fit, and a fit from the measurement's inits ends in
the higher one, as pyhf's does. The multi-start fit reaches the lower one, says so, and its
numbers are pyhf's when pyhf is started in that basin."""

from __future__ import annotations

import numpy as np
import pytest

from reinterpret.fitter import InferenceOptions, compile_models, hypotest, infer, starts
from reinterpret.fitter.optimize import minimize, stopped_by_beat


def _normsys(name: str, hi: float, lo: float) -> dict:
    return {"name": name, "type": "normsys", "data": {"hi": hi, "lo": lo}}


def _histosys(nominal: list[float], up: float, down: float) -> dict:
    return {
        "name": "jes",
        "type": "histosys",
        "data": {"hi_data": [n * up for n in nominal], "lo_data": [n * down for n in nominal]},
    }


def fold_workspace() -> dict:
    """Four channels: a signal region; CRa, where 'top' has a normsys np_fold with hi and lo
    both above 1 and the data lie 20 % above the prediction (matched at np_fold = +-0.8);
    CRb, where np_fold is an ordinary variation and the data prefer it negative; CRc, the
    control region of a shapefactor. Also histosys, shapesys, staterror."""
    sig = {
        "name": "signal",
        "data": [6.0, 3.0],
        "modifiers": [
            {"name": "mu", "type": "normfactor", "data": None},
            {"name": "sig_stat", "type": "staterror", "data": [0.6, 0.4]},
        ],
    }
    sf = {"name": "sf", "type": "shapefactor", "data": None}
    channels = [
        (
            "SR",
            [
                sig,
                (
                    "top",
                    [40.0, 20.0],
                    [
                        _normsys("np_fold", 1.3, 1.25),
                        _histosys([40.0, 20.0], 1.05, 0.96),
                        {"name": "stat_SR", "type": "staterror", "data": [2.0, 1.5]},
                    ],
                ),
                ("wjets", [15.0, 10.0], [sf, _normsys("np_fold2", 1.1, 0.92)]),
            ],
        ),
        (
            "CRa",
            [
                (
                    "top",
                    [400.0, 300.0],
                    [
                        _normsys("np_fold", 1.3, 1.25),
                        {"name": "stat_CRa", "type": "staterror", "data": [6.0, 5.0]},
                    ],
                ),
                (
                    "other",
                    [50.0, 40.0],
                    [
                        {"name": "shape_other", "type": "shapesys", "data": [5.0, 4.0]},
                        _normsys("np_fold2", 1.12, 1.05),
                    ],
                ),
            ],
        ),
        (
            "CRb",
            [
                (
                    "top",
                    [200.0, 150.0],
                    [_normsys("np_fold", 1.06, 0.94), _histosys([200.0, 150.0], 1.03, 0.98)],
                ),
                ("other", [30.0, 20.0], [_normsys("np_fold2", 1.1, 0.9)]),
            ],
        ),
        ("CRc", [("wjets", [300.0, 200.0], [sf, _normsys("np_fold2", 1.05, 0.95)])]),
    ]
    observed = {
        "SR": [62.0, 33.0],
        "CRa": [540.0, 408.0],
        "CRb": [218.0, 161.0],
        "CRc": [310.0, 195.0],
    }
    return {
        "channels": [
            {
                "name": name,
                "samples": [
                    s if isinstance(s, dict) else {"name": s[0], "data": s[1], "modifiers": s[2]}
                    for s in samples
                ],
            }
            for name, samples in channels
        ],
        "observations": [{"name": k, "data": v} for k, v in observed.items()],
        "version": "1.0.0",
        "measurements": [{"name": "m", "config": {"poi": "mu", "parameters": []}}],
    }


def test_the_folding_parameters_are_found():
    model = compile_models([fold_workspace()])
    folds = {model.labels[0][i] for i in np.flatnonzero(model.folds)}
    assert folds == {"np_fold", "np_fold2"}  # hi, lo both > 1 somewhere; jes is ordinary


def test_a_single_start_ends_in_the_higher_minimum_and_the_safeguarded_fit_in_the_lower():
    model = compile_models([fold_workspace()])
    fold = model.labels[0].index("np_fold")
    th, fx = infer._set_poi(model, model.init, model.fixed, 0.0)
    rows = np.arange(1)
    single = minimize(model, rows, model.observed, model.aux, th, fx)
    fits = infer.run_fits(model, InferenceOptions())
    zero = fits.background
    assert single.converged[0] and single.theta[0, fold] > 0.5
    assert zero.converged[0] and zero.theta[0, fold] < -0.5
    gap = 2.0 * (single.nll[0] - zero.nll[0])
    assert gap > 1.0
    assert 2.0 * zero.spread[0] == pytest.approx(gap, abs=1e-6)
    (result,) = hypotest(model, InferenceOptions())
    assert result.converged
    assert result.start_spread == pytest.approx(gap, abs=1e-6)
    assert any("signal-free" in w or "background-only" in w for w in result.warnings)
    assert any("different minima" in w for w in result.warnings)


@pytest.mark.slow
def test_the_lower_minimum_and_the_cls_built_on_it_are_pyhfs_in_that_basin():
    pyhf = pytest.importorskip("pyhf")
    ws = fold_workspace()
    model = compile_models([ws])
    fits = infer.run_fits(model, InferenceOptions())
    (result,) = hypotest(model, InferenceOptions(upper_limit=True))
    pyhf.set_backend("numpy", pyhf.optimize.scipy_optimizer(tolerance=1e-14))
    try:
        workspace = pyhf.Workspace(ws)
        pmodel = workspace.model()
        data = workspace.data(pmodel)
        _, default = pyhf.infer.mle.fixed_poi_fit(0.0, data, pmodel, return_fitted_val=True)
        init = pmodel.config.suggested_init()
        init[pmodel.config.par_slice("np_fold")] = [-0.9]
        _, lower = pyhf.infer.mle.fixed_poi_fit(
            0.0, data, pmodel, init_pars=init, return_fitted_val=True
        )
        obs, exp = pyhf.infer.hypotest(
            1.0, data, pmodel, init_pars=init, test_stat="qtilde", return_expected_set=True
        )
        low, high = pmodel.config.suggested_bounds()[pmodel.config.poi_index]
        up_obs, up_exp = pyhf.infer.intervals.upper_limits.toms748_scan(
            data, pmodel, low + 1e-3, high, level=0.05, init_pars=init, test_stat="qtilde"
        )
    finally:
        pyhf.set_backend("numpy", pyhf.optimize.scipy_optimizer())
    ours = 2.0 * fits.background.nll[0]
    # pyhf from its default start stops in the higher minimum, as a single start of ours does.
    assert float(default) > ours + 1.0
    assert ours == pytest.approx(float(lower), abs=1e-6)
    assert result.cls_obs == pytest.approx(float(obs), rel=5e-3, abs=2e-4)
    assert list(result.cls_exp) == pytest.approx([float(x) for x in exp], rel=5e-3, abs=2e-4)
    assert result.mu_up_obs == pytest.approx(float(up_obs), rel=5e-3)
    assert list(result.mu_up_exp) == pytest.approx([float(x) for x in up_exp], rel=5e-3)


def test_a_fit_already_at_the_global_minimum_is_kept_by_the_mirrored_starts():
    model = compile_models([fold_workspace()])
    fits = infer.run_fits(model, InferenceOptions())
    rows = np.arange(1)
    _, fx = infer._set_poi(model, model.init, model.fixed, 0.0)
    again = starts.try_flips(
        model,
        rows,
        model.observed,
        model.aux,
        fx,
        InferenceOptions().fit,
        infer._split(fits.background, 1, 1)[0],
    )
    assert again.nll[0] == fits.background.nll[0]
    assert again.spread[0] == fits.background.spread[0]


def test_a_fit_started_on_the_ridge_between_the_two_basins_descends_into_one():
    """np_fold alone free, started where -log L along it peaks between its two basins: the
    gradient vanishes there, so the Newton decrement is zero, and a fit that took that for
    convergence would report the maximum as its minimum. Negative curvature at a point the
    decrement calls converged is stepped along instead, in every fit; a fit from a mirrored
    start (escape=True, as starts.try_flips runs them) does so wherever it crawls. Both end
    in a basin, at a minimum."""
    from scipy.optimize import brentq

    model = compile_models([fold_workspace()])
    fold = model.labels[0].index("np_fold")
    zero = infer.run_fits(model, InferenceOptions()).background
    rows = np.arange(1)
    fixed = np.ones_like(model.fixed)
    fixed[0, fold] = False
    start = zero.theta.copy()

    def slope(alpha: float) -> float:
        start[0, fold] = alpha
        return float(model.evaluate(start, rows, model.observed, model.aux).grad[0, fold])

    start[0, fold] = brentq(slope, -0.25, 0.25, xtol=1e-14)
    top = model.evaluate(start, rows, model.observed, model.aux)
    assert top.hess[0, fold, fold] < -100.0  # a maximum along np_fold
    plain = minimize(model, rows, model.observed, model.aux, start, fixed)
    assert plain.converged[0] and plain.iterations[0] > 0
    assert plain.nll[0] < top.nll[0] - 1.0
    end = model.evaluate(plain.theta, rows, model.observed, model.aux)
    assert end.hess[0, fold, fold] > 0.0  # a minimum along np_fold, not the ridge
    out = minimize(model, rows, model.observed, model.aux, start, fixed, escape=True)
    assert out.converged[0]
    assert out.nll[0] == pytest.approx(zero.nll[0], abs=1e-8)
    assert out.theta[0, fold] == pytest.approx(zero.theta[0, fold], abs=1e-5)


def test_a_fit_given_a_lower_minimum_to_beat_stops_once_it_cannot():
    """minimize(..., beat=...) as starts.try_flips runs the mirrored starts: a fit heading for
    the higher minimum stops, unconverged and saying why, once its quadratic model puts that
    minimum above the one to beat, with -log L between the two; a fit heading for the lower
    one is not touched (the same numbers, bit for bit, as without beat)."""
    from reinterpret.fitter.optimize import LOST_MESSAGE

    model = compile_models([fold_workspace()])
    th, fx = infer._set_poi(model, model.init, model.fixed, 0.0)
    rows = np.arange(1)
    obs, aux = model.observed, model.aux
    higher = minimize(model, rows, obs, aux, th, fx)
    lower = infer.run_fits(model, InferenceOptions()).background
    assert higher.nll[0] > lower.nll[0] + 0.5

    stopped = minimize(model, rows, obs, aux, th, fx, beat=(lower.nll, lower.theta))
    assert not stopped.converged[0]
    assert stopped.messages[0] == LOST_MESSAGE
    assert stopped.iterations[0] < higher.iterations[0]
    assert higher.nll[0] <= stopped.nll[0] < higher.nll[0] + 0.1

    fold = model.labels[0].index("np_fold")
    start = lower.theta.copy()
    start[0, fold] -= 0.2  # in the lower basin, off its minimum
    plain = minimize(model, rows, obs, aux, start, fx)
    assert plain.iterations[0] > 1 and plain.nll[0] == pytest.approx(lower.nll[0], abs=1e-8)
    kept = minimize(model, rows, obs, aux, start, fx, beat=(higher.nll, higher.theta))
    assert kept.converged[0] and kept.messages[0] == "converged"
    assert kept.nll[0] == plain.nll[0]
    assert np.array_equal(kept.theta, plain.theta)
    assert not stopped_by_beat(kept)[0] and stopped_by_beat(stopped)[0]


def test_a_fit_heading_for_the_minimum_it_is_to_beat_stops_there():
    """minimize(..., beat=...) as the limit search runs its fits from the signal-free
    optimum: a fit that has come near the very minimum it is to beat (within SAME_RADIUS of
    it in the Hessian's norm, where -log L is convex) stops, unconverged and saying why,
    before converging; one given another minimum to beat goes on to converge there."""
    from reinterpret.fitter.optimize import SAME_MESSAGE

    model = compile_models([fold_workspace()])
    rows = np.arange(1)
    obs, aux = model.observed, model.aux
    lower = infer.run_fits(model, InferenceOptions()).background
    _, fx = infer._set_poi(model, model.init, model.fixed, 0.0)
    fold = model.labels[0].index("np_fold")
    start = lower.theta.copy()
    start[0, fold] -= 0.2  # in the lower basin, off its minimum
    plain = minimize(model, rows, obs, aux, start, fx)
    assert plain.converged[0] and plain.iterations[0] >= 2

    same = minimize(model, rows, obs, aux, start, fx, beat=(lower.nll, lower.theta))
    assert same.messages[0] == SAME_MESSAGE and not same.converged[0]
    assert stopped_by_beat(same)[0]
    assert same.iterations[0] < plain.iterations[0]
    assert lower.nll[0] - 1e-9 <= same.nll[0] < lower.nll[0] + 0.05

    # A minimum to beat far from the fit's path (and above it): the fit converges as without.
    far = lower.theta.copy()
    far[0, fold] += 3.0
    other = minimize(model, rows, obs, aux, start, fx, beat=(lower.nll + 1.0, far))
    assert other.converged[0] and np.array_equal(other.theta, plain.theta)


def test_no_minimum_to_beat_counts_as_the_same_across_a_kink():
    """optimize._cannot_beat: a minimum to beat near the point in the Hessian's norm is the
    one the fit heads for only where no kink parameter (-log L not smooth across 0) lies
    between them or at either; lost (a minimum above) does not depend on kinks."""
    from types import SimpleNamespace

    from reinterpret.fitter.optimize import _cannot_beat

    P = 3
    ev = SimpleNamespace(nll=np.full(4, 10.0), hess=np.tile(np.eye(P), (4, 1, 1)))
    theta = np.array([[0.1, 0.5, 0.0], [0.1, 0.5, 0.0], [0.1, 0.5, 0.0], [0.0, 0.5, 0.0]])
    point = np.array([[0.2, 0.6, 0.0], [-0.1, 0.5, 0.0], [0.1, 0.5, 5.0], [0.1, 0.5, 0.0]])
    kinks = np.array([True, False, False])
    fixed = np.zeros((4, P), dtype=bool)
    dec, positive = np.full(4, 0.01), np.ones(4, dtype=bool)
    beat = np.full(4, 10.0)
    lost, same = _cannot_beat(ev, theta, fixed, kinks, dec, positive, beat, point)
    # Same side of the kink and near: same. Across it, or on it: not. Far: not.
    assert same.tolist() == [True, False, False, False]
    assert not lost.any()
    lost, same = _cannot_beat(ev, theta, fixed, kinks, dec, positive, beat - 1.0, point)
    assert lost.all() and not same.any()
    # A kink parameter held fixed (at the same value in both) is no kink between them.
    fixed[:, 0] = True
    theta[1, 0] = point[1, 0]
    lost, same = _cannot_beat(ev, theta, fixed, kinks, dec, positive, beat, point)
    assert same.tolist() == [True, True, False, True]


@pytest.mark.parametrize(
    ("analysis", "name"), [("1lbb", "C1N2_Wh_hbb_700_100"), ("staus", "DS_240_120_Staus")]
)
def test_the_global_fit_starts_one_profile_newton_step_from_the_signal_free_optimum(analysis, name):
    """infer._profile_start: the POI one Newton step on the profile likelihood from the
    signal-free optimum, the rest along the profile path, both from the signal-free fit's
    kept Hessian (then freed). The start lies nearer the best fit than the signal-free
    optimum does, and the global fit from it ends in the same minimum as from there."""
    from reinterpret import services
    from tests.shared_data import load

    (point,) = services.patch_points(
        load(analysis, "BkgOnly.json"), load(analysis, "patchset.json"), [name]
    )
    model = compile_models([point.workspace])
    poi = model.poi_index
    fopt = InferenceOptions().fit
    zero = infer._signal_free_fits(model, fopt)
    assert zero.hessian is not None
    start = infer._profile_start(model, zero)
    assert zero.hessian is None
    rows = np.arange(1)
    fits = [
        minimize(model, rows, model.observed, model.aux, theta, model.fixed, fopt)
        for theta in (start, zero.theta)
    ]
    assert all(f.converged[0] for f in fits)
    assert fits[0].nll[0] == pytest.approx(fits[1].nll[0], abs=1e-8)
    mu_hat = fits[1].theta[0, poi]
    assert fits[0].theta[0, poi] == pytest.approx(mu_hat, abs=1e-3)
    assert abs(start[0, poi] - mu_hat) < 0.5 * abs(zero.theta[0, poi] - mu_hat)


def test_the_global_fit_starts_at_the_signal_free_optimum_where_the_poi_is_fixed():
    """Where the POI cannot move (fixed by the measurement) there is no profile step."""
    model = compile_models([fold_workspace()])
    zero = infer._signal_free_fits(model, InferenceOptions().fit)
    model.fixed[:, model.poi_index] = True
    assert np.array_equal(infer._profile_start(model, zero), zero.theta)


@pytest.mark.slow
def test_mirrored_starts_are_tried_again_from_each_lower_minimum(monkeypatch):
    """On sbottom's most strongly excluded points the fixed-POI fit at mu = 1 has many minima
    (a large signal pulls many fold parameters far from 0), some several mirrors away from
    the warm start's. One round of four mirrored starts left ours above pyhf's minimum on
    these three points (2 NLL +0.03, +0.10, +1.56); mirrors tried again from each lower
    minimum (starts.FLIP_ROUNDS, MAX_FLIPS) end below pyhf's, and the result says that the
    starts disagreed."""
    pyhf = pytest.importorskip("pyhf")
    from reinterpret import services
    from tests.shared_data import load

    names = ["sbottom_300_205_60", "sbottom_500_400_60", "sbottom_600_500_60"]
    points = services.patch_points(
        load("sbottom", "BkgOnly.json"), load("sbottom", "patchset.json"), names
    )
    model = compile_models([p.workspace for p in points])
    options = InferenceOptions()
    fits = infer.run_fits(model, options)
    monkeypatch.setattr(starts, "FLIP_ROUNDS", 1)
    monkeypatch.setattr(starts, "MAX_FLIPS", 4)
    once = infer.run_fits(model, options)
    pyhf.set_backend("numpy", "scipy")
    for b, point in enumerate(points):
        workspace = pyhf.Workspace(point.workspace)
        pdf = workspace.model()
        _, twice_nll = pyhf.infer.mle.fixed_poi_fit(
            1.0, workspace.data(pdf), pdf, return_fitted_val=True
        )
        assert fits.fixed_mu.converged[b]
        assert 2.0 * fits.fixed_mu.nll[b] <= float(twice_nll) + 1e-3, point.name
        assert 2.0 * once.fixed_mu.nll[b] > float(twice_nll) + 1e-2, point.name
        assert fits.fixed_mu.spread[b] > starts.START_TOLERANCE
