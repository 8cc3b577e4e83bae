"""The compiled core of the batched likelihood (see kernel.py): yields and their derivatives,
row by row.

ModelBatch keeps the model as (parameter, sample-bin) pairs: histosys pairs (an additive
shift per pair), linear pairs (normfactor, lumi, staterror, shapesys, shapefactor: the
factor is the parameter itself where the model has the modifier, else 1) and normsys pairs
(a factor interpolated once per (parameter, sample), "unique" entries, and spread to the
sample's bins). Written as numpy operations this costs one pass over memory per operation
on arrays that mostly hold ones and zeros; here each pair is visited once per row, and what
the Hessian needs from it is written straight into the dense arrays of the one product
that remains (second-derivative part: U rho^T, done by BLAS in ModelBatch).

Compiled by numba on first use and cached on disk (beside this file, or where
NUMBA_CACHE_DIR says; a temporary directory when this package's directory is read-only).
Floating-point errors follow IEEE rules (error_model="numpy"): a zero yield gives inf or NaN
as numpy would, never an exception.
"""

from __future__ import annotations

import math
import os
import tempfile

import numpy as np

if "NUMBA_CACHE_DIR" not in os.environ and not os.access(os.path.dirname(__file__), os.W_OK):
    os.environ["NUMBA_CACHE_DIR"] = os.path.join(tempfile.gettempdir(), "hepstore-numba-cache")

from numba import njit  # noqa: E402  (reads NUMBA_CACHE_DIR when imported)


@njit(cache=True, error_model="numpy")
def _exponential(alpha, hi, lo):
    """code1: hi**alpha (alpha >= 0), lo**-alpha (alpha < 0), with two derivatives."""
    if alpha >= 0.0:
        log_base = math.log(hi) if hi > 0.0 else (-math.inf if hi == 0.0 else math.nan)
        value = hi**alpha
    else:
        log_base = -math.log(lo) if lo > 0.0 else (math.inf if lo == 0.0 else math.nan)
        value = lo ** (-alpha)
    return value, value * log_base, value * log_base * log_base


@njit(cache=True, error_model="numpy")
def _normsys(code, alpha, hi, lo, coef, b, u):
    """Factor, slope and curvature of one normsys entry; coef[b, u]: its six code4
    coefficients (read for code4 only)."""
    if code == 0:
        slope = hi - 1.0 if alpha >= 0.0 else 1.0 - lo
        return 1.0 + alpha * slope, slope, 0.0
    if code == 1 or abs(alpha) >= 1.0:
        return _exponential(alpha, hi, lo)
    return _code4_polynomial(alpha, coef[b, u])


@njit(cache=True, error_model="numpy")
def _code4_polynomial(a, c):
    """code4 inside |alpha| < 1: 1 + sum_i c_i a^(i+1) with its two derivatives (Horner), for
    the six coefficients c of one entry."""
    c0, c1, c2, c3, c4, c5 = c[0], c[1], c[2], c[3], c[4], c[5]
    poly = (((((c5 * a + c4) * a + c3) * a + c2) * a + c1) * a + c0) * a
    d1 = ((((6.0 * c5 * a + 5.0 * c4) * a + 4.0 * c3) * a + 3.0 * c2) * a + 2.0 * c1) * a
    d2 = (((30.0 * c5 * a + 20.0 * c4) * a + 12.0 * c3) * a + 6.0 * c2) * a
    return poly + 1.0, d1 + c0, d2 + 2.0 * c1


@njit(cache=True, error_model="numpy")
def _histosys(code, alpha, up, down):
    """Shift, slope and curvature of one histosys entry (up = hi - nominal, down = nominal -
    lo)."""
    if code == 0 or abs(alpha) > 1.0:
        slope = up if alpha >= 0.0 else down
        return alpha * slope, slope, 0.0
    a2, b1, b2, b3 = _code4p_basis(alpha)
    return _code4p_inside(alpha, up, down, a2, b1, b2, b3)


