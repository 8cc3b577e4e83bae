"""Batched root finding for upper limits on the parameter of interest.

Each (point, curve) pair is one root: curve 0 is the observed CLs(mu), curves 1..5 the
expected CLs(mu) at -2..+2 sigma. A round evaluates every pending root with one fixed-POI fit
to the Asimov data (the observed root also one to the data), warm-started from that root's
previous fit, all in one batch.

The gradient of -log L along the POI at a fixed-POI fit is the derivative of the profile
likelihood (the other parameters sit at their optimum), so every evaluation gives a value and
a slope, and each root is solved by Newton's method on a function that is nearly linear in
mu: for an expected curve sqrt(q_A(mu)) minus the value at which its CLs is the level (known
in closed form for each band; as sqrt(q_A(0)) = 0, the next guess comes from the parabola
through 0 with the value and slope at the last evaluation), for the observed curve
log(level) - log CLs(mu). The five expected curves of a point are one function, sqrt(q_A),
with five targets: every Asimov fit of any of the point's roots is kept (with the Asimov
global fit's mu_hat and 1 / sigma there), and an expected curve's next guess is the root of
the cubic Hermite interpolant between the two evaluations that bracket its target, where two
do (its own parabola otherwise); it only guesses, a root is accepted from its own
evaluations as below. The fits at
mu_test that the CLs already needed are the first evaluation; each next fit starts from the
last one moved along the profile path (d theta / d mu = -H_ff^-1 H_f,mu from its Hessian).
The same Hessian gives the profile likelihood's curvature (H_mu,mu - H_mu,f H_ff^-1 H_f,mu),
so each evaluation also gives the residual's second derivative, and the Newton step is a
second-order one (the root of the residual's Taylor parabola) where that has a root. A
step that leaves the bracket known so far is replaced by a proportional (Wald) step
for an expected curve, else by bisection, or a geometric step outwards while only one side is
known. A root is accepted when its step is below TOLERANCE relative, or when the error of the
point stepped to, predicted from the third derivative seen between its last two evaluations
(the curvature for a first-order step), is below ACCURACY relative; and only from an
evaluation whose fits were also started from the signal-free optimum (where the hypothesis
test's own fits start), the lower minimum kept, and mirrored starts tried from it as the
hypothesis test's fits get them (starts.try_flips): a chain of warm starts can follow a
valley that is not the lowest one at the limit. Such a fit runs after the warm-started one,
with its minimum to beat: it stops once it is seen to end above that minimum or in it
(minimize's beat), so it costs the Newton steps that find its basin, not those that converge
in it.
Those fits are asked for in the round that is
likely to settle a root: one whose step is within NEAR or whose step's predicted error is
within NEAR_ERROR of its root. A root that an evaluation would settle without them gets them
afterwards, at that evaluation's mu, and is settled where they find no lower minimum (its
search goes on from the lower one where they do): a second warm-started evaluation only to
have both starts would cost more.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import log_ndtr, ndtri

from reinterpret.fitter import asymptotics, starts
from reinterpret.fitter.infer import poi_sigma, q_statistic
from reinterpret.fitter.optimize import minimize, profile_path, stopped_by_beat

MAX_ROUNDS = 60
TOLERANCE = 1e-5
# A Newton step of at most NEWTON_RANGE (relative) whose end point is predicted to be within
# ACCURACY (relative) of the root settles it; one within NEAR, or whose end point is predicted
# to be within NEAR_ERROR, is likely the last but one.
NEWTON_RANGE = 0.05
ACCURACY = 1e-5
NEAR = 0.02
NEAR_ERROR = 1e-3
# An expected curve's next guess from the interpolated sqrt(q_A) that agrees this closely
# (relative) with the one from its own last evaluation is likely to settle it.
AGREE = 1e-3
# Two fits of one root whose -log L differ by more than this ended in different minima.
BASIN_GAP = 1e-7
CURVES = 6
# Relative step of the central difference that gives each residual's second derivative from
# the quadratic models of the profile likelihoods.
CURVATURE_STEP = 1e-4
# Newton iterations for a root of the cubic interpolant of sqrt(q_A) (from the secant).
HERMITE_ITERATIONS = 8
LOG_SQRT_2PI = 0.5 * float(np.log(2.0 * np.pi))


def expected_targets(level: float) -> np.ndarray:
    """sqrt(q_A) at which the expected CLs (t = n) equals level, per band n (5,)."""
    n = asymptotics.EXPECTED_SIGMAS
    return -ndtri(level * asymptotics.survival(n)) - n


def _mills(x: np.ndarray) -> np.ndarray:
    """phi(x) / Q(x), the derivative of -log Q at x, computed in log space."""
    return np.exp(-0.5 * x * x - LOG_SQRT_2PI - log_ndtr(-x))


def _profile_q(nll, slope, nll_free, mu_hat, mu):
    """q(mu) = 2 (nll - nll_free) (0 where mu_hat > mu, clipped at 0) and dq/dmu."""
    q = np.where(mu_hat > mu, 0.0, np.maximum(2.0 * (nll - nll_free), 0.0))
    return q, np.where(q > 0.0, 2.0 * slope, 0.0)


class _Curves:
    """What every root needs besides its fits: its point, curve and target."""

    def __init__(self, model, fits, options):
        B = model.size
        self.poi = model.poi_index
        self.point = np.repeat(np.arange(B), CURVES)
        self.curve = np.tile(np.arange(CURVES), B)
        self.observed = self.curve == 0
        self.target = np.concatenate([[np.nan], expected_targets(options.level)])[self.curve]
        self.fits = fits
        self.options = options

    def residuals(self, roots, mu, asimov, data):
        """(r, dr/dmu, d2r/dmu2, fits converged, sqrt(q_A), its slope) of the given roots at
        mu; asimov: (nll, slope, converged, curvature) of each root's Asimov fit, data: the
        same of its fit to the data (only the observed roots' rows); curvature is that of the
        profile likelihood (NaN where unknown). r < 0 where mu is allowed (CLs above the
        level). d2r comes from the slopes of r at mu -+ h on the quadratic models of the two
        profile likelihoods (NaN where a curvature is unknown)."""
        r, dr, ok, s, ds = self._residuals(roots, mu, asimov[:3], data[:3])
        h = CURVATURE_STEP * np.maximum(np.abs(mu), 1e-9)
        side = []
        for sign in (-1.0, 1.0):
            d = sign * h
            dobs = d[self.observed[roots]]
            moved = [
                (nll + slope * dd + 0.5 * c * dd * dd, slope + c * dd, conv)
                for (nll, slope, conv, c), dd in ((asimov, d), (data, dobs))
            ]
            side.append(self._residuals(roots, mu + d, *moved)[1])
        d2r = (side[1] - side[0]) / (2.0 * h)
        return r, dr, d2r, ok, s, ds

    def _residuals(self, roots, mu, asimov, data):
        """residuals() without the second derivative (and without the curvatures)."""
        fits, poi = self.fits, self.poi
        pts = self.point[roots]
        obs = self.observed[roots]
        q_a, dq_a = _profile_q(
            asimov[0], asimov[1], fits.asimov_free.nll[pts], fits.asimov_free.theta[pts, poi], mu
        )
        s = np.sqrt(q_a)
        with np.errstate(divide="ignore", invalid="ignore"):
            ds = np.where(s > 0.0, dq_a / (2.0 * s), 0.0)
        r = s - self.target[roots]
        dr = ds.copy()
        ok = asimov[2].copy()
        node = np.where(asimov[2], s, np.nan), ds
        if obs.any():
            q, dq = _profile_q(
                data[0], data[1], fits.free.nll[pts[obs]], fits.free.theta[pts[obs], poi], mu[obs]
            )
            r[obs], dr[obs] = self._observed(q, dq, q_a[obs], dq_a[obs], s[obs], ds[obs])
            ok[obs] &= data[2]
        return r, dr, ok, *node

    def _observed(self, q, dq, q_a, dq_a, s, ds):
        """log(level) - log CLs and its derivative from q, q_A and their derivatives."""
        test_stat = self.options.test_stat
        t = asymptotics.t_value(q, q_a, test_stat)
        sqrt_q = np.sqrt(q)
        with np.errstate(divide="ignore", invalid="ignore"):
            dt = np.where(sqrt_q > 0.0, dq / (2.0 * sqrt_q), 0.0) - ds
            if test_stat == "qtilde":
                far = (dq - dq_a) / (2.0 * s) - (q - q_a) * ds / (2.0 * s * s)
                dt = np.where(sqrt_q <= s, dt, far)
            log_cls = asymptotics.log_cls_from_t(t, s)[2]
            d_log_cls = -_mills(t + s) * (dt + ds) + _mills(t) * dt
            if test_stat == "qtilde":
                # Far in the tail (and where q_A = 0: no sensitivity) CLs -> exp(-q / 2).
                tail = t > asymptotics.FAR_TAIL
                log_cls = np.where(tail, asymptotics.far_tail_log_cls(q, t, s), log_cls)
                d_log_cls = np.where(tail, -0.5 * dq, d_log_cls)
        return np.log(self.options.level) - log_cls, -d_log_cls


class _AsimovCurve:
    """Per point, the evaluations of sqrt(q_A(mu)) made so far: (mu, value, slope) of every
    converged Asimov fit of any of the point's roots, and (mu_hat_A, 0, 1 / sigma_A) from the
    Asimov global fit's Hessian. The five expected curves of a point are one function with
    five targets, so each evaluation informs the next guess of every curve: the root of the
    cubic Hermite interpolant between the two evaluations that bracket a curve's target."""

    def __init__(self, model, fits):
        B = model.size
        self.mu = np.full((B, 8), np.nan)
        self.value = np.full((B, 8), np.nan)
        self.slope = np.full((B, 8), np.nan)
        self.used = np.zeros(B, dtype=np.int64)
        poi = model.poi_index
        start = np.maximum(fits.asimov_free.theta[:, poi], model.lower[:, poi])
        self.add(np.arange(B), start, np.zeros(B), 1.0 / poi_sigma(model, fits.asimov_free))

    def add(self, points, mu, value, slope) -> None:
        """Record evaluations (points may repeat); non-finite ones and those without a
        positive slope are left out."""
        keep = np.isfinite(mu) & np.isfinite(value) & np.isfinite(slope) & (slope > 0.0)
        points, mu, value, slope = points[keep], mu[keep], value[keep], slope[keep]
        if points.size == 0:
            return
        order = np.argsort(points, kind="stable")
        points, mu, value, slope = points[order], mu[order], value[order], slope[order]
        first = np.searchsorted(points, points)  # index of each point's first new node
        column = self.used[points] + np.arange(points.size) - first
        need = int(column.max()) + 1
        width = self.mu.shape[1]
        if need > width:
            for name in ("mu", "value", "slope"):
                wider = np.full((self.mu.shape[0], max(need, 2 * width)), np.nan)
                wider[:, :width] = getattr(self, name)
                setattr(self, name, wider)
        self.mu[points, column] = mu
        self.value[points, column] = value
        self.slope[points, column] = slope
        np.maximum.at(self.used, points, column + 1)

    def forget(self, points) -> None:
        """Drop the evaluations of points whose fits found a lower minimum than before (the
        earlier ones may lie on a valley that is not the lowest)."""
        for name in ("mu", "value", "slope"):
            getattr(self, name)[points] = np.nan
        self.used[points] = 0

    def roots(self, points, target) -> np.ndarray:
        """Where each point's interpolated sqrt(q_A) equals its target (NaN where no two
        evaluations bracket the target, or where they do not increase with mu)."""
        mu, value, slope = self.mu[points], self.value[points], self.slope[points]
        t = target[:, None]
        below = np.where(value < t, mu, -np.inf)
        above = np.where(value >= t, mu, np.inf)
        i, j = np.argmax(below, axis=1), np.argmin(above, axis=1)
        k = np.arange(points.size)
        a, b = mu[k, i], mu[k, j]
        ok = np.isfinite(below[k, i]) & np.isfinite(above[k, j]) & (a < b)
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            return np.where(
                ok,
                _hermite_root(a, b, value[k, i], value[k, j], slope[k, i], slope[k, j], target),
                np.nan,
            )


def _hermite_root(a, b, ya, yb, da, db, target):
    """The point in [a, b] where the cubic with values ya, yb and slopes da, db at a, b
    equals target (ya < target <= yb): Newton's method from the secant, kept inside the
    interval. NaN where it does not reach the target (a cubic that is not monotone)."""
    h = b - a
    u = (target - ya) / (yb - ya)
    for _ in range(HERMITE_ITERATIONS):
        y, dy = _hermite(u, h, ya, yb, da, db)
        u = np.clip(u - np.where(dy > 0.0, (y - target) / dy, np.nan), 0.0, 1.0)
    close = np.abs(_hermite(u, h, ya, yb, da, db)[0] - target) <= 1e-12 * np.abs(target)
    return np.where(close, a + u * h, np.nan)


def _hermite(u, h, ya, yb, da, db):
    """The cubic Hermite interpolant on [a, a + h] at a + u h, and its derivative in u."""
    u2 = u * u
    u3 = u2 * u
    y = (
        (2 * u3 - 3 * u2 + 1) * ya
        + (u3 - 2 * u2 + u) * h * da
        + (3 * u2 - 2 * u3) * yb
        + (u3 - u2) * h * db
    )
    dy = 6 * (u2 - u) * (ya - yb) + (3 * u2 - 4 * u + 1) * h * da + (3 * u2 - 2 * u) * h * db
    return y, dy


def solve_limits(model, fits, options):
    """Upper limits (B, 6) and whether each was found (B, 6); see the module docstring."""
    curves = _Curves(model, fits, options)
    poi = curves.poi
    point, observed = curves.point, curves.observed
    n = point.size
    lower = np.maximum(model.lower[point, poi], 0.0)
    upper = model.upper[point, poi]
    # Each root's last fits (Asimov, data), the mu they were made at and how their optimum
    # moves with mu (the warm start of the next fit is predicted from it).
    fixed = model.fixed.copy()
    fixed[:, poi] = True
    a_path, a_curv = profile_path(fits.asimov_fixed_mu, fixed, poi)
    d_path, d_curv = profile_path(fits.fixed_mu, fixed, poi)
    warm = _Warm(
        np.repeat(fits.asimov_fixed_mu.theta, CURVES, axis=0),
        np.repeat(fits.fixed_mu.theta, CURVES, axis=0),
        np.full(n, float(options.mu_test)),
        np.repeat(a_path, CURVES, axis=0),
        np.repeat(d_path, CURVES, axis=0),
        np.repeat(fits.asimov_fixed_mu.nll, CURVES),
        np.repeat(fits.fixed_mu.nll, CURVES),
    )
    lo = np.full(n, np.nan)  # the largest mu seen allowed
    hi = np.full(n, np.nan)  # the smallest mu seen excluded
    root = np.full(n, np.nan)
    found = np.zeros(n, dtype=bool)

    # The first evaluation: the fits at mu_test that the CLs needed.
    every = np.arange(n)
    x = np.full(n, float(options.mu_test))
    a, f = fits.asimov_fixed_mu, fits.fixed_mu
    data_rows = point[observed]
    r, dr, d2r, ok, s, ds = curves.residuals(
        every,
        x,
        (a.nll[point], a.gradient[point, poi], a.converged[point], a_curv[point]),
        (f.nll[data_rows], f.gradient[data_rows, poi], f.converged[data_rows], d_curv[data_rows]),
    )
    asimov = _AsimovCurve(model, fits)
    asimov.add(np.arange(model.size), x[::CURVES], s[::CURVES], ds[::CURVES])
    # Where mu_test is outside the POI bounds, its evaluation only seeds the first guess.
    inside = (x >= lower) & (x <= upper)
    # Where the first Newton step is not usable: the Wald guess (sqrt(q_A) = mu / sigma,
    # sigma from q_A(mu_test)), above mu_hat for the observed curve.
    seed = _wald_guess(model, fits, options, curves)
    # Whether a root's fits are also started from the signal-free optimum (the lower of the
    # two minima kept): from the round that would accept it on, so that a warm start that
    # followed a valley which is no longer the lowest one cannot settle the root.
    both = np.zeros(n, dtype=bool)
    # Where each root was evaluated last, and the slope and curvature of its residual there.
    x_prev = np.full(n, np.nan)
    dr_prev = np.full(n, np.nan)
    d2r_prev = np.full(n, np.nan)
    pending = every
    for _ in range(MAX_ROUNDS + 1):
        # The expected curves' next guesses from the point's interpolated sqrt(q_A).
        shared = np.full(pending.size, np.nan)
        expected = ~observed[pending]
        shared[expected] = asimov.roots(point[pending[expected]], curves.target[pending[expected]])
        nxt, settled, check, unchecked = _step(
            curves,
            pending,
            x[pending],
            (r, dr, d2r, ok),
            (lo, hi, lower, upper, x_prev, dr_prev, d2r_prev),
            inside,
            (seed[pending], shared),
            both[pending],
        )
        seed = np.full(n, np.nan)
        done, value, success = settled
        root[pending[done]] = value
        found[pending[done]] = success
        pending = pending[~done]
        # Roots this evaluation settles but for its fits from the signal-free optimum: those
        # fits now, at the same mu; settled where they find no lower minimum.
        late, late_value, late_ok = unchecked
        if late.any():
            ids = pending[late]
            deeper = _check(model, fits, options, curves, ids, x, warm)
            root[ids[~deeper]] = late_value[late][~deeper]
            found[ids[~deeper]] = late_ok[late][~deeper]
            _forget(ids[deeper], hi, x_prev, asimov, point)
            keep = ~late
            keep[np.flatnonzero(late)[deeper]] = True
            pending, nxt, check = pending[keep], nxt[keep], check[keep]
        x[pending] = nxt
        both[pending] |= check
        inside = np.ones(pending.size, dtype=bool)
        if pending.size == 0:
            break
        r, dr, d2r, ok, s, ds, deeper = _evaluate(
            model, fits, options, curves, pending, x, warm, both[pending]
        )
        _forget(pending[deeper], hi, x_prev, asimov, point)
        asimov.add(point[pending], x[pending], s, ds)
    root[pending] = x[pending]
    return root.reshape(-1, CURVES), found.reshape(-1, CURVES)


def _forget(roots, hi, x_prev, asimov, point) -> None:
    """After fits from the signal-free optimum found a lower minimum than the warm-started
    ones of these roots: the profile likelihood is lower than the evaluations so far said, so
    mu they found excluded may not be (those found allowed stay allowed), and the points'
    sqrt(q_A) evaluations may lie on the other valley."""
    hi[roots] = np.nan
    x_prev[roots] = np.nan
    asimov.forget(np.unique(point[roots]))


def _wald_guess(model, fits, options, curves) -> np.ndarray:
    """A first guess of every root from sqrt(q_A(mu)) = mu / sigma."""
    poi = curves.poi
    q_a = q_statistic(
        model, options.test_stat, options.mu_test, fits.asimov_fixed_mu.nll, fits.asimov_free
    )
    with np.errstate(divide="ignore"):
        sigma = options.mu_test / np.sqrt(np.maximum(q_a, 1e-12))
    expected = asymptotics.expected_limit_guess(sigma, options.level)  # (B, 5)
    mu_hat = np.maximum(fits.free.theta[:, poi], 0.0)
    return np.concatenate([(mu_hat + expected[:, 2])[:, None], expected], axis=1).ravel()


def _step(curves, roots, x, residuals, bounds, inside, guesses, checked):
    """Update the brackets of roots with their residuals (r, dr/dmu, d2r/dmu2, fits
    converged) at x; returns the next x of every root not settled, (done mask, root value,
    found) for all, which of those not settled are to be fitted from both starts, and (mask,
    root value, found) of those not settled that this evaluation would settle were its fits
    also started from the signal-free optimum.
    guesses: (seed, a guess to prefer to the fallback steps where it lies inside the
    bracket; shared, the root of the point's interpolated sqrt(q_A) for an expected curve,
    preferred to the root's own model; NaN: none); checked: whose residuals came from both
    starts (only those can be accepted)."""
    r, dr, d2r, ok = residuals
    seed, shared = guesses
    lo, hi, lower, upper, x_prev, dr_prev, d2r_prev = bounds
    finite = np.isfinite(r)
    allowed = finite & (r < 0.0) & inside
    # A residual that cannot be computed counts as excluded, as CLs far below any level.
    excluded = ~(finite & (r < 0.0)) & inside
    lo[roots] = np.where(allowed, np.fmax(lo[roots], x), lo[roots])
    hi[roots] = np.where(excluded, np.fmin(hi[roots], x), hi[roots])
    b_lo, b_hi = lo[roots], hi[roots]
    low, high = lower[roots], upper[roots]
    with np.errstate(divide="ignore", invalid="ignore"):
        newton = np.where(finite & (dr > 0.0), x - r / dr, np.nan)
        # The second-order step: the root of r + r' d + r'' d^2 / 2 nearest to x.
        disc = dr * dr - 2.0 * r * d2r
        second = np.isfinite(newton) & np.isfinite(d2r) & (disc >= 0.0)
        newton = np.where(second, x - 2.0 * r / (dr + np.sqrt(disc)), newton)
    # Inside what is known: between the bracket's ends (open) and the POI bounds (closed).
    floor = np.where(np.isfinite(b_lo), b_lo, -np.inf)
    ceiling = np.where(np.isfinite(b_hi), b_hi, np.inf)
    scale = TOLERANCE * np.maximum(np.abs(x), 1e-12)
    delta = np.abs(newton - x)
    # The error of the point a Newton step goes to is about r'' delta^2 / (2 r'), r'' estimated
    # from this root's previous slope. That of a second-order step is about r''' delta^3 /
    # (6 r'), r''' estimated from its previous r'', plus what an error e of r'' costs, e
    # delta^2 / (2 r'), e estimated by how far the mean of the two r'' is from the slopes'
    # difference quotient (the Hessians of the fits can be one Newton step from the optimum).
    with np.errstate(divide="ignore", invalid="ignore"):
        span = x - x_prev[roots]
        third = (d2r - d2r_prev[roots]) / span
        curvature = (dr - dr_prev[roots]) / span
        off = np.abs(curvature - 0.5 * (d2r + d2r_prev[roots]))
        predicted = np.where(
            second & np.isfinite(third),
            (np.abs(third) * delta / 3.0 + off) * delta**2 / (2.0 * dr),
            np.abs(curvature) * delta**2 / (2.0 * dr),
        )
    quadratic = (
        np.isfinite(predicted)
        & (delta <= NEWTON_RANGE * np.abs(x))
        & (predicted <= ACCURACY * np.abs(x))
    )
    x_prev[roots], dr_prev[roots], d2r_prev[roots] = x, dr, d2r
    # Settled: a Newton step below the tolerance or whose end point is that accurate (inside
    # the bracket, give or take the tolerance, and the bounds), or a bracket narrower than it.
    step_ok = (
        np.isfinite(newton)
        & ((delta <= scale) | quadratic)
        & (newton > floor - scale)
        & (newton < ceiling + scale)
        & (newton >= low)
        & (newton <= high)
    )
    narrow = np.isfinite(b_lo) & np.isfinite(b_hi) & (np.abs(b_hi - b_lo) <= scale)
    converged = (step_ok | narrow) & inside
    settled_at = np.where(
        step_ok, np.clip(newton, np.fmax(floor, low), np.fmin(ceiling, high)), 0.5 * (b_lo + b_hi)
    )
    # Allowed at the upper bound, or excluded at the lower one: nothing to find inside.
    at_top = allowed & (x >= high)
    at_bottom = excluded & (x <= low)
    # Fitted from both starts from the evaluation that is likely to settle the root on.
    check = ~checked & (
        converged | (delta <= NEAR * np.abs(x)) | (predicted <= NEAR_ERROR * np.abs(x))
    )
    # This evaluation would settle these (its fits converged) if they had also been started
    # from the signal-free optimum: they are, afterwards (solve_limits). Where they did not
    # converge, the next evaluation (from both starts) may.
    unchecked = converged & ok & ~checked & ~at_top & ~at_bottom
    converged &= checked
    done = converged | at_top | at_bottom
    value = np.where(converged, settled_at, np.where(at_top, high, low))
    success = converged & ok

    expected = ~curves.observed[roots]
    target = curves.target[roots]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        s = r + target
        # For an expected curve sqrt(q_A) is 0 at mu = 0 as well: the parabola a mu + b mu^2
        # through 0 with the value and slope at x is a better model than Newton's line.
        b = (dr * x - s) / (x * x)
        a = 2.0 * s / x - dr
        root_disc = np.sqrt(a * a + 4.0 * b * target)
        parabola = 2.0 * target / (a + root_disc)
        model_step = np.where(
            expected & (s > 0.0) & (dr > 0.0) & np.isfinite(parabola) & (parabola > 0.0),
            parabola,
            newton,
        )
        # Two models of the root that agree this closely: the next evaluation is likely to
        # settle it, so it is fitted from both starts.
        check |= ~checked & ~done & (np.abs(shared - model_step) <= AGREE * np.abs(x))
        model_step = np.where(np.isfinite(shared), shared, model_step)
        wald = np.where(expected & (s > 0.0), x * target / s, np.nan)
    # Never exactly the lower bound (mu = 0: q_A and its slope vanish there); a step below
    # it is not used (the curve is far from linear there).
    guess = np.where(model_step > low, np.minimum(model_step, high), np.nan)
    usable = np.isfinite(model_step) & (model_step > floor) & (model_step < ceiling)
    # Not usable: a proportional step for an expected curve (q_A ~ mu^2), then bisection or
    # a geometric step outwards.
    wald = np.where(np.isfinite(seed), seed, wald)
    wald = np.clip(wald, low + 1e-9 * (high - low), high)
    wald_ok = np.isfinite(wald) & (wald > floor) & (wald < ceiling)
    both = np.isfinite(b_lo) & np.isfinite(b_hi)
    fallback = np.where(
        both,
        0.5 * (b_lo + b_hi),
        np.where(
            np.isfinite(b_lo),
            np.minimum(np.fmax(b_lo, x) * 1.6 + 1e-6, high),
            np.maximum(np.fmin(b_hi, x) / 1.6, low),
        ),
    )
    fallback = np.where(wald_ok, wald, fallback)
    nxt = np.where(usable & (guess > floor) & (guess < ceiling), guess, fallback)
    # A first evaluation outside the bounds leaves its brackets unset: start from the guess.
    nxt = np.where(inside | np.isfinite(nxt), nxt, np.clip(x, low, high))
    rest = ~done
    return (
        nxt[rest],
        (done, value[done], success[done]),
        check[rest],
        (unchecked[rest], settled_at[rest], ok[rest]),
    )


@dataclass
class _Warm:
    """Per root: the last Asimov and data fits (R, P), the mu they were made at (R,),
    their profile paths d theta / d mu (R, P) and their -log L (R,)."""

    asimov: np.ndarray
    data: np.ndarray
    mu: np.ndarray
    asimov_path: np.ndarray
    data_path: np.ndarray
    asimov_nll: np.ndarray
    data_nll: np.ndarray
    # Where each round's fits keep their Hessians (for the profile paths), reused from round
    # to round: a fresh array of that size is mapped afresh, and its first writes page-fault.
    buffer: np.ndarray | None = None

    def hessian_buffer(self, rows: int) -> np.ndarray:
        """An uninitialised (rows, P, P) array, reused across rounds."""
        P = self.asimov.shape[1]
        if self.buffer is None or self.buffer.shape[0] < rows:
            self.buffer = np.empty((rows, P, P))
        return self.buffer[:rows]

    def starts(self, roots, obs, mu):
        """Warm starts at mu (pending roots): the last fits moved along their paths (the fit
        puts them inside the bounds)."""
        step = (mu - self.mu[roots])[:, None]
        asimov = self.asimov[roots] + self.asimov_path[roots] * step
        data = self.data[roots[obs]] + self.data_path[roots[obs]] * step[obs]
        return np.concatenate([asimov, data])


def _fit_rows(model, fits, pts, obs):
    """The fixed-POI fits of roots of points pts (obs: the observed roots): first one to the
    Asimov data per root, then one to the data per observed root. Returns (which: the root of
    each fit, model rows, main data, auxiliary data, fixed parameters with the POI)."""
    which = np.concatenate([np.arange(pts.size), np.flatnonzero(obs)])
    asimov = np.concatenate([np.ones(pts.size, bool), np.zeros(int(obs.sum()), bool)])
    rows = pts[which]
    fixed = model.fixed[rows].copy()
    fixed[:, model.poi_index] = True
    main = np.where(asimov[:, None], fits.asimov_main[rows], model.observed[rows])
    aux = np.where(asimov[:, None], fits.asimov_aux[rows], model.aux[rows])
    return which, rows, main, aux, fixed


def _signal_free_start(model, fits, rows, mu) -> np.ndarray:
    """Starts at the signal-free optimum of the given model rows, the POI at mu."""
    start = fits.background.theta[rows].copy()
    start[:, model.poi_index] = mu
    return start


def _from_signal_free(model, fits, options, rows, main, aux, fixed, mu, first, keep_hessian):
    """Fixed-POI fits at mu from the second start, the one the hypothesis test's own fits at
    mu start from: the signal-free optimum (so that CLs computed afresh at a limit is the
    level). first: (-log L, point) of each row's warm-started fit. Such a fit matters only
    where it ends below that one: it stops once it is seen to end above it, or in it
    (minimize's beat). From the lower of the two minima, mirrored starts (starts.try_flips);
    one that ends lower stands for the row's fit. Returns the fits (a row that did not end
    lower holds the warm fit's point and value), where they ended lower (lower) and where
    that is a different minimum (apart: not the same one reached twice; they agree to
    ~1e-9)."""
    nll = first[0]
    second = minimize(
        model, rows, main, aux, _signal_free_start(model, fits, rows, mu), fixed, options.fit,
        keep_hessian=keep_hessian, near_hessian=True, beat=first,
    )  # fmt: skip
    lower = np.isfinite(second.nll) & ~(second.nll >= nll) & ~stopped_by_beat(second)
    # From the lower of the two minima, mirrored starts where the likelihood can fold, as the
    # hypothesis test's own fits get them (starts.try_flips). The rows that did not end lower
    # take the warm fit's point and value for that (no caller reads them otherwise).
    keep = np.flatnonzero(~lower)
    second.theta[keep], second.nll[keep] = first[1][keep], nll[keep]
    reached = second.nll.copy()
    starts.try_flips(model, rows, main, aux, fixed, options.fit, second)
    with np.errstate(invalid="ignore"):
        lower |= second.nll < reached - starts.IMPROVEMENT
    apart = ~(np.where(lower, second.nll, nll) >= nll - BASIN_GAP)
    return second, lower, apart


def _check(model, fits, options, curves, roots, x, warm):
    """The fits of the roots' last evaluation (at x, warm-started only) from the signal-free
    optimum too (_from_signal_free). Returns per root whether one of them found a different,
    lower minimum (deeper); that fit becomes the root's last one (its warm start)."""
    pts = curves.point[roots]
    obs = curves.observed[roots]
    which, rows, main, aux, fixed = _fit_rows(model, fits, pts, obs)
    k = pts.size
    first = (
        np.concatenate([warm.asimov_nll[roots], warm.data_nll[roots[obs]]]),
        np.concatenate([warm.asimov[roots], warm.data[roots[obs]]]),
    )
    second, _, apart = _from_signal_free(
        model, fits, options, rows, main, aux, fixed, x[roots][which], first, keep_hessian=False
    )
    deeper = np.zeros(roots.size, dtype=bool)
    a = np.flatnonzero(apart)
    if a.size == 0:
        return deeper
    deeper[which[a]] = True
    moved = second.take(a)
    moved.hessian = model.evaluate(moved.theta, rows[a], main[a], aux[a]).hess
    path, _ = profile_path(moved, fixed[a], curves.poi)
    for part, theta, nll, paths in (
        (a < k, warm.asimov, warm.asimov_nll, warm.asimov_path),
        (a >= k, warm.data, warm.data_nll, warm.data_path),
    ):
        r = roots[which[a[part]]]
        theta[r], nll[r], paths[r] = moved.theta[part], moved.nll[part], path[part]
    return deeper


def _evaluate(model, fits, options, curves, roots, x, warm, both):
    """Fixed-POI fits of the pending roots at x from their warm starts (moved along their
    profile paths; updated in place) and, where `both`, also from the signal-free optimum,
    the lower minimum kept; their residuals."""
    poi = curves.poi
    pts = curves.point[roots]
    obs = curves.observed[roots]
    mu = x[roots]
    which, rows, main, aux, fixed = _fit_rows(model, fits, pts, obs)
    start = warm.starts(roots, obs, mu)
    start[:, poi] = mu[which]

    out = minimize(
        model, rows, main, aux, start, fixed, options.fit, keep_hessian=True,
        hessian_out=warm.hessian_buffer(which.size), near_hessian=True,
    )  # fmt: skip
    extra = np.flatnonzero(both[which])
    # A warm start moved along a profile path can land where -log L is not finite (a yield
    # below zero, far from the last fit): those fits start again from the signal-free
    # optimum (the roots fitted from both starts get that fit below).
    failed = np.setdiff1d(np.flatnonzero(~np.isfinite(out.nll)), extra)
    if failed.size:
        redo = minimize(
            model, rows[failed], main[failed], aux[failed],
            _signal_free_start(model, fits, rows[failed], mu[which[failed]]), fixed[failed],
            options.fit, keep_hessian=True, near_hessian=True,
        )  # fmt: skip
        out.replace_rows(failed, redo, np.arange(failed.size))
    deeper = np.zeros(roots.size, dtype=bool)
    if extra.size:
        second, lower, apart = _from_signal_free(
            model, fits, options, rows[extra], main[extra], aux[extra], fixed[extra],
            mu[which[extra]], (out.nll[extra], out.theta[extra]), keep_hessian=True,
        )  # fmt: skip
        out.replace_rows(extra[lower], second, np.flatnonzero(lower))
        deeper[which[extra[apart]]] = True
    path, curvature = profile_path(out, fixed, poi)
    k = pts.size
    warm.asimov[roots] = out.theta[:k]
    warm.data[roots[obs]] = out.theta[k:]
    warm.asimov_path[roots] = path[:k]
    warm.data_path[roots[obs]] = path[k:]
    warm.asimov_nll[roots] = out.nll[:k]
    warm.data_nll[roots[obs]] = out.nll[k:]
    warm.mu[roots] = mu
    slope = out.gradient[:, poi]
    return (
        *curves.residuals(
            roots,
            mu,
            (out.nll[:k], slope[:k], out.converged[:k], curvature[:k]),
            (out.nll[k:], slope[k:], out.converged[k:], curvature[k:]),
        ),
        deeper,
    )
