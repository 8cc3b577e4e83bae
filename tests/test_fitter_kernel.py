"""The two implementations of the likelihood's core (reinterpret/fitter/kernel.py): the
compiled one (numba) and the numpy fallback give the same value, gradient and Hessian, for
every interpolation code, with factors exactly zero (mu = 0) and parameters beyond +-1."""

from __future__ import annotations

import numpy as np
import pytest

from reinterpret.fitter import compiled, kernel
from reinterpret.fitter.model import InterpolationCodes


def _rows(model, seed: int) -> np.ndarray:
    """Parameter rows of one model: perturbed, some at mu = 0, some far beyond +-1."""
    rng = np.random.default_rng(seed)
    theta = np.repeat(model.init, 12, axis=0)
    theta += rng.normal(scale=0.4, size=theta.shape) * ~model.fixed
    theta[::4] += rng.choice([-2.5, 2.5], size=theta[::4].shape) * ~model.fixed
    theta = np.clip(theta, model.lower + 1e-3, model.upper)
    theta[::3, model.poi_index] = 0.0
    return theta


@pytest.mark.parametrize(
    "codes", [("code4", "code4p"), ("code0", "code0"), ("code1", "code4p")], ids=str
)
@pytest.mark.parametrize("seed", range(4))
def test_compiled_and_numpy_kernels_agree(monkeypatch, seed, codes):
    from reinterpret.fitter import compile_models
    from tests.test_fitter_random import random_workspace

    model = compile_models([random_workspace(seed)], codes=InterpolationCodes(*codes))
    theta = _rows(model, seed)
    rows = np.zeros(theta.shape[0], dtype=int)
    main = np.repeat(model.observed, theta.shape[0], axis=0)
    aux = np.repeat(model.aux, theta.shape[0], axis=0)
    out = {}
    for name, function, assemble in (
        ("numba", compiled.yields, compiled.assemble),
        ("numpy", kernel.numpy_yields, kernel.numpy_assemble),
    ):
        monkeypatch.setattr(kernel, "yields", function)
        monkeypatch.setattr(kernel, "assemble", assemble)
        out[name] = (
            model.evaluate(theta, rows, main, aux),
            model.nll(theta, rows, main, aux),
            model.expected(theta, rows)[0],
        )
        # Without the Hessian (kernel.GRADIENT) the value and gradient are the same numbers.
        full, light = out[name][0], model.evaluate(theta, rows, main, aux, hessian=False)
        assert light.hess is None
        assert np.array_equal(light.nll, full.nll)
        assert np.array_equal(light.grad, full.grad)
    (a, a_nll, a_nu), (b, b_nll, b_nu) = out["numba"], out["numpy"]
    assert np.isfinite(a.hess).all()
    assert np.allclose(a.nll, b.nll, rtol=1e-12, atol=1e-9)
    assert np.allclose(a_nll, b_nll, rtol=1e-12, atol=1e-9)
    assert np.allclose(a_nu, b_nu, rtol=1e-12, atol=1e-12)
    assert np.allclose(a.grad, b.grad, rtol=1e-9, atol=1e-8)
    assert np.allclose(a.hess, b.hess, rtol=1e-9, atol=1e-8)
    every = np.arange(theta.shape[0])
    assert np.allclose(a.fisher(every), b.fisher(every), rtol=1e-9, atol=1e-8)
    assert np.array_equal(a.hess, a.hess.transpose(0, 2, 1))


@pytest.mark.parametrize("which", ["numba", "numpy"])
@pytest.mark.parametrize("seed", range(3))
def test_the_reused_hessian_buffers_carry_nothing_from_call_to_call(monkeypatch, which, seed):
    """U and rho live in one zeroed buffer per model that every Hessian evaluation reuses
    (the kernels write only the pairs' entries): an evaluation after others, of other rows
    and more of them, gives exactly what a fresh model gives."""
    from reinterpret.fitter import compile_models
    from tests.test_fitter_random import random_workspace

    if which == "numpy":
        monkeypatch.setattr(kernel, "yields", kernel.numpy_yields)
        monkeypatch.setattr(kernel, "assemble", kernel.numpy_assemble)
    ws = random_workspace(seed)
    used, fresh = compile_models([ws]), compile_models([ws])
    assert used.hs_par.size and (used.hs_mul < 0).any()  # histosys entries of their own
    theta = _rows(used, seed)
    rows = np.zeros(theta.shape[0], dtype=int)
    main = np.repeat(used.observed, theta.shape[0], axis=0)
    aux = np.repeat(used.aux, theta.shape[0], axis=0)
    for k in range(3):  # other points first, in blocks of other sizes
        n = 3 + 2 * k
        other = np.roll(theta, k + 1, axis=0)[:n] * 1.01
        used.evaluate(other, rows[:n], main[:n], aux[:n])
    a = used.evaluate(theta, rows, main, aux)
    b = fresh.evaluate(theta, rows, main, aux)
    assert np.array_equal(a.hess, b.hess)
    assert np.array_equal(a.grad, b.grad) and np.array_equal(a.nll, b.nll)