@njit(cache=True, error_model="numpy")
def _code4p_basis(alpha):
    """What code4p inside |alpha| <= 1 needs of alpha alone: alpha^2 and the three
    polynomials in it of the shift, slope and curvature."""
    a2 = alpha * alpha
    a4 = a2 * a2
    return (
        a2,
        15.0 - 10.0 * a2 + 3.0 * a4,
        30.0 - 40.0 * a2 + 18.0 * a4,
        30.0 - 120.0 * a2 + 90.0 * a4,
    )


@njit(cache=True, error_model="numpy")
def _code4p_inside(alpha, up, down, a2, b1, b2, b3):
    """Shift, slope and curvature of one histosys entry under code4p inside |alpha| <= 1,
    from _code4p_basis(alpha)."""
    s = 0.5 * (up + down)
    a_coef = 0.0625 * (up - down)
    return alpha * s + a_coef * a2 * b1, s + a_coef * alpha * b2, a_coef * b3


@njit(cache=True, error_model="numpy")
def _code4_entries(th, u_par, hi, lo, coef, f, f1, f2):
    """Factor, slope and curvature of every normsys entry of one row under code4, as _normsys
    computes each (the same operations, so the same bits): the polynomial for all entries in
    one branch-free pass, whose Horner chains of successive entries overlap; then the
    exponential where |alpha| >= 1."""
    for u in range(u_par.size):
        f[u], f1[u], f2[u] = _code4_polynomial(th[u_par[u]], coef[u])
    for u in range(u_par.size):
        a = th[u_par[u]]
        if abs(a) >= 1.0:
            f[u], f1[u], f2[u] = _exponential(a, hi[u], lo[u])


@njit(cache=True, error_model="numpy")
def _code4p_pairs(th, hs_par, hs_sb, up, down, A, d1, d2, basis):
    """Shift (added to A), slope and curvature of every histosys pair of one row under code4p,
    as _histosys computes each (the same operations, so the same bits), with what depends on
    the parameter alone (alpha^2 and the three polynomials in it) computed once per parameter
    into basis (P, 4)."""
    for p in range(th.size):
        basis[p, 0], basis[p, 1], basis[p, 2], basis[p, 3] = _code4p_basis(th[p])
    for k in range(hs_par.size):
        p = hs_par[k]
        alpha = th[p]
        if abs(alpha) > 1.0:
            slope = up[k] if alpha >= 0.0 else down[k]
            v, d1[k], d2[k] = alpha * slope, slope, 0.0
        else:
            b = basis[p]
            v, d1[k], d2[k] = _code4p_inside(alpha, up[k], down[k], b[0], b[1], b[2], b[3])
        A[hs_sb[k]] += v


@njit(cache=True, error_model="numpy", inline="always")
def _run_of(D, dp, dacc, p):
    """The running sum (dp, dacc) of D[dp] for parameter p: unchanged while p is dp, else
    dacc stored to D[dp] (dp >= 0) and the run restarted at D[p] (p >= 0; p = -1 only ends
    the run). The same additions in the same order as D[p] += ... per pair, so the same bits
    in any order of the pairs, without a store and reload per pair."""
    if p == dp:
        return dp, dacc
    if dp >= 0:
        D[dp] = dacc
    return p, (D[p] if p >= 0 else 0.0)


