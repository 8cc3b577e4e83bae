"""Pieces of the batched engine that the end-to-end comparisons only exercise indirectly."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from reinterpret.fitter import allocator, optimize


def _stack(seed: int = 3, rows: int = 9, size: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric matrices, every third one indefinite, and gradients."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(rows, size, size))
    h = a @ a.transpose(0, 2, 1) + 0.1 * np.eye(size)
    h[::3, 0, 0] = -5.0
    return h, rng.normal(size=(rows, size))


def test_positive_definite_rows_are_told_apart_in_one_call():
    h, _ = _stack()
    expected = np.array([np.all(np.linalg.eigvalsh(m) > 0) for m in h])
    assert not expected.all() and expected.any()
    assert np.array_equal(optimize._positive_definite(h), expected)


def test_bisection_fallback_agrees(monkeypatch):
    h, _ = _stack()
    fast = optimize._positive_definite(h)
    monkeypatch.setattr(optimize, "_cholesky_lo", None)
    assert np.array_equal(optimize._positive_definite(h), fast)


def test_solve_is_newton_where_positive_definite_and_descends_elsewhere():
    h, g = _stack()
    step, decrement = optimize._solve(h, g)
    pd = optimize._positive_definite(h)
    newton = -np.linalg.solve(h[pd], g[pd][..., None])[..., 0]
    assert np.allclose(step[pd], newton)
    assert np.allclose(decrement[pd], -0.5 * (newton * g[pd]).sum(axis=1))
    # Where H is indefinite the step is still a descent direction.
    assert np.all((step[~pd] * g[~pd]).sum(axis=1) < 0)
    assert np.all(decrement > 0)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt only")
def test_allocator_thresholds_are_set_on_linux():
    assert allocator.keep_freed_memory() is True