def test_the_compiled_and_numpy_assembly_agree():
    """assemble(): U rho^T plus its transpose off the diagonal, the given diagonal plus the
    constraints' on the diagonal; the same numbers either way."""
    rng = np.random.default_rng(5)
    R, P = 3, 7
    second = rng.normal(size=(R, P, P)).astype(kernel.PRODUCT)
    diag, hess_c = rng.normal(size=(R, P)), rng.uniform(size=(R, P))
    idx = np.arange(P)
    wide = second.astype(float)
    want = wide + wide.transpose(0, 2, 1)
    want[:, idx, idx] = diag + hess_c
    for assemble in (compiled.assemble, kernel.numpy_assemble):
        hess = np.full((R, P, P), np.nan)
        assemble(second, diag, hess_c, hess)
        assert hess.dtype == float
        assert np.array_equal(hess, want)


def test_the_hessian_holds_the_fisher_part_and_the_yields_second_derivatives():
    """J W J^T rides in the product U rho^T (the kernels' last N columns): the Hessian is
    still the fisher stand-in plus the second-derivative terms, and agrees with central
    differences of the gradient; fisher() of some rows is that of those rows."""
    from reinterpret.fitter import compile_models
    from tests.test_fitter_random import random_workspace

    model = compile_models([random_workspace(1)])
    theta = _rows(model, 1)[:5]
    theta[:, model.poi_index] = np.maximum(theta[:, model.poi_index], 0.5)
    rows = np.zeros(theta.shape[0], dtype=int)
    main = np.repeat(model.observed, theta.shape[0], axis=0)
    aux = np.repeat(model.aux, theta.shape[0], axis=0)
    ev = model.evaluate(theta, rows, main, aux)
    P, h = model.npars, 1e-6
    for r in range(theta.shape[0]):
        numeric = np.empty((P, P))
        for p in range(P):
            up, down = theta[r : r + 1].copy(), theta[r : r + 1].copy()
            up[0, p] += h
            down[0, p] -= h
            g_up = model.evaluate(up, rows[:1], main[:1], aux[:1], hessian=False).grad[0]
            g_down = model.evaluate(down, rows[:1], main[:1], aux[:1], hessian=False).grad[0]
            numeric[:, p] = (g_up - g_down) / (2 * h)
        numeric = 0.5 * (numeric + numeric.T)
        assert np.allclose(ev.hess[r], numeric, rtol=1e-5, atol=1e-5 * np.abs(numeric).max())
    some = np.array([3, 1])
    assert np.array_equal(ev.fisher(some)[0], ev.fisher(np.arange(5))[3])
    jac = ev.jac[some]
    want = np.matmul(jac * ev.weight[some][:, None, :], jac.transpose(0, 2, 1))
    want[:, np.arange(P), np.arange(P)] += ev.curvature[some]
    assert np.array_equal(ev.fisher(some), want)
    assert (np.linalg.eigvalsh(ev.fisher(some)) > -1e-9).all()


