"""The fitter against pyhf 0.7.6 reference numbers for real published ATLAS likelihoods.

Bar (the fitter issue): |dCLs| <= 2e-4 or <= 0.5 % relative for observed and each expected
value, the same for upper limits, and 2*NLL at the best fit never above pyhf's by > 1e-3.

Named exceptions, each checked differently rather than skipped:
- erjr: pyhf's default optimizer stops at the initial point for almost every patch (a
  shapesys constraint with tau ~ 1.9e11); we must find a lower NLL with a converged fit.
- sbottom_1600_1595_60: a tiny signal, q_A ~ 2e-4, where pyhf's default SLSQP tolerance
  leaves CLs 0.8 % off; pyhf with a tight tolerance agrees with us (checked live below).
"""

import jsonpatch
import numpy as np
import pytest

from reinterpret.fitter import InferenceOptions, compile_models, hypotest
from tests.shared_data import ANALYSES, load

LOOSE_PYHF = {("sbottom", "sbottom_1600_1595_60")}


def close(a, b, rel=5e-3, abs_=2e-4):
    return abs(a - b) <= abs_ or abs(a - b) <= rel * abs(b)


def reference_points(analysis, need):
    ref = load(analysis, "pyhf_reference.json")
    return [p for p in ref["patches"] if p.get(need) is not None]


def workspaces(analysis, names):
    bkg = load(analysis, "BkgOnly.json")
    patches = {
        p["metadata"]["name"]: p["patch"] for p in load(analysis, "patchset.json")["patches"]
    }
    return [jsonpatch.apply_patch(bkg, patches[n]) for n in names]


def run(analysis, need, upper_limit=False):
    points = reference_points(analysis, need)
    model = compile_models(workspaces(analysis, [p["name"] for p in points]))
    return points, hypotest(model, InferenceOptions(upper_limit=upper_limit))


@pytest.mark.parametrize("analysis", [a for a in ANALYSES if a != "erjr"])
def test_cls_and_best_fit_agree_with_pyhf_on_every_reference_patch(analysis):
    points, results = run(analysis, "cls_obs")
    assert points
    failures = []
    for ref, res in zip(points, results, strict=True):
        assert res.converged, (ref["name"], res.warnings)
        assert res.twice_nll <= ref["twice_nll"] + 1e-3, ref["name"]
        if (analysis, ref["name"]) in LOOSE_PYHF:
            continue
        pairs = [(res.cls_obs, ref["cls_obs"])] + list(
            zip(res.cls_exp, ref["cls_exp"], strict=True)
        )
        if not all(close(a, b) for a, b in pairs):
            failures.append((ref["name"], pairs))
        assert res.mu_hat == pytest.approx(ref["mu_hat"], abs=2e-3), ref["name"]
    assert not failures


@pytest.mark.parametrize("analysis", [a for a in ANALYSES if a != "erjr"])
def test_upper_limits_agree_with_pyhf(analysis):
    points, results = run(analysis, "mu_up_obs", upper_limit=True)
    if not points:
        pytest.skip("no reference upper limits for this analysis")
    for ref, res in zip(points, results, strict=True):
        assert res.converged, (ref["name"], res.warnings)
        assert close(res.mu_up_obs, ref["mu_up_obs"]), ref["name"]
        for got, want in zip(res.mu_up_exp, ref["mu_up_exp"], strict=True):
            assert close(got, want), (ref["name"], res.mu_up_exp, ref["mu_up_exp"])


def test_erjr_fits_reach_a_lower_minimum_than_pyhf():
    points, results = run("erjr", "twice_nll")
    lower = 0
    for ref, res in zip(points, results, strict=True):
        assert res.converged, (ref["name"], res.warnings)
        assert res.twice_nll <= ref["twice_nll"] + 1e-3, ref["name"]
        lower += res.twice_nll < ref["twice_nll"] - 1e-2
    # pyhf stopped at its starting point for almost every patch; we go below it.
    assert lower >= 0.8 * len(points)


def test_erjr_best_fit_is_a_stationary_point():
    from reinterpret.fitter.optimize import minimize

    (name,) = [reference_points("erjr", "twice_nll")[0]["name"]]
    model = compile_models(workspaces("erjr", [name]))
    rows = np.array([0])
    fit = minimize(model, rows, model.observed, model.aux, model.init, model.fixed)
    assert fit.converged[0]
    ev = model.evaluate(fit.theta, rows, model.observed, model.aux)
    free = ~model.fixed[0] & (fit.theta[0] > model.lower[0]) & (fit.theta[0] < model.upper[0])
    assert np.abs(ev.grad[0][free]).max() < 1e-3


@pytest.mark.slow
def test_tiny_signal_point_agrees_with_tightly_converged_pyhf():
    pyhf = pytest.importorskip("pyhf")
    ((analysis, name),) = LOOSE_PYHF
    (ws,) = workspaces(analysis, [name])
    (res,) = hypotest(compile_models([ws]))
    pyhf.set_backend("numpy", pyhf.optimize.scipy_optimizer(tolerance=1e-14))
    try:
        workspace = pyhf.Workspace(ws)
        model = workspace.model()
        obs, exp = pyhf.infer.hypotest(
            1.0, workspace.data(model), model, test_stat="qtilde", return_expected_set=True
        )
    finally:
        pyhf.set_backend("numpy", pyhf.optimize.scipy_optimizer())
    assert close(res.cls_obs, float(obs), rel=1e-3, abs_=1e-5)
    for got, want in zip(res.cls_exp, exp, strict=True):
        assert close(got, float(want), rel=1e-3, abs_=1e-5)
