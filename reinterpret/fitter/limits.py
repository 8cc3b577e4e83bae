"""Batched root finding for upper limits on the parameter of interest.

Each (point, curve) pair is one root: curve 0 is the observed CLs(mu), curves 1..5 the
expected CLs(mu) at -2..+2 sigma. The expected curves need only the Asimov fixed-POI fit, the
observed one also the fit to the data. A round evaluates every pending root in one batch of
fixed-POI fits, warm-started from that root's previous fit.
"""

from __future__ import annotations

import numpy as np

from reinterpret.fitter import asymptotics
from reinterpret.fitter.infer import q_statistic
from reinterpret.fitter.optimize import minimize

MAX_ROUNDS = 60
RELATIVE_TOLERANCE = 1e-6


def solve_limits(model, fits, options):
    B = model.size
    poi = model.poi_index
    level = options.level
    n_curves = 6
    point = np.repeat(np.arange(B), n_curves)
    curve = np.tile(np.arange(n_curves), B)
    lower_mu = np.maximum(model.lower[point, poi], 0.0)
    upper_mu = model.upper[point, poi]

    # Starting values from the Wald approximation sqrt(q_A(mu)) = mu / sigma.
    q_a = q_statistic(
        model, options.test_stat, options.mu_test, fits.asimov_fixed_mu.nll, fits.asimov_free
    )
    with np.errstate(divide="ignore"):
        sigma = options.mu_test / np.sqrt(np.maximum(q_a, 1e-12))
    guess_exp = asymptotics.expected_limit_guess(sigma, level)  # (B, 5)
    mu_hat = fits.free.theta[:, poi]
    guess = np.concatenate([(mu_hat + guess_exp[:, 2])[:, None], guess_exp], axis=1).ravel()
    x = np.clip(guess, lower_mu + 1e-9 * (upper_mu - lower_mu), upper_mu)

    theta_obs = np.repeat(fits.fixed_mu.theta, n_curves, axis=0)
    theta_asi = np.repeat(fits.asimov_fixed_mu.theta, n_curves, axis=0)
    lo = np.full(point.size, np.nan)
    hi = np.full(point.size, np.nan)
    f_lo = np.full(point.size, np.nan)
    f_hi = np.full(point.size, np.nan)
    root = np.full(point.size, np.nan)
    bracketed = np.zeros(point.size, dtype=bool)
    pending = np.arange(point.size)
    side = np.zeros(point.size, dtype=int)  # Illinois: which end was kept last time

    for _ in range(MAX_ROUNDS):
        if pending.size == 0:
            break
        f = _log_cls_minus_target(
            model,
            fits,
            options,
            point[pending],
            curve[pending],
            x[pending],
            theta_obs,
            theta_asi,
            pending,
        )
        above = f > 0  # CLs above the target: mu is still allowed, the limit lies higher
        lo[pending[above]] = x[pending[above]]
        f_lo[pending[above]] = f[above]
        hi[pending[~above]] = x[pending[~above]]
        f_hi[pending[~above]] = f[~above]
        has_both = np.isfinite(lo[pending]) & np.isfinite(hi[pending])
        width = np.abs(hi[pending] - lo[pending])
        done = has_both & (
            (width <= RELATIVE_TOLERANCE * np.maximum(np.abs(x[pending]), 1e-12))
            | (np.abs(f) < 1e-10)
        )
        root[pending[done]] = x[pending[done]]
        bracketed[pending[done]] = True
        # Rows that cannot be bracketed inside the POI bounds.
        stuck = (~np.isfinite(hi[pending]) & (x[pending] >= upper_mu[pending])) | (
            ~np.isfinite(lo[pending]) & (x[pending] <= lower_mu[pending] + 1e-12)
        )
        stuck &= ~done
        root[pending[stuck]] = x[pending[stuck]]
        keep = ~(done | stuck)
        nxt = np.empty(pending.size)
        # Not yet bracketed: step outwards geometrically.
        only_lo = np.isfinite(lo[pending]) & ~np.isfinite(hi[pending])
        only_hi = ~np.isfinite(lo[pending]) & np.isfinite(hi[pending])
        nxt[only_lo] = np.minimum(x[pending[only_lo]] * 1.6 + 1e-6, upper_mu[pending[only_lo]])
        nxt[only_hi] = np.maximum(x[pending[only_hi]] / 1.6, lower_mu[pending[only_hi]])
        # Bracketed: Illinois false position.
        b = has_both
        idx = pending[b]
        fl, fh = f_lo[idx].copy(), f_hi[idx].copy()
        # Halve the function value of the end that has been kept twice in a row.
        kept_lo = above[b] & (side[idx] == 1)
        kept_hi = ~above[b] & (side[idx] == -1)
        fh = np.where(kept_lo, 0.5 * fh, fh)
        fl = np.where(kept_hi, 0.5 * fl, fl)
        f_hi[idx] = fh
        f_lo[idx] = fl
        side[idx] = np.where(above[b], 1, -1)
        cand = lo[idx] - fl * (hi[idx] - lo[idx]) / (fh - fl)
        mid = 0.5 * (lo[idx] + hi[idx])
        ok = (
            np.isfinite(cand)
            & (cand > np.minimum(lo[idx], hi[idx]))
            & (cand < np.maximum(lo[idx], hi[idx]))
        )
        nxt[b] = np.where(ok, cand, mid)
        x[pending] = nxt
        pending = pending[keep]
    root[pending] = x[pending]
    return root.reshape(B, n_curves), bracketed.reshape(B, n_curves)


def _log_cls_minus_target(model, fits, options, pts, curves, mu, theta_obs, theta_asi, rows):
    """log CLs(mu) - log(level) for each pending root; updates the warm starts in place."""
    poi = model.poi_index
    obs_rows = curves == 0
    fixed = model.fixed[pts].copy()
    fixed[:, poi] = True
    t_asi = theta_asi[rows].copy()
    t_asi[:, poi] = mu
    t_obs = theta_obs[rows[obs_rows]].copy()
    t_obs[:, poi] = mu[obs_rows]
    all_rows = np.concatenate([pts, pts[obs_rows]])
    main = np.concatenate([fits.asimov_main[pts], model.observed[pts[obs_rows]]])
    aux = np.concatenate([fits.asimov_aux[pts], model.aux[pts[obs_rows]]])
    out = minimize(
        model,
        all_rows,
        main,
        aux,
        np.concatenate([t_asi, t_obs]),
        np.concatenate([fixed, fixed[obs_rows]]),
        options.fit,
    )
    n = pts.size
    theta_asi[rows] = out.theta[:n]
    theta_obs[rows[obs_rows]] = out.theta[n:]
    nll_asi = out.nll[:n]
    mu_hat_a = fits.asimov_free.theta[pts, poi]
    q_a = np.where(mu_hat_a > mu, 0.0, np.maximum(2.0 * (nll_asi - fits.asimov_free.nll[pts]), 0))
    sqrt_qa = np.sqrt(q_a)
    n_sigma = asymptotics.EXPECTED_SIGMAS[np.maximum(curves - 1, 0)]
    t = n_sigma.copy()
    mu_hat = fits.free.theta[pts[obs_rows], poi]
    q_obs = np.where(
        mu_hat > mu[obs_rows],
        0.0,
        np.maximum(2.0 * (out.nll[n:] - fits.free.nll[pts[obs_rows]]), 0.0),
    )
    t[obs_rows] = asymptotics.t_value(q_obs, q_a[obs_rows], options.test_stat)
    return asymptotics.log_cls_from_t(t, sqrt_qa)[2] - np.log(options.level)
