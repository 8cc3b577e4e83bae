"""The core of the batched likelihood, yields(): for rows of parameters, the yields and, with
derivatives, what the gradient and Hessian of -log L need (see ModelBatch._evaluate);
moved(), the yields of rows moved in a few normsys and histosys parameters from those at
another row (ModelBatch.nll_moved); assemble(), which puts the Hessian together from those
parts in one pass; and scale_free(), the Jacobi scaling of the Hessians' free blocks that
every Newton step factorises.

Two implementations of each with one signature: compiled.yields, compiled.moved, ... (numba;
yields visits each (parameter, sample-bin) pair once per row) and numpy_yields,
numpy_moved, ... below (the same arithmetic as whole-array numpy operations). The compiled ones
are used where numba can be imported; the numpy ones are the fallback, and
HEPSTORE_FITTER_KERNEL=numpy selects them. Both are tested to agree.

Arguments (R rows, B models, P parameters, S sample-bins, N bins; K histosys pairs, U normsys
(parameter, sample) entries spread to the normsys pairs by ns_spread, M multiplicative pairs:
the linear pairs first, then the normsys pairs): theta (R, P), rows (R,), main (R, N), nominal
(B, S), sb_bin (S,), nbins; hs_code, hs_par, hs_sb (K,), hs_up, hs_down (B, K); lin_par,
lin_sb (L,), lin_on (B, L); ns_code, u_par (U,), u_hi, u_lo (B, U), u_coef (B, U, 6; code4),
ns_spread (M - L,); mul_par, mul_sb (M,); hs_mul (K,): the multiplicative pair of the same
(parameter, sample-bin) or -1; derivatives (NONE, GRADIENT or HESSIAN: what is computed
besides the yields and -log L); and the outputs, written in place: additive, factor (R, S), nu
(R, N), nll (R,) (the Poisson part); from GRADIENT on grad (R, P), jac_bins (R, P, N, zero on
entry); with HESSIAN also u, rho (R, P, S + N, in PRODUCT precision), whose first S columns
are written only at the pairs' entries and zero on entry everywhere else (a zeroed buffer can
serve call after call), whose last N columns carry J W J^T into the product U rho^T (see
compiled.yields), diag (R, P) (zero on entry), zero_q, zero_value (R, K) and weight (R, N),
the Poisson weights n / nu^2 per bin (below HESSIAN these may be empty stand-ins).
"""

from __future__ import annotations

import os

import numpy as np
from scipy.special import gammaln

from reinterpret.fitter import interpolation

# Interpolation codes as the kernels know them.
NORMSYS_CODES = {"code0": 0, "code1": 1, "code4": 4}
HISTOSYS_CODES = {"code0": 0, "code4p": 4}
_NORMSYS_NAMES = {v: k for k, v in NORMSYS_CODES.items()}
_HISTOSYS_NAMES = {v: k for k, v in HISTOSYS_CODES.items()}
# What yields() computes besides the yields and -log L (its `derivatives` argument).
NONE, GRADIENT, HESSIAN = 0, 1, 2
# U and rho, and their product (the off-diagonal second derivatives of the Poisson part, J W
# J^T included), are single precision: the product is the largest single cost of a Hessian
# (1lbb: 126 x 145 x 126 per row), and BLAS does it in float32 in less than half the time.
# The Hessian only steers Newton's steps (the optimum is where the double-precision gradient
# vanishes: the fitted numbers move only within the fits' tolerance), and its entries keep a
# relative precision of about 1e-7 of the terms they sum, far below what the steps, the errors
# of mu_hat and the limits' predictors need; value, gradient and the diagonal stay double.
PRODUCT = np.float32


def scatter(values: np.ndarray, index: np.ndarray, width: int) -> np.ndarray:
    """Sum values (R, K) into columns index (K,) of an (R, width) array."""
    R = values.shape[0]
    flat = (np.arange(R)[:, None] * width + index[None, :]).ravel()
    out = np.bincount(flat, weights=values.ravel(), minlength=R * width)
    return out.astype(float, copy=False).reshape(R, width)  # (bincount of nothing is int)