@njit(cache=True, error_model="numpy")
def yields(
    theta, rows, main, nominal, sb_bin, nbins,
    hs_code, hs_par, hs_sb, hs_up, hs_down,
    lin_par, lin_sb, lin_on,
    ns_code, u_par, u_hi, u_lo, u_coef, ns_spread, mul_par, mul_sb, hs_mul,
    derivatives, additive, factor, nu, nll, grad, jac_bins, u_mat, rho_mat, diag, zero_q,
    zero_value, weight,
):  # fmt: skip
    """For each row r (model rows[r], parameters theta[r]): additive (A) and factor (F) per
    sample-bin, expected yields nu per bin and the Poisson part of -log L (nll). With
    derivatives also, of the Poisson part: the gradient; jac_bins = dnu_bin/dp; U and rho
    of the off-diagonal second derivatives (see ModelBatch._evaluate); the diagonal of the
    second-derivative term; and, for histosys pairs in a sample-bin whose factor product has
    exactly one zero factor, the column q of that factor (zero_q, -1 elsewhere) and the term
    c A' m_q (zero_value). U and rho are (R, P, S + nbins): their last nbins columns hold
    w J / 2 and J (w = n / nu^2 per bin, also written to weight), so that U rho^T plus its
    transpose is the whole off-diagonal Hessian of the Poisson part, J W J^T included (whose
    diagonal is added to diag). Of the first S columns only the pairs' entries are written:
    away from them U and rho must be zero on entry (the same entries in every row and call,
    so the caller can reuse one zeroed buffer)."""
    R = theta.shape[0]
    S = nominal.shape[1]
    K = hs_par.size
    U = u_par.size
    nl = lin_par.size
    M = mul_par.size
    d1 = np.empty(K)
    d2 = np.empty(K)
    f = np.empty(U)
    f1 = np.empty(U)
    f2 = np.empty(U)
    g = np.empty(M)
    g1 = np.empty(M)
    m = np.empty(M)
    others = np.empty(S)
    n_zero = np.empty(S, dtype=np.int64)
    zero_at = np.empty(S, dtype=np.int64)
    c_bin = np.empty(nbins)
    c_sb = np.empty(S)
    basis = np.empty((theta.shape[1], 4))
    ns_rho = np.empty(U)
    for r in range(R):
        b = rows[r]
        th = theta[r]
        A = additive[r]
        for s in range(S):
            A[s] = nominal[b, s]
            others[s] = 1.0
            n_zero[s] = 0
        if hs_code == 4:
            _code4p_pairs(th, hs_par, hs_sb, hs_up[b], hs_down[b], A, d1, d2, basis)
        else:
            for k in range(K):
                v, v1, v2 = _histosys(hs_code, th[hs_par[k]], hs_up[b, k], hs_down[b, k])
                A[hs_sb[k]] += v
                d1[k] = v1
                d2[k] = v2
        if ns_code == 4:
            _code4_entries(th, u_par, u_hi[b], u_lo[b], u_coef[b], f, f1, f2)
        else:
            for u in range(U):
                v, v1, v2 = _normsys(ns_code, th[u_par[u]], u_hi[b, u], u_lo[b, u], u_coef, b, u)
                f[u] = v
                f1[u] = v1
                f2[u] = v2
        for j in range(M):
            if j < nl:
                if lin_on[b, j]:
                    g[j] = th[lin_par[j]]
                    g1[j] = 1.0
                else:
                    g[j] = 1.0
                    g1[j] = 0.0
            else:
                u = ns_spread[j - nl]
                g[j] = f[u]
                g1[j] = f1[u]
            s = mul_sb[j]
            if g[j] == 0.0:
                n_zero[s] += 1
                zero_at[s] = j
            else:
                others[s] *= g[j]
        F = factor[r]
        nu_r = nu[r]
        for n in range(nbins):
            nu_r[n] = 0.0
        for s in range(S):
            F[s] = others[s] if n_zero[s] == 0 else 0.0
            nu_r[sb_bin[s]] += A[s] * F[s]
        total = 0.0
        for n in range(nbins):
            x = main[r, n]
            if x > 0.0:
                log_nu = (
                    math.log(nu_r[n])
                    if nu_r[n] > 0.0
                    else (-math.inf if nu_r[n] == 0.0 else math.nan)
                )
                total += nu_r[n] - x * log_nu + math.lgamma(x + 1.0)
                c_bin[n] = 1.0 - x / nu_r[n]
            else:
                total += nu_r[n]
                c_bin[n] = 1.0
        nll[r] = total
        if derivatives == 0:
            continue
        hessian = derivatives == 2
        if hessian:
            # g'/g of each normsys entry, shared by the pairs it is spread to.
            for u in range(U):
                ns_rho[u] = f1[u] / f[u]
        for s in range(S):
            c_sb[s] = c_bin[sb_bin[s]]
        J = jac_bins[r]
        Um = u_mat[r]
        Rm = rho_mat[r]
        D = diag[r]
        # A parameter's diagonal term is summed in a local (dacc) over each run of its pairs
        # (_run_of). The pairs come sorted by parameter, so the runs are long.
        dp = -1
        dacc = 0.0
        for j in range(M):
            s = mul_sb[j]
            p = mul_par[j]
            nz = n_zero[s]
            # g'/g, 0 for a zero factor (a normsys entry's is shared by its pairs).
            if g[j] == 0.0:
                rho = 0.0
            elif j < nl:
                rho = g1[j] / g[j]
            else:
                rho = ns_rho[ns_spread[j - nl]]
            if nz == 0:
                excl = others[s] / g[j]
            elif nz == 1 and g[j] == 0.0:
                excl = others[s]
            else:
                excl = 0.0
            m[j] = g1[j] * excl
            am = A[s] * m[j]
            J[p, sb_bin[s]] += am
            if not hessian:
                continue
            # A m counts half in U (U rho^T is symmetrised), whole beside a single zero.
            Um[p, s] = c_sb[s] * (1.0 if nz == 1 else 0.5) * am
            Rm[p, s] = rho
            if j >= nl:
                dp, dacc = _run_of(D, dp, dacc, p)
                dacc += c_sb[s] * A[s] * f2[ns_spread[j - nl]] * excl
        dp, dacc = _run_of(D, dp, dacc, -1)
        for k in range(K):
            s = hs_sb[k]
            p = hs_par[k]
            fd1 = d1[k] * F[s]
            J[p, sb_bin[s]] += fd1
            if not hessian:
                continue
            # Where no multiplicative pair shares (p, s) its entry is this pair's alone (u
            # is zero only away from the pairs: it may hold the last call's values).
            if hs_mul[k] >= 0:
                Um[p, s] += c_sb[s] * fd1
            else:
                Um[p, s] = c_sb[s] * fd1
            t = d2[k] * F[s]
            if hs_mul[k] >= 0:
                t += 2.0 * d1[k] * m[hs_mul[k]]
            dp, dacc = _run_of(D, dp, dacc, p)
            dacc += c_sb[s] * t
            if n_zero[s] == 1:
                zero_q[r, k] = mul_par[zero_at[s]]
                zero_value[r, k] = c_sb[s] * d1[k] * m[zero_at[s]]
            else:
                zero_q[r, k] = -1
                zero_value[r, k] = 0.0
        _run_of(D, dp, dacc, -1)
        G = grad[r]
        for p in range(G.size):
            acc = 0.0
            for n in range(nbins):
                acc += J[p, n] * c_bin[n]
            G[p] = acc
        if not hessian:
            continue
        # J W J^T rides in the same product: columns S + n of U and rho hold w_n J / 2 and J
        # (w = n / nu^2), and its diagonal goes to the diagonal term.
        for n in range(nbins):
            x = main[r, n]
            w = x / (nu_r[n] * nu_r[n]) if x > 0.0 else 0.0
            weight[r, n] = w
            for p in range(G.size):
                jw = J[p, n] * w
                Um[p, S + n] = 0.5 * jw
                Rm[p, S + n] = J[p, n]
                D[p] += jw * J[p, n]


