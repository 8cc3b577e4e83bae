"""The fitter against the small validation workspaces whose CLs values pyhf's own tests pin.

The pinned numbers came out of pyhf's default optimizer (SLSQP with its default tolerance),
which stops a little short of the optimum on some cases (2bin_2channel_couplednorm_mu1 by
~1e-4 relative). So: against the pinned numbers at the fitter's accuracy bar (|dCLs| <= 2e-4
or 0.5 % relative), and against pyhf re-run live with a tight optimizer tolerance at the
case's own (much tighter) tolerance.
"""

import pytest

from reinterpret.fitter import InferenceOptions, InterpolationCodes, compile_models, hypotest
from tests.shared_data import SHARED, load

CASES = []
if (SHARED / "pyhf-validation" / "expected.json").exists():
    CASES = [
        c
        for c in load("pyhf-validation", "expected.json")["cases"]
        if c["calctype"] == "asymptotics"
    ]
IDS = [c["case"] for c in CASES]

# Named exception: with histosys code0, -log L of this case's fixed-POI fit (mu = 1) has a
# minimum on each side of the kink at alpha = 0. pyhf, started at alpha = 0, stops in the
# higher one (2 NLL 31.3751 at alpha = +0.481); the mirrored start finds the lower one (30.8717
# at alpha = -0.359), which pyhf confirms when started there. The pinned CLs (0.0797) belongs
# to the higher minimum; ours (0.138) to the global one.
LOWER_MINIMUM = {"2bin_2channel_coupledhistosys_mu1"}


def ours(case):
    ws = load("pyhf-validation", case["file"])
    settings = case["model_kwargs"]["modifier_settings"]
    codes = InterpolationCodes(
        settings["normsys"]["interpcode"], settings["histosys"]["interpcode"]
    )
    model = compile_models([ws], codes=codes)
    options = InferenceOptions(test_stat=case["test_stat"], mu_test=case["mu_test"])
    (result,) = hypotest(model, options)
    assert result.converged, result.warnings
    return result


def close(a, b, rel, abs_):
    return abs(a - b) <= abs_ or abs(a - b) <= rel * abs(b)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_validation_case_matches_pinned_cls_within_the_bar(case):
    if case["case"] in LOWER_MINIMUM:
        pytest.skip("pinned at a local minimum: see test_lower_minimum_than_pyhf_is_real")
    result = ours(case)
    expected = case["expected"]
    assert close(result.cls_obs, expected["CLs_obs"], 5e-3, 2e-4)
    for got, want in zip(result.cls_exp, expected["CLs_exp"], strict=True):
        assert close(got, want, 5e-3, 2e-4)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_validation_case_matches_tightly_converged_pyhf(case):
    if case["case"] in LOWER_MINIMUM:
        pytest.skip("pyhf stops at a local minimum: see test_lower_minimum_than_pyhf_is_real")
    pyhf = pytest.importorskip("pyhf")
    ws = load("pyhf-validation", case["file"])
    pyhf.set_backend("numpy", pyhf.optimize.scipy_optimizer(tolerance=1e-14))
    try:
        workspace = pyhf.Workspace(ws)
        model = workspace.model(**case["model_kwargs"])
        data = workspace.data(model)
        obs, exp = pyhf.infer.hypotest(
            case["mu_test"],
            data,
            model,
            test_stat=case["test_stat"],
            return_expected_set=True,
        )
    finally:
        pyhf.set_backend("numpy", pyhf.optimize.scipy_optimizer())
    result = ours(case)
    rel = case["pyhf_test_rel_tolerance"]
    assert result.cls_obs == pytest.approx(float(obs), rel=rel, abs=1e-8)
    assert list(result.cls_exp) == pytest.approx([float(x) for x in exp], rel=rel, abs=1e-8)


def test_discovery_significance_follows_from_p0():
    if not CASES:
        pytest.skip("shared likelihood data not available")
    case = next(c for c in CASES if c["test_stat"] == "q0")
    result = ours(case)
    assert result.significance == pytest.approx(2.657, abs=0.01)  # p0 = 0.00394


def test_lower_minimum_than_pyhf_is_real():
    """The named exception: our fixed-POI fit is 0.50 lower in 2 NLL than pyhf's from its
    default start, and pyhf started at our optimum reaches the same value."""
    pyhf = pytest.importorskip("pyhf")
    import numpy as np

    from reinterpret.fitter import infer

    (case,) = [c for c in CASES if c["case"] in LOWER_MINIMUM] or [None]
    if case is None:
        pytest.skip("shared likelihood data not available")
    ws = load("pyhf-validation", case["file"])
    codes = InterpolationCodes("code1", "code0")
    model = compile_models([ws], codes=codes)
    fits = infer.run_fits(model, InferenceOptions(test_stat="q"))
    ours_2nll = 2.0 * fits.fixed_mu.nll[0]
    alpha = fits.fixed_mu.theta[0, model.labels[0].index("coupled_histosys")]
    assert fits.fixed_mu.converged[0] and 2.0 * fits.fixed_mu.spread[0] > 0.4
    pyhf.set_backend("numpy", pyhf.optimize.scipy_optimizer(tolerance=1e-14))
    try:
        workspace = pyhf.Workspace(ws)
        pmodel = workspace.model(**case["model_kwargs"])
        data = workspace.data(pmodel)
        _, theirs = pyhf.infer.mle.fixed_poi_fit(1.0, data, pmodel, return_fitted_val=True)
        init = pmodel.config.suggested_init()
        init[pmodel.config.par_slice("coupled_histosys")] = [alpha]
        _, there = pyhf.infer.mle.fixed_poi_fit(
            1.0, data, pmodel, init_pars=init, return_fitted_val=True
        )
    finally:
        pyhf.set_backend("numpy", pyhf.optimize.scipy_optimizer())
    assert alpha < 0 and ours_2nll < float(theirs) - 0.4
    assert np.isclose(ours_2nll, float(there), rtol=0, atol=1e-6)
    (result,) = hypotest(model, InferenceOptions(test_stat="q"))
    assert result.converged and result.start_spread > 0.4
    assert any("different minima" in w for w in result.warnings)


def test_q0_tests_mu_zero_whatever_mu_test_is_given():
    """`cls --test-stat q0` passes its default --mu 1: the discovery test is still at mu = 0,
    so the p0 values are the pinned ones, not those of a test of mu = 1."""
    from reinterpret.fitter import FitterError

    if not CASES:
        pytest.skip("shared likelihood data not available")
    case = next(c for c in CASES if c["test_stat"] == "q0")
    assert InferenceOptions(test_stat="q0", mu_test=1.0).mu_test == 0.0
    ws = load("pyhf-validation", case["file"])
    model = compile_models([ws], codes=InterpolationCodes("code1", "code0"))
    (result,) = hypotest(model, InferenceOptions(test_stat="q0", mu_test=1.0))
    assert result.converged
    expected = case["expected"]
    assert close(result.cls_obs, expected["CLs_obs"], 5e-3, 2e-4)
    for got, want in zip(result.cls_exp, expected["CLs_exp"], strict=True):
        assert close(got, want, 5e-3, 1e-6)
    with pytest.raises(FitterError):
        InferenceOptions(test_stat="q0", upper_limit=True)