def poisson_nll(nu: np.ndarray, main: np.ndarray) -> np.ndarray:
    """-log of the Poisson terms of counts main (R, N) at expected yields nu (R, N) (R,)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(main > 0, nu - main * np.log(nu) + gammaln(main + 1.0), nu)
    return terms.sum(axis=1)


def _product_layout(mul_sb: np.ndarray, S: int) -> tuple[np.ndarray, np.ndarray]:
    """Column order and segment starts for a product over the pairs of each sample-bin by one
    reduceat: the pairs in sample-bin order, each sample-bin led by a unit entry (column M)."""
    M = mul_sb.size
    order = np.argsort(mul_sb, kind="stable")
    counts = np.bincount(mul_sb, minlength=S)
    starts = np.concatenate([[0], np.cumsum(counts + 1)[:-1]]).astype(int)
    take = np.full(M + S, M)
    mask = np.ones(M + S, dtype=bool)
    mask[starts] = False
    take[mask] = order
    return take, starts


def numpy_yields(
    theta, rows, main, nominal, sb_bin, nbins,
    hs_code, hs_par, hs_sb, hs_up, hs_down,
    lin_par, lin_sb, lin_on,
    ns_code, u_par, u_hi, u_lo, u_coef, ns_spread, mul_par, mul_sb, hs_mul,
    derivatives, additive, factor, nu, nll, grad, jac_bins, u_mat, rho_mat, diag, zero_q,
    zero_value, weight,
):  # fmt: skip
    """yields() as whole-array numpy operations; see the module docstring."""
    R, P = theta.shape
    S = nominal.shape[1]
    nl, M = lin_par.size, mul_par.size
    delta, d1, d2 = interpolation.additive(
        _HISTOSYS_NAMES[hs_code], theta[:, hs_par], hs_up[rows], hs_down[rows], derivatives
    )
    additive[:] = nominal[rows] + scatter(delta, hs_sb, S)
    alpha = theta[:, u_par]
    hi, lo = u_hi[rows], u_lo[rows]
    if ns_code == NORMSYS_CODES["code4"]:
        f, f1, f2 = interpolation.code4(
            alpha, np.moveaxis(u_coef[rows], -1, 0), lambda out: (hi[out], lo[out]), derivatives
        )
    else:
        f, f1, f2 = interpolation.multiplicative(_NORMSYS_NAMES[ns_code], alpha, hi, lo)
    on = lin_on[rows]
    g = np.empty((R, M + 1))
    g[:, M] = 1.0
    g[:, :nl] = np.where(on, theta[:, lin_par], 1.0)
    g[:, nl:M] = f[:, ns_spread]
    # A factor can be exactly zero (a signal strength at its bound 0): the product is then
    # zero, the product without it is that of the others, every other leave-one-out
    # product is zero (two zeros: all are zero).
    zero = g[:, :M] == 0.0
    n_zero = scatter(zero.astype(float), mul_sb, S) if zero.any() else None
    safe = g if n_zero is None else np.where(g == 0.0, 1.0, g)
    take, starts = _product_layout(mul_sb, S)
    others = np.multiply.reduceat(safe[:, take], starts, axis=1)
    factor[:] = others if n_zero is None else np.where(n_zero > 0, 0.0, others)
    nu[:] = scatter(additive * factor, sb_bin, nbins)
    nll[:] = poisson_nll(nu, main)
    with np.errstate(divide="ignore", invalid="ignore"):
        c_bin = np.where(main > 0, 1.0 - main / nu, 1.0)
    if not derivatives:
        return
    c_sb = c_bin[:, sb_bin]
    g1 = np.empty((R, M))
    g1[:, :nl] = on
    g1[:, nl:] = f1[:, ns_spread]
    g, safe = g[:, :M], safe[:, :M]
    at = others[:, mul_sb]
    with np.errstate(divide="ignore", invalid="ignore"):
        if n_zero is None:
            excl, rho = at / g, g1 / g
        else:
            nz = n_zero[:, mul_sb]
            excl = np.where(nz == 0, at / safe, np.where((nz == 1) & zero, at, 0.0))
            rho = np.where(zero, 0.0, g1 / safe)
    m = g1 * excl
    am = additive[:, mul_sb] * m
    fd1 = d1 * factor[:, hs_sb]
    to_bins = np.concatenate([mul_par * nbins + sb_bin[mul_sb], hs_par * nbins + sb_bin[hs_sb]])
    jac_bins[:] = scatter(np.concatenate([am, fd1], axis=1), to_bins, P * nbins).reshape(
        R, P, nbins
    )
    grad[:] = np.einsum("rpn,rn->rp", jac_bins, c_bin)
    if derivatives < HESSIAN:
        return
    # A m counts half in U (U rho^T is symmetrised), whole beside a single zero.
    keep = 0.5 if n_zero is None else np.where(n_zero == 1, 1.0, 0.5)[:, mul_sb]
    width = S + nbins  # the last nbins columns: w J / 2 and J (see the module docstring)
    u_flat = u_mat.reshape(R, P * width)
    u_flat[:, mul_par * width + mul_sb] = c_sb[:, mul_sb] * keep * am
    # An entry no multiplicative pair shares is the histosys pair's alone: set, not added
    # (u is zero only away from the pairs; see the module docstring).
    hs_cols = hs_par * width + hs_sb
    alone = hs_mul < 0
    u_flat[:, hs_cols[alone]] = c_sb[:, hs_sb[alone]] * fd1[:, alone]
    u_flat[:, hs_cols[~alone]] += c_sb[:, hs_sb[~alone]] * fd1[:, ~alone]
    rho_mat.reshape(R, P * width)[:, mul_par * width + mul_sb] = rho
    with np.errstate(divide="ignore", invalid="ignore"):
        weight[:] = np.where(main > 0, main / (nu * nu), 0.0)
    jw = jac_bins * weight[:, None, :]
    u_mat[:, :, S:] = 0.5 * jw
    rho_mat[:, :, S:] = jac_bins
    ns = slice(nl, M)
    diag[:] = scatter(
        c_sb[:, mul_sb[ns]] * additive[:, mul_sb[ns]] * f2[:, ns_spread] * excl[:, ns],
        mul_par[ns],
        P,
    )
    t = d2 * factor[:, hs_sb]
    shared = np.flatnonzero(hs_mul >= 0)
    t[:, shared] += 2.0 * d1[:, shared] * m[:, hs_mul[shared]]
    diag += scatter(c_sb[:, hs_sb] * t, hs_par, P)
    diag += (jw * jac_bins).sum(axis=2)
    if n_zero is None:
        zero_q[:] = -1
        zero_value[:] = 0.0
        return
    single = (n_zero == 1)[:, hs_sb]
    which = scatter(np.where(zero, mul_par, 0).astype(float), mul_sb, S)
    m_zero = scatter(np.where(zero, m, 0.0), mul_sb, S)
    zero_q[:] = np.where(single, which[:, hs_sb].astype(np.int64), -1)
    zero_value[:] = np.where(single, c_sb[:, hs_sb] * d1 * m_zero[:, hs_sb], 0.0)


def numpy_moved(
    theta, th0, model_rows, additive, factor, full,
    ns_k, ns_j, ns_code, ns_par, ns_sb, ns_hi, ns_lo, u_coef, ns_spread,
    hs_k, hs_j, hs_code, hs_par, hs_sb, hs_up, hs_down,
):  # fmt: skip
    """moved() as numpy operations; see the compiled one (compiled.moved)."""
    if ns_k.size:
        m = model_rows[ns_k]
        new, old = theta[ns_k, ns_par[ns_j]], th0[ns_k, ns_par[ns_j]]
        hi, lo = ns_hi[m, ns_j], ns_lo[m, ns_j]
        code = _NORMSYS_NAMES[ns_code]
        c = np.moveaxis(u_coef[m, ns_spread[ns_j]], -1, 0) if code == "code4" else None
        f_new = interpolation.multiplicative(code, new, hi, lo, c)[0]
        f_old = interpolation.multiplicative(code, old, hi, lo, c)[0]
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = f_new / f_old
        bad = ~(np.isfinite(ratio) & (f_old != 0.0))
        full[ns_k[bad]] = True
        np.multiply.at(factor, (ns_k, ns_sb[ns_j]), np.where(bad, 1.0, ratio))
    if hs_k.size:
        m = model_rows[hs_k]
        up, down = hs_up[m, hs_j], hs_down[m, hs_j]
        new, old = theta[hs_k, hs_par[hs_j]], th0[hs_k, hs_par[hs_j]]
        code = _HISTOSYS_NAMES[hs_code]
        shift = (
            interpolation.additive(code, new, up, down)[0]
            - interpolation.additive(code, old, up, down)[0]
        )
        np.add.at(additive, (hs_k, hs_sb[hs_j]), shift)


def numpy_assemble(second, diag, hess_c, hess):
    """assemble() as numpy operations; see the compiled one (compiled.assemble)."""
    idx = np.arange(diag.shape[1])
    wide = second.astype(float)
    np.add(wide, wide.transpose(0, 2, 1), out=hess)
    hess[:, idx, idx] = diag + hess_c


def numpy_scale_free(hess, g, free, hs, gs, scale):
    """scale_free() as numpy operations; see the compiled one (compiled.scale_free)."""
    P = g.shape[1]
    d = np.abs(np.diagonal(hess, axis1=1, axis2=2))
    with np.errstate(invalid="ignore", divide="ignore"):
        scale[:] = np.where(free & (d > 0) & np.isfinite(d), 1.0 / np.sqrt(d), 1.0)
    # Rows and columns of fixed parameters are zeroed by the scaling itself.
    masked = np.where(free, scale, 0.0)
    with np.errstate(invalid="ignore"):  # inf * 0: NaN, cleared below
        np.multiply(hess, masked[:, :, None], out=hs)
        hs *= masked[:, None, :]
    idx = np.arange(P)
    hs[:, idx, idx] = np.where(free, hs[:, idx, idx], 1.0)
    if not np.all(np.isfinite(hs)):
        np.nan_to_num(hs, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
        hs[:, idx, idx] = np.where(np.diagonal(hs, axis1=1, axis2=2) == 0, 1.0, hs[:, idx, idx])
    np.multiply(g, scale, out=gs)


def _select():
    if os.environ.get("HEPSTORE_FITTER_KERNEL", "numba") == "numpy":
        return numpy_yields, numpy_moved, numpy_assemble, numpy_scale_free, "numpy"
    try:
        from reinterpret.fitter import compiled
    except ImportError:
        return numpy_yields, numpy_moved, numpy_assemble, numpy_scale_free, "numpy"
    return compiled.yields, compiled.moved, compiled.assemble, compiled.scale_free, "numba"


yields, moved, assemble, scale_free, NAME = _select()
_warm = False


def warm_up() -> None:
    """Run yields() once on a one-parameter model in both modes, so that loading (or, with
    no cache, compiling) the compiled kernel happens here and not inside the first fit a
    caller times. Later calls do nothing."""
    global _warm
    if _warm:
        return
    i64 = np.int64
    none, one = np.zeros(0, dtype=i64), np.zeros(1, dtype=i64)
    for derivatives in (NONE, GRADIENT, HESSIAN):
        R, P, S, N, K = 1, 1, 1, 1, 0
        yields(
            np.ones((R, P)), one, np.ones((R, N)), np.ones((1, S)), one, N,
            HISTOSYS_CODES["code4p"], none, none, np.zeros((1, K)), np.zeros((1, K)),
            one, one, np.ones((1, 1), dtype=bool),
            NORMSYS_CODES["code4"], none, np.zeros((1, 0)), np.zeros((1, 0)),
            np.zeros((1, 0, 6)), none, one, one, none,
            derivatives, np.empty((R, S)), np.empty((R, S)), np.empty((R, N)), np.empty(R),
            np.empty((R, P)), np.zeros((R, P, N)), np.zeros((R, P, S + N), dtype=PRODUCT),
            np.zeros((R, P, S + N), dtype=PRODUCT),
            np.zeros((R, P)), np.empty((R, K), dtype=i64), np.empty((R, K)), np.empty((R, N)),
        )  # fmt: skip
    f1 = np.zeros((1, 1))
    moved(
        np.zeros((1, 1)), np.zeros((1, 1)), one, np.ones((1, 1)), np.ones((1, 1)),
        np.zeros(1, dtype=bool), none, none, NORMSYS_CODES["code4"], none, none, f1, f1,
        np.zeros((1, 1, 6)), none, none, none, HISTOSYS_CODES["code4p"], none, none, f1, f1,
    )  # fmt: skip
    assemble(np.zeros((1, 1, 1), dtype=PRODUCT), np.zeros((1, 1)), np.zeros((1, 1)), f1[None])
    ones = np.ones((1, 1))
    scale_free(
        np.ones((1, 1, 1)), ones, np.ones((1, 1), dtype=bool), np.empty((1, 1, 1)),
        np.empty((1, 1)), np.empty((1, 1)),
    )  # fmt: skip
    _warm = True