@njit(cache=True, error_model="numpy")
def moved(
    theta, th0, model_rows, additive, factor, full,
    ns_k, ns_j, ns_code, ns_par, ns_sb, ns_hi, ns_lo, u_coef, ns_spread,
    hs_k, hs_j, hs_code, hs_par, hs_sb, hs_up, hs_down,
):  # fmt: skip
    """The yields of rows theta (K, P) moved from th0 in a few normsys and histosys
    parameters, from those at th0 (additive, factor (K, S), updated in place): for each
    normsys pair (row ns_k, pair ns_j) the factor times the ratio of the new to the old
    factor, for each histosys pair (hs_k, hs_j) the additive part plus the change of the
    shift. A row whose old factor is zero or whose ratio is not finite is marked in full
    (its factor is left alone; it is to be evaluated from scratch)."""
    for i in range(ns_k.size):
        k = ns_k[i]
        j = ns_j[i]
        b = model_rows[k]
        p = ns_par[j]
        u = ns_spread[j]
        f_new = _normsys(ns_code, theta[k, p], ns_hi[b, j], ns_lo[b, j], u_coef, b, u)[0]
        f_old = _normsys(ns_code, th0[k, p], ns_hi[b, j], ns_lo[b, j], u_coef, b, u)[0]
        ratio = f_new / f_old
        if f_old != 0.0 and math.isfinite(ratio):
            factor[k, ns_sb[j]] *= ratio
        else:
            full[k] = True
    for i in range(hs_k.size):
        k = hs_k[i]
        j = hs_j[i]
        b = model_rows[k]
        p = hs_par[j]
        new = _histosys(hs_code, theta[k, p], hs_up[b, j], hs_down[b, j])[0]
        old = _histosys(hs_code, th0[k, p], hs_up[b, j], hs_down[b, j])[0]
        additive[k, hs_sb[j]] += new - old


