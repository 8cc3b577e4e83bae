"""Pieces of the batched engine that the end-to-end comparisons only exercise indirectly."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from reinterpret.fitter import memory, optimize


def _stack(seed: int = 3, rows: int = 9, size: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric matrices, every third one indefinite, and gradients."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(rows, size, size))
    h = a @ a.transpose(0, 2, 1) + 0.1 * np.eye(size)
    h[::3, 0, 0] = -5.0
    return h, rng.normal(size=(rows, size))


def _positive_definite(h: np.ndarray) -> np.ndarray:
    return np.array([np.all(np.linalg.eigvalsh(m) > 0) for m in h])


def test_cholesky_solve_tells_positive_definite_rows_apart_and_solves_them():
    h, g = _stack()
    expected = _positive_definite(h)
    assert not expected.all() and expected.any()
    x, ok = optimize._cholesky_solve(h.copy(), g)  # it factorises its argument in place
    assert np.array_equal(ok, expected)
    assert np.allclose(x[ok], np.linalg.solve(h[ok], g[ok][..., None])[..., 0])
    assert np.all(x[~ok] == 0.0)


def test_newton_step_where_positive_definite_and_descent_elsewhere():
    h, g = _stack()
    free = np.ones(g.shape, dtype=bool)
    pd = _positive_definite(h)
    step, decrement, _, _ = optimize._newton_step(h, None, g, free)
    newton = -np.linalg.solve(h[pd], g[pd][..., None])[..., 0]
    assert np.allclose(step[pd], newton)
    assert np.allclose(decrement[pd], -0.5 * (newton * g[pd]).sum(axis=1))
    # Where H is indefinite (and no stand-in is known) the step still descends.
    assert np.all((step[~pd] * g[~pd]).sum(axis=1) < 0)
    assert np.all(decrement > 0)


def test_indefinite_rows_fall_back_on_the_hessian_without_the_yields_curvature():
    h, g = _stack()
    free = np.ones(g.shape, dtype=bool)
    free[:, -1] = False  # a fixed parameter does not move
    psd = _stack(seed=4)[0] + 10.0 * np.eye(h.shape[1])
    psd[::3, 0, 0] = 20.0
    pd = _positive_definite(h[:, :-1, :-1])
    step, _, _, _ = optimize._newton_step(h, lambda rows: psd[rows], g, free)
    sub = np.s_[:, :-1]
    expected = -np.linalg.solve(psd[~pd][:, :-1, :-1], g[~pd][sub][..., None])[..., 0]
    assert np.allclose(step[~pd][sub], expected)
    assert np.all(step[:, -1] == 0.0)


def test_a_crawling_step_where_the_curvature_is_negative_follows_it_downhill():
    """At a saddle (H = diag(4, -1), gradient almost zero) the positive stand-in's step
    predicts next to no decrease; with a crawl threshold the step goes one scaled unit along
    the negative curvature (downhill: against the gradient's component), and the decrement
    counts the decrease that direction promises, so the fit does not stop there."""
    h = np.array([[[4.0, 0.0], [0.0, -1.0]]])
    stand_in = np.array([[[4.0, 0.0], [0.0, 1.0]]])
    fisher = lambda rows: stand_in[rows]  # noqa: E731
    g = np.array([[1e-7, 2e-6]])
    free = np.ones(g.shape, dtype=bool)
    step, decrement, _, _ = optimize._newton_step(h, fisher, g, free)
    assert decrement[0] < 1e-9  # looks converged
    step, decrement, _, _ = optimize._newton_step(h, fisher, g, free, crawl=1e-2)
    assert step[0, 1] == pytest.approx(-1.0, abs=1e-5)  # scale 1/sqrt(|-1|), against g
    assert abs(step[0, 0]) < 1e-6
    assert decrement[0] == pytest.approx(0.5, abs=1e-5)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt only")
def test_allocator_thresholds_are_set_on_linux():
    assert memory.keep_freed_memory() is True


def test_collector_is_paused_and_restored():
    import gc

    assert gc.isenabled()
    with memory.collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with memory.collector_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def _perturbed(model, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    theta = model.init + 0.3 * rng.normal(size=model.init.shape) * ~model.fixed
    return np.clip(theta, model.lower + 0.05, model.upper)


@pytest.mark.parametrize("seed", range(6))
def test_gradient_and_hessian_match_finite_differences(seed):
    from reinterpret.fitter import compile_models
    from tests.test_fitter_random import random_workspace

    model = compile_models([random_workspace(seed)])
    rows = np.array([0])
    theta = _perturbed(model, seed)
    ev = model.evaluate(theta, rows, model.observed, model.aux)
    eps = 1e-6
    free = np.flatnonzero(~model.fixed[0])
    for p in free:
        up, down = theta.copy(), theta.copy()
        up[0, p] += eps
        down[0, p] -= eps
        e_up = model.evaluate(up, rows, model.observed, model.aux)
        e_down = model.evaluate(down, rows, model.observed, model.aux)
        assert np.isclose(ev.grad[0, p], (e_up.nll[0] - e_down.nll[0]) / (2 * eps), atol=1e-5)
        numeric = (e_up.grad[0, free] - e_down.grad[0, free]) / (2 * eps)
        assert np.allclose(ev.hess[0, p, free], numeric, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("seed", range(6))
def test_derivatives_are_continuous_where_a_factor_is_zero(seed):
    """At mu = 0 exactly the signal's factor product is zero; the leave-one-out products and
    the second-derivative terms against mu must still be those of the limit mu -> 0."""
    from reinterpret.fitter import compile_models
    from tests.test_fitter_random import random_workspace

    ws = random_workspace(seed)
    for channel in ws["channels"]:  # a shape uncertainty on the signal too: A' != 0 where F = 0
        signal = channel["samples"][0]
        up = [1.1 * x + 0.5 for x in signal["data"]]
        down = [0.95 * x for x in signal["data"]]
        shape = {"hi_data": up, "lo_data": down}
        signal["modifiers"].append({"name": "sig_shape", "type": "histosys", "data": shape})
    model = compile_models([ws])
    rows = np.array([0])
    at_zero, near = _perturbed(model, seed), _perturbed(model, seed)
    at_zero[0, model.poi_index], near[0, model.poi_index] = 0.0, 1e-9
    a = model.evaluate(at_zero, rows, model.observed, model.aux)
    b = model.evaluate(near, rows, model.observed, model.aux)
    assert np.allclose(a.grad, b.grad, rtol=1e-7, atol=1e-6)
    assert np.allclose(a.hess, b.hess, rtol=1e-7, atol=1e-5)
    assert np.abs(a.hess[0, model.poi_index]).max() > 0


def test_batch_compiles_each_point_as_it_would_alone():
    """The samples every point shares are read once per batch; a point's own samples still
    enter its parameters (here: the signal's share of the staterror constraint)."""
    from reinterpret.fitter import compile_models
    from tests.test_fitter_random import random_workspace

    base = random_workspace(0)
    variants = []
    for scale in (0.5, 1.0, 3.0):
        channels = []
        for c, ch in enumerate(base["channels"]):
            signal = dict(ch["samples"][0])
            signal["data"] = [scale * x for x in signal["data"]]
            stat = {"name": f"stat_ch{c}", "type": "staterror", "data": signal["data"]}
            signal["modifiers"] = [*signal["modifiers"], stat]
            channels.append({**ch, "samples": [signal, *ch["samples"][1:]]})
        variants.append({**base, "channels": channels})
    batch = compile_models(variants)
    for b, ws in enumerate(variants):
        alone = compile_models([ws])
        columns = {label: i for i, label in enumerate(alone.labels[0]) if label}
        for i, label in enumerate(batch.labels[b]):
            if label:
                j = columns.pop(label)
                for attr in ("sigma", "tau", "aux", "init", "lower", "upper", "fixed"):
                    mine, single = getattr(batch, attr)[b, i], getattr(alone, attr)[0, j]
                    assert np.isclose(mine, single, rtol=1e-13, atol=0), (label, attr)
        assert not columns
    sigmas = {tuple(batch.sigma[b][batch.gauss[b]].round(12)) for b in range(batch.size)}
    assert len(sigmas) == len(variants)  # the signal's yield changes the staterror widths


def _one_channel(modifiers: list[dict]) -> dict:
    return {
        "channels": [
            {
                "name": "sr",
                "samples": [
                    {
                        "name": "signal",
                        "data": [5.0, 3.0],
                        "modifiers": [{"name": "mu", "type": "normfactor", "data": None}],
                    },
                    {"name": "bkg", "data": [50.0, 40.0], "modifiers": modifiers},
                ],
            }
        ],
        "observations": [{"name": "sr", "data": [52.0, 41.0]}],
        "measurements": [{"name": "m", "config": {"poi": "mu", "parameters": []}}],
        "version": "1.0.0",
    }


def test_a_modifier_twice_on_one_sample_is_refused():
    from reinterpret.fitter import ModelError, compile_models

    twice = {"name": "jes", "type": "normsys", "data": {"hi": 1.1, "lo": 0.9}}
    with pytest.raises(ModelError, match="'jes' \\(normsys\\) appears twice on sample 'bkg'"):
        compile_models([_one_channel([twice, dict(twice)])])


def test_a_histosys_that_changes_nothing_twice_on_one_sample_is_refused():
    """A histosys whose up and down data are the nominal is not read into the arrays (it
    changes nothing), but twice on a sample it is refused all the same."""
    from reinterpret.fitter import ModelError, compile_models

    same = {"name": "jes", "type": "histosys", "data": {"hi_data": [50, 40], "lo_data": [50, 40]}}
    compile_models([_one_channel([same])])
    with pytest.raises(ModelError, match="'jes' \\(histosys\\) appears twice on sample 'bkg'"):
        compile_models([_one_channel([same, dict(same)])])


def test_a_histosys_that_changes_nothing_leaves_the_model_as_without_it():
    from reinterpret.fitter import compile_models

    varied = {"name": "jes", "type": "histosys", "data": {"hi_data": [55, 44], "lo_data": [45, 38]}}
    same = {"name": "jer", "type": "histosys", "data": {"hi_data": [50, 40], "lo_data": [50, 40]}}
    with_it = compile_models([_one_channel([varied, same])])
    without = compile_models([_one_channel([varied])])
    jer = with_it.labels[0].index("jer")
    assert np.array_equal(with_it.hs_up, without.hs_up)
    assert np.array_equal(with_it.hs_down, without.hs_down)
    rows = np.arange(1)
    theta = with_it.init.copy()
    theta[0, jer] = 0.7
    a = with_it.evaluate(theta, rows, with_it.observed, with_it.aux)
    keep = np.arange(with_it.npars) != jer
    same_order = [with_it.labels[0].index(label) for label in without.labels[0]]
    b = without.evaluate(theta[:, same_order], rows, without.observed, without.aux)
    # its constraint alone: a unit Gaussian at 0.7, with its normalisation
    assert a.nll[0] == pytest.approx(b.nll[0] + 0.5 * 0.7**2 + 0.5 * np.log(2 * np.pi), rel=1e-12)
    assert np.all(a.hess[0, jer, keep] == 0.0) and a.hess[0, jer, jer] == 1.0


def test_a_histosys_with_the_wrong_number_of_bins_is_refused():
    from reinterpret.fitter import ModelError, compile_models

    short = {"name": "shape", "type": "histosys", "data": {"hi_data": [55.0], "lo_data": [45.0]}}
    with pytest.raises(ModelError, match="histosys of sample 'bkg' .* not have 2 bins"):
        compile_models([_one_channel([short])])


@pytest.mark.parametrize(
    "codes", [("code4", "code4p"), ("code0", "code0"), ("code1", "code4p")], ids=str
)
@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("which", ["numba", "numpy"])
def test_moved_rows_have_the_likelihood_computed_in_full(monkeypatch, which, seed, codes):
    """nll_moved (the mirrored-start probes) equals nll at the moved points: several moved
    rows per base row, moves across 0 and beyond +-1, a linear parameter moved (in full);
    with the compiled kernel.moved and with its numpy twin."""
    from reinterpret.fitter import compile_models, kernel
    from reinterpret.fitter.model import InterpolationCodes
    from tests.test_fitter_random import random_workspace

    if which == "numpy":
        monkeypatch.setattr(kernel, "moved", kernel.numpy_moved)

    model = compile_models([random_workspace(seed)], codes=InterpolationCodes(*codes))
    rng = np.random.default_rng(seed)
    base = np.concatenate([_perturbed(model, seed), _perturbed(model, seed + 1)])
    rows = np.array([0, 0])
    main = np.tile(model.observed, (2, 1))
    aux = np.tile(model.aux, (2, 1))
    movable = np.union1d(model.ns_par, model.hs_par)
    assert movable.size
    owner = np.array([0, 1, 1, 0, 1, 0])
    theta = base[owner].copy()
    for k in range(owner.size):
        chosen = rng.choice(movable, size=min(2, movable.size), replace=False)
        theta[k, chosen] = rng.choice([-1.7, -0.4, 0.0, 0.6, 2.3], size=chosen.size)
    theta[-1, model.lin_idx[0]] *= 1.3  # a linear parameter: computed in full
    moved = model.nll_moved(base, owner, theta, rows, main, aux)
    direct = model.nll(theta, rows[owner], main[owner], aux[owner])
    assert np.allclose(moved, direct, rtol=1e-12, atol=1e-10)


# Workspace 2 of the generator has a flat direction at its minimum (the smallest eigenvalue
# of the scaled free Hessian is 0 up to rounding): whether LAPACK's Cholesky factorisation
# accepts it depends on the build, and only a positive-definite Hessian is a chord's.
@pytest.mark.parametrize("seed", [0, 1, 3, 4])
def test_fits_finished_without_a_last_hessian_reach_the_same_minimum(monkeypatch, seed):
    """Rows near their minimum are checked at the next point with the last Hessian (chord,
    CHORD_DECREMENT): the same minimum as full Newton iterations to the end, converged, and
    a kept Hessian that is the one at the result (or, with near_hessian, one Newton step
    before it)."""
    from reinterpret.fitter import compile_models
    from tests.test_fitter_random import random_workspace

    model = compile_models([random_workspace(seed)])
    rows = np.zeros(8, dtype=int)
    rng = np.random.default_rng(seed)
    start = np.clip(
        model.init + 0.5 * rng.normal(size=(8, model.npars)) * ~model.fixed,
        model.lower + 0.05,
        model.upper,
    )
    main, aux, fixed = (np.repeat(x, 8, axis=0) for x in (model.observed, model.aux, model.fixed))
    light = []
    evaluate = type(model).evaluate

    def counted(self, theta, *rest, hessian=True):
        if not hessian:
            light.append(theta.shape[0])
        return evaluate(self, theta, *rest, hessian=hessian)

    monkeypatch.setattr(type(model), "evaluate", counted)
    fits = {}
    for chord in (0.0, 1e-4):
        monkeypatch.setattr(optimize, "CHORD_DECREMENT", chord)
        for near in (False, True):
            fits[chord, near] = optimize.minimize(
                model, rows, main, aux, start, fixed, keep_hessian=True, near_hessian=near
            )
    assert light, "no row was checked without a Hessian"
    plain = fits[0.0, False]
    assert plain.converged.all()
    for near in (False, True):
        fit = fits[1e-4, near]
        assert fit.converged.all()
        assert np.allclose(fit.nll, plain.nll, rtol=0, atol=1e-8)
        assert np.allclose(fit.theta, plain.theta, rtol=0, atol=1e-3)
    exact = evaluate(model, fits[1e-4, False].theta, rows, main, aux).hess
    free = ~model.fixed[0]
    scale = np.sqrt(np.diagonal(exact, axis1=1, axis2=2)[:, free])
    scaled = exact[:, free][:, :, free] / scale[:, :, None] / scale[:, None, :]
    assert np.linalg.eigvalsh(scaled)[:, 0].min() > 1e-3, "the premise: a strict minimum"
    assert np.allclose(fits[1e-4, False].hessian, exact, rtol=1e-12, atol=1e-12)
    near = fits[1e-4, True].hessian
    size = np.linalg.norm(exact, axis=(1, 2))
    assert np.all(np.linalg.norm(near - exact, axis=(1, 2)) <= 0.05 * size)


def test_the_poi_error_by_cholesky_where_positive_definite_and_by_lu_elsewhere():
    """mu_hat's error is sqrt((H_ff^-1)_poi,poi) over the free parameters: by the Newton
    step's Cholesky factorisation where H_ff is positive definite, by an LU solve where it is
    not (an indefinite Hessian can still give a positive variance), None-worthy (NaN) where
    the variance is not positive."""
    from reinterpret.fitter import compile_models
    from reinterpret.fitter.infer import poi_sigma
    from reinterpret.fitter.optimize import FitOutcome
    from tests.test_fitter_random import random_workspace

    ws = random_workspace(0)
    model = compile_models([ws, ws, ws])
    P, poi = model.npars, model.poi_index
    free = ~model.fixed[0]
    rng = np.random.default_rng(3)
    a = rng.normal(size=(P, P))
    spd = a @ a.T + P * np.eye(P)
    other = int(np.flatnonzero(free & (np.arange(P) != poi))[0])
    indefinite = spd.copy()
    indefinite[other, other] = -5.0 * P  # one negative direction, away from the POI
    negative = -spd  # every variance negative
    fit = FitOutcome(
        np.zeros((3, P)), np.zeros(3), np.ones(3, dtype=bool), np.zeros(3, dtype=int),
        np.zeros(3), [""] * 3, hessian=np.stack([spd, indefinite, negative]),
    )  # fmt: skip
    got = poi_sigma(model, fit)
    f = np.flatnonzero(free)
    at = int(np.searchsorted(f, poi))
    for r, h in enumerate((spd, indefinite)):
        var = np.linalg.inv(h[np.ix_(f, f)])[at, at]
        assert var > 0
        assert got[r] == pytest.approx(np.sqrt(var), rel=1e-10)
    assert np.linalg.eigvalsh(indefinite[np.ix_(f, f)])[0] < 0
    assert np.isnan(got[2])
