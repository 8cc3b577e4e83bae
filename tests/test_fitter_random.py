"""The fitter against pyhf 0.7.6, run live, on random workspaces that cover every modifier
type, both interpolation codes of each kind, fixed parameters, and masked bins (zero nominal
yield under shapesys, zero uncertainty under staterror), plus: the batched path equals the
unbatched one."""

from __future__ import annotations

import random

import numpy as np
import pytest

from reinterpret.fitter import InferenceOptions, InterpolationCodes, compile_models, hypotest

pyhf = pytest.importorskip("pyhf")


def close(a, b, rel=5e-3, abs_=2e-4):
    return abs(a - b) <= abs_ or abs(a - b) <= rel * abs(b)


def random_workspace(seed: int) -> dict:
    rng = random.Random(seed)
    nbins = rng.randint(1, 3)
    channels, observations = [], []
    # The shapefactor (odd seeds) acts on bkg2 in the signal channel and in a control channel
    # without signal, which constrains it; otherwise it would be degenerate with the signal.
    nchannels = 2 if seed % 2 else rng.randint(1, 2)
    for c in range(nchannels):
        bkg1 = [rng.uniform(20, 80) for _ in range(nbins)]
        bkg2 = [rng.uniform(5, 30) for _ in range(nbins)]
        sig = [rng.uniform(2, 12) for _ in range(nbins)]
        if seed % 3 == 0:
            bkg2[0] = 0.0  # a masked shapesys bin: zero nominal yield
        stat = [0.1 * b for b in bkg1]
        if seed % 4 == 0:
            stat[-1] = 0.0  # a staterror bin with zero uncertainty is fixed
        shape_unc = [0.08 * b for b in bkg2]
        control = seed % 2 == 1 and c == 1
        if control:
            sig = [0.0] * nbins
            bkg2 = [rng.uniform(200, 400) for _ in range(nbins)]
            shape_unc = [0.01 * b for b in bkg2]
        channels.append(
            {
                "name": f"ch{c}",
                "samples": [
                    {
                        "name": "signal",
                        "data": sig,
                        "modifiers": [
                            {"name": "mu", "type": "normfactor", "data": None},
                            {"name": "lumi", "type": "lumi", "data": None},
                            {
                                "name": "sig_theory",
                                "type": "normsys",
                                "data": {
                                    "hi": rng.uniform(1.02, 1.2),
                                    "lo": rng.uniform(0.8, 0.98),
                                },
                            },
                        ],
                    },
                    {
                        "name": "bkg1",
                        "data": bkg1,
                        "modifiers": [
                            {"name": "lumi", "type": "lumi", "data": None},
                            {"name": f"stat_ch{c}", "type": "staterror", "data": stat},
                            {
                                "name": "jes",
                                "type": "histosys",
                                "data": {
                                    "hi_data": [b * rng.uniform(1.01, 1.1) for b in bkg1],
                                    "lo_data": [b * rng.uniform(0.9, 0.99) for b in bkg1],
                                },
                            },
                            {
                                "name": "bkg1_norm",
                                "type": "normsys",
                                "data": {
                                    "hi": rng.uniform(1.05, 1.3),
                                    "lo": rng.uniform(0.7, 0.95),
                                },
                            },
                        ],
                    },
                    {
                        "name": "bkg2",
                        "data": bkg2,
                        "modifiers": [
                            {"name": f"mcstat_ch{c}", "type": "shapesys", "data": shape_unc},
                            {
                                "name": "jes",
                                "type": "normsys",
                                "data": {
                                    "hi": rng.uniform(1.01, 1.1),
                                    "lo": rng.uniform(0.9, 0.99),
                                },
                            },
                            {"name": "shape_bkg2", "type": "shapefactor", "data": None}
                            if seed % 2
                            else {"name": "bkg2_norm", "type": "normfactor", "data": None},
                        ],
                    },
                ],
            }
        )
        expected = [
            a + b + s * rng.uniform(0, 1.5) for a, b, s in zip(bkg1, bkg2, sig, strict=True)
        ]
        observations.append(
            {
                "name": f"ch{c}",
                "data": [float(np.random.default_rng(seed + c).poisson(e)) for e in expected],
            }
        )
    parameters = [
        {"name": "lumi", "auxdata": [1.0], "sigmas": [0.02], "bounds": [[0.5, 1.5]], "inits": [1.0]}
    ]
    if seed % 5 == 0:
        parameters.append({"name": "bkg1_norm", "fixed": True, "inits": [0.3]})
    return {
        "channels": channels,
        "observations": observations,
        "version": "1.0.0",
        "measurements": [{"name": "m", "config": {"poi": "mu", "parameters": parameters}}],
    }


# pyhf implements normsys code1 and code4 only; code0 normsys is checked on its own below.
SETTINGS = [("code4", "code4p"), ("code1", "code0"), ("code4", "code0")]
CASES = [(seed, SETTINGS[seed % 3]) for seed in range(12)]


# Seed 7 (normsys code1, histosys code0) was a named exception: its Asimov fixed-POI fit ended
# 0.045 above pyhf's in 2 NLL, in the basin across the kinks of code1 normsys parameters
# (hi**alpha / lo**-alpha bend at 0 unless hi * lo == 1), which were not known as kinks and so
# never mirrored. They are now (ModelBatch.kinks), and it agrees.
KNOWN: dict[int, str] = {}
UPPER_LIMITS = {0, 3, 4}