def test_the_compiled_and_numpy_scalings_agree_bit_for_bit():
    """The Jacobi scaling of the free blocks: the same numbers from both, also with fixed
    parameters, zero diagonals and non-finite entries (cleared to 0, a zero diagonal then
    becoming 1, in every row of the block)."""
    rng = np.random.default_rng(3)
    cases = 0
    for trial in range(200):
        R, P = int(rng.integers(1, 6)), int(rng.integers(1, 9))
        hess = rng.normal(size=(R, P, P))
        hess = hess + hess.transpose(0, 2, 1)
        if trial % 3 == 0:
            hess[rng.random(hess.shape) < 0.05] = rng.choice([np.nan, np.inf, -np.inf, 0.0])
        if trial % 5 == 0:
            hess[:, trial % P, trial % P] = 0.0
        g = rng.normal(size=(R, P))
        free = rng.random((R, P)) < 0.7
        out = []
        for scale_free in (compiled.scale_free, kernel.numpy_scale_free):
            arrays = np.empty((R, P, P)), np.empty((R, P)), np.empty((R, P))
            scale_free(hess, g, free, *arrays)
            out.append(arrays)
        for a, b in zip(*out, strict=True):
            assert np.array_equal(a, b, equal_nan=True)
        hs = out[0][0]
        assert np.isfinite(hs).all() or np.isfinite(hess).all()
        cases += not np.isfinite(hess).all()
        idx = np.arange(P)
        assert (hs[:, idx, idx][~free] == 1.0).all()  # identity off the free block
    assert cases > 20  # the non-finite branch ran


def test_the_numpy_kernel_is_chosen_when_asked(monkeypatch):
    monkeypatch.setenv("HEPSTORE_FITTER_KERNEL", "numpy")
    numpy_kernel = (
        kernel.numpy_yields, kernel.numpy_moved, kernel.numpy_assemble, kernel.numpy_scale_free,
    )  # fmt: skip
    assert kernel._select() == (*numpy_kernel, "numpy")
    monkeypatch.delenv("HEPSTORE_FITTER_KERNEL")
    compiled_kernel = (compiled.yields, compiled.moved, compiled.assemble, compiled.scale_free)
    assert kernel._select() == (*compiled_kernel, "numba")


def test_the_warm_up_compiles_what_the_fits_use():
    """kernel.warm_up() (run before a fit's CPU time is measured) must load the very
    specialisation the fits call, or the first fit would still pay for compiling one."""
    from reinterpret.fitter import compile_models, hypotest
    from tests.test_fitter_random import random_workspace

    kernel.warm_up()
    functions = (compiled.yields, compiled.moved, compiled.assemble, compiled.scale_free)
    before = [set(f.signatures) for f in functions]
    assert all(before)
    hypotest(compile_models([random_workspace(0)]))
    assert [set(f.signatures) for f in functions] == before


def test_a_whole_hypothesis_test_agrees_on_either_kernel(monkeypatch):
    from reinterpret.fitter import InferenceOptions, compile_models, hypotest
    from tests.test_fitter_random import random_workspace

    model = compile_models([random_workspace(0)])
    options = InferenceOptions(upper_limit=True)
    (fast,) = hypotest(model, options)
    monkeypatch.setattr(kernel, "yields", kernel.numpy_yields)
    monkeypatch.setattr(kernel, "assemble", kernel.numpy_assemble)
    monkeypatch.setattr(kernel, "moved", kernel.numpy_moved)
    monkeypatch.setattr(kernel, "scale_free", kernel.numpy_scale_free)
    (plain,) = hypotest(model, options)
    assert fast.converged and plain.converged
    assert plain.cls_obs == pytest.approx(fast.cls_obs, rel=1e-8)
    assert plain.cls_exp == pytest.approx(fast.cls_exp, rel=1e-8)
    assert fast.mu_up_obs is not None and None not in fast.mu_up_exp
    assert plain.mu_up_obs == pytest.approx(fast.mu_up_obs, rel=1e-6)
    assert plain.mu_up_exp == pytest.approx(fast.mu_up_exp, rel=1e-6)


def test_code4_coefficients_by_column_equal_the_full_computation():
    """Shared columns (the background's normsys) are computed once for all models; a column
    where the models differ (a signal's own) per model: the same numbers as every entry
    computed on its own."""
    from reinterpret.fitter import interpolation
    from reinterpret.fitter.model import _code4_by_column

    rng = np.random.default_rng(2)
    hi = np.repeat(rng.uniform(0.8, 1.3, size=(1, 6)), 4, axis=0)
    lo = np.repeat(rng.uniform(0.7, 1.2, size=(1, 6)), 4, axis=0)
    hi[:, 2] = rng.uniform(0.9, 1.5, size=4)
    lo[1, 4] = 1.05
    want = interpolation.code4_coefficients(hi, lo, last=True)
    assert np.allclose(_code4_by_column(hi, lo), want, rtol=1e-14, atol=1e-15)
