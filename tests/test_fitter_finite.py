"""Finite numbers everywhere: CLs far in the tail, huge signals, and a reason where a number
cannot be computed."""

from __future__ import annotations

import math

import numpy as np
import pytest

from reinterpret.fitter import InferenceOptions, asymptotics, compile_models, hypotest


def huge_signal_workspace(scale: float) -> dict:
    """A signal `scale` times the background, with normsys, histosys and staterror."""
    return {
        "channels": [
            {
                "name": "c",
                "samples": [
                    {
                        "name": "sig",
                        "data": [scale * 20.0, scale * 10.0],
                        "modifiers": [
                            {"name": "mu", "type": "normfactor", "data": None},
                            {"name": "ss", "type": "normsys", "data": {"hi": 1.1, "lo": 0.9}},
                        ],
                    },
                    {
                        "name": "bkg",
                        "data": [20.0, 10.0],
                        "modifiers": [
                            {"name": "st", "type": "staterror", "data": [2.0, 1.5]},
                            {"name": "bn", "type": "normsys", "data": {"hi": 1.2, "lo": 0.85}},
                            {
                                "name": "h",
                                "type": "histosys",
                                "data": {"hi_data": [22.0, 10.5], "lo_data": [19.0, 9.0]},
                            },
                        ],
                    },
                ],
            }
        ],
        "observations": [{"name": "c", "data": [22.0, 9.0]}],
        "version": "1.0.0",
        "measurements": [{"name": "m", "config": {"poi": "mu", "parameters": []}}],
    }


def test_cls_deep_in_the_tail_is_a_number():
    # sqrt(q_A) = 37 puts CLs+b near 1e-300; the plain ratio of tails is fine here, and at
    # sqrt(q_A) = 40 (below the smallest double) the log-space ratio still is a number.
    t = np.array([0.0, 1.0])
    for sqrt_qa, log10_cls in ((37.0, -299.0), (40.0, -349.0)):
        log_cls = asymptotics.log_cls_from_t(t, np.full(2, sqrt_qa))[2]
        assert np.all(np.isfinite(log_cls))
        assert log_cls[0] / math.log(10) == pytest.approx(log10_cls, abs=1.5)
    clsb, clb, cls = asymptotics.cls_from_t(t, np.full(2, 37.0))
    assert np.all(np.isfinite(cls)) and np.all(cls > 0) and np.all(cls < 1e-290)


def test_cls_with_no_sensitivity_left_is_a_number():
    """q~ with q_A -> 0 (a tiny signal): t = (q - q_A) / (2 sqrt(q_A)) runs to infinity and
    both tails vanish; CLs tends to exp(-q / 2), continuous with the exact ratio."""
    q = np.array([0.5, 2e-3, 3.0, 2.0])
    q_a = np.array([0.0, 0.0, 1e-14, (2.0 / 2e4) ** 2 * 0.99])
    obs, exp = asymptotics.observed_and_expected(q, q_a, "qtilde")
    assert obs[:3] == pytest.approx(np.exp(-0.5 * q[:3]), rel=1e-6)
    t = asymptotics.t_value(q[3:], q_a[3:], "qtilde")
    exact = asymptotics.log_cls_from_t(t, np.sqrt(q_a[3:]))[2]
    assert t[0] > asymptotics.FAR_TAIL and np.log(obs[3]) == pytest.approx(exact[0], rel=1e-7)
    assert exp[:3] == pytest.approx(np.ones((3, 5)), abs=1e-6)


def test_a_signal_30_times_the_background_agrees_with_pyhf():
    pyhf = pytest.importorskip("pyhf")
    ws = huge_signal_workspace(30.0)
    (ours,) = hypotest(compile_models([ws]), InferenceOptions(upper_limit=True))
    assert ours.converged, ours.warnings
    assert all(math.isfinite(x) for x in (ours.cls_obs, *ours.cls_exp, ours.mu_up_obs))
    pyhf.set_backend("numpy", pyhf.optimize.scipy_optimizer(tolerance=1e-14))
    try:
        workspace = pyhf.Workspace(ws)
        pmodel = workspace.model()
        data = workspace.data(pmodel)
        obs, exp = pyhf.infer.hypotest(
            1.0, data, pmodel, test_stat="qtilde", return_expected_set=True
        )
        _, fixed = pyhf.infer.mle.fixed_poi_fit(1.0, data, pmodel, return_fitted_val=True)
    finally:
        pyhf.set_backend("numpy", pyhf.optimize.scipy_optimizer())
    assert 0.0 < ours.cls_obs < 1e-150
    # Relative agreement in the tail: log CLs to 1e-4 relative.
    assert math.log(ours.cls_obs) == pytest.approx(math.log(float(obs)), rel=1e-4)
    for a, b in zip(ours.cls_exp, exp, strict=True):
        assert math.log(a) == pytest.approx(math.log(float(b)), rel=1e-4)
    model = compile_models([ws])
    from reinterpret.fitter import infer

    fits = infer.run_fits(model, InferenceOptions())
    assert 2.0 * fits.fixed_mu.nll[0] <= float(fixed) + 1e-6


def test_a_signal_60_times_the_background_stays_finite():
    (ours,) = hypotest(
        compile_models([huge_signal_workspace(60.0)]), InferenceOptions(upper_limit=True)
    )
    assert ours.converged, ours.warnings
    values = (ours.cls_obs, *ours.cls_exp, ours.twice_nll, ours.q_obs, ours.q_asimov)
    assert all(math.isfinite(x) for x in values)
    assert ours.q_asimov > 1000.0 and ours.cls_obs < 1e-250


def test_a_number_that_cannot_be_computed_stays_non_finite_with_a_reason():
    """Where a fit's -log L is not finite, the CLs built on it stay NaN (callers turn them into
    null) and the warning names the fit; with finite fits, the test statistics are given."""
    from reinterpret.fitter import infer
    from reinterpret.fitter.optimize import FitOutcome

    def outcome(nll: float) -> FitOutcome:
        one = np.ones(1)
        return FitOutcome(one[:, None], np.array([nll]), one > 0, one, one, ["x"])

    names = ("global fit", "Asimov fixed-POI fit")
    cls_obs, cls_exp = np.array([np.nan]), np.full((1, 5), np.nan)
    bad = infer._not_finite(
        0, cls_obs, cls_exp, np.ones(1), np.ones(1), names, (outcome(1.0), outcome(np.nan))
    )
    assert bad == [
        "CLs observed and expected not computable: -log L is not finite in the Asimov fixed-POI fit"
    ]
    q = infer._not_finite(
        0, cls_obs, np.zeros((1, 5)), np.ones(1), np.zeros(1), names, (outcome(1.0), outcome(2.0))
    )
    assert q == [
        "CLs observed not computable: the Asimov test statistic is 0 (no sensitivity at mu_test)"
    ]
    assert (
        infer._not_finite(
            0,
            np.zeros(1),
            np.zeros((1, 5)),
            np.ones(1),
            np.ones(1),
            names,
            (outcome(1.0), outcome(2.0)),
        )
        == []
    )