@pytest.mark.slow
@pytest.mark.parametrize(("seed", "codes"), CASES)
def test_random_workspace_agrees_with_pyhf(seed, codes):
    if seed in KNOWN:
        pytest.xfail(KNOWN[seed])
    ws = random_workspace(seed)
    normsys, histosys = codes
    model = compile_models([ws], codes=InterpolationCodes(normsys, histosys))
    (ours,) = hypotest(model, InferenceOptions(upper_limit=seed in UPPER_LIMITS))
    assert ours.converged, ours.warnings

    pyhf.set_backend("numpy")
    workspace = pyhf.Workspace(ws)
    kwargs = {
        "modifier_settings": {
            "normsys": {"interpcode": normsys},
            "histosys": {"interpcode": histosys},
        }
    }
    pmodel = workspace.model(**kwargs)
    data = workspace.data(pmodel)
    obs, exp = pyhf.infer.hypotest(1.0, data, pmodel, test_stat="qtilde", return_expected_set=True)
    _, twice_nll = pyhf.infer.mle.fit(data, pmodel, return_fitted_val=True)
    assert close(ours.cls_obs, float(obs)), (ours, float(obs))
    for a, b in zip(ours.cls_exp, exp, strict=True):
        assert close(a, float(b)), (ours.cls_exp, exp)
    assert ours.twice_nll <= float(twice_nll) + 1e-3
    if ours.mu_up_obs is not None:
        # pyhf's own bracket starts at mu = 0, where CLs is 0/0; scipy >= 1.17 refuses a NaN
        # there, so its root search is started just above the bound instead.
        low, high = pmodel.config.suggested_bounds()[pmodel.config.poi_index]
        up_obs, up_exp = pyhf.infer.intervals.upper_limits.toms748_scan(
            data, pmodel, low + 1e-3, high, level=0.05, test_stat="qtilde"
        )
        assert close(ours.mu_up_obs, float(up_obs))
        for a, b in zip(ours.mu_up_exp, up_exp, strict=True):
            assert close(a, float(b))


def test_random_cases_cover_every_modifier_type_and_masking():
    types = {
        m["type"]
        for seed, _ in CASES
        for ch in random_workspace(seed)["channels"]
        for s in ch["samples"]
        for m in s["modifiers"]
    }
    assert types == {
        "normfactor",
        "shapefactor",
        "normsys",
        "histosys",
        "lumi",
        "staterror",
        "shapesys",
    }


def test_batched_evaluation_equals_one_model_at_a_time():
    workspaces = [random_workspace(seed) for seed in (1, 7)]
    # Same channels needed for one batch: vary only the signal of one workspace.
    base = workspaces[0]
    variants = []
    for scale in (0.5, 1.0, 2.0, 4.0):
        ws = {
            **base,
            "channels": [
                {
                    **ch,
                    "samples": [
                        {**s, "data": [x * scale for x in s["data"]]}
                        if s["name"] == "signal"
                        else s
                        for s in ch["samples"]
                    ],
                }
                for ch in base["channels"]
            ],
        }
        variants.append(ws)
    batched = hypotest(compile_models(variants), InferenceOptions(upper_limit=True))
    assert sum(r.mu_up_obs is not None for r in batched) >= 2  # limits are compared
    for ws, together in zip(variants, batched, strict=True):
        (alone,) = hypotest(compile_models([ws]), InferenceOptions(upper_limit=True))
        assert together.cls_obs == pytest.approx(alone.cls_obs, rel=1e-6, abs=1e-9)
        assert together.cls_exp == pytest.approx(alone.cls_exp, rel=1e-6, abs=1e-9)
        # A limit above the POI bound is null (flagged) in both, else the same number.
        assert together.limit_above_poi_bound == alone.limit_above_poi_bound
        if alone.mu_up_obs is None:
            assert together.mu_up_obs is None and alone.limit_above_poi_bound
        else:
            assert together.mu_up_obs == pytest.approx(alone.mu_up_obs, rel=1e-5)
        assert together.twice_nll == pytest.approx(alone.twice_nll, abs=1e-7)


def test_code0_normsys_is_piecewise_linear():
    from reinterpret.fitter.interpolation import multiplicative

    alpha = np.array([-2.0, -0.5, 0.0, 0.5, 2.0])
    value, slope, curvature = multiplicative("code0", alpha, np.full(5, 1.2), np.full(5, 0.9))
    assert value == pytest.approx([0.8, 0.95, 1.0, 1.1, 1.4])
    assert slope == pytest.approx([0.1, 0.1, 0.2, 0.2, 0.2]) and not curvature.any()


def test_a_fit_that_ends_on_a_code0_kink_is_settled_there():
    """Seed 7's fixed-POI fit has its minimum on the kink of a code0 histosys (alpha = 0):
    Newton steps keep crossing it, so the fit is finished with alpha held at 0."""
    from reinterpret.fitter import infer

    normsys, histosys = SETTINGS[7 % 3]
    ws = random_workspace(7)
    model = compile_models([ws], codes=InterpolationCodes(normsys, histosys))
    assert model.kinks.any()
    fits = infer.run_fits(model, InferenceOptions())
    assert fits.fixed_mu.messages[0] == "converged (on a kink)"
    # jes (the code0 histosys) sits on its kink; the code1 normsys kinks are away from theirs.
    assert fits.fixed_mu.theta[0, model.labels[0].index("jes")] == 0.0

    pyhf.set_backend("numpy", pyhf.optimize.scipy_optimizer(tolerance=1e-14))
    try:
        pmodel = pyhf.Workspace(ws).model(
            modifier_settings={
                "normsys": {"interpcode": normsys},
                "histosys": {"interpcode": histosys},
            }
        )
        data = pyhf.Workspace(ws).data(pmodel)
        _, twice_nll = pyhf.infer.mle.fixed_poi_fit(1.0, data, pmodel, return_fitted_val=True)
    finally:
        pyhf.set_backend("numpy", pyhf.optimize.scipy_optimizer())
    assert 2.0 * fits.fixed_mu.nll[0] <= float(twice_nll) + 1e-8