@njit(cache=True, error_model="numpy")
def assemble(second, diag, hess_c, hess):
    """The Hessian of each row, in one pass: second (R, P, P) holds the product U rho^T (see
    yields; single precision), hess (R, P, P) receives that product plus its transpose off
    the diagonal, with diag (R, P) plus the constraints' second derivatives hess_c (R, P) on
    the diagonal (in double precision)."""
    R, P = diag.shape
    for r in range(R):
        H = hess[r]
        X = second[r]
        for i in range(P):
            H[i, i] = diag[r, i] + hess_c[r, i]
            for j in range(i):
                s = np.float64(X[i, j]) + np.float64(X[j, i])
                H[i, j] = s
                H[j, i] = s


@njit(cache=True, error_model="numpy", fastmath={"reassoc"})
def _any_not_finite(row) -> bool:
    """Whether an entry of row is NaN or infinite: x * 0 is 0 for finite x, NaN otherwise,
    and a sum with a NaN in it is NaN in any order (reassociated, the sum vectorises)."""
    total = 0.0
    for j in range(row.size):
        total += row[j] * 0.0
    return total != 0.0


@njit(cache=True, error_model="numpy")
def scale_free(hess, g, free, hs, gs, scale):
    """The free block of each Hessian hess (R, P, P) with unit diagonal, identity elsewhere,
    written into hs; the gradient g (R, P) in the same scaling into gs and the scale into
    scale (see optimize._scaled), in one pass over the rows. Where any entry of the block is
    not finite, NaN and infinities become 0 and a zero diagonal entry 1 (in every row, as
    the numpy version does for the whole block)."""
    R, P = g.shape
    masked = np.empty(P)
    bad = False
    for r in range(R):
        H = hess[r]
        out = hs[r]
        for i in range(P):
            d = abs(H[i, i])
            if free[r, i] and d > 0.0 and math.isfinite(d):
                scale[r, i] = 1.0 / math.sqrt(d)
            else:
                scale[r, i] = 1.0
            masked[i] = scale[r, i] if free[r, i] else 0.0
            gs[r, i] = g[r, i] * scale[r, i]
        for i in range(P):
            mi = masked[i]
            row = out[i]
            for j in range(P):  # branch-free, so that it vectorises
                row[j] = H[i, j] * mi * masked[j]
            if not free[r, i]:
                row[i] = 1.0
            if not bad and _any_not_finite(row):
                bad = True
    if bad:
        for r in range(R):
            out = hs[r]
            for i in range(P):
                for j in range(P):
                    if not math.isfinite(out[i, j]):
                        out[i, j] = 0.0
                if out[i, i] == 0.0:
                    out[i, i] = 1.0
