"""Batched bound-constrained Newton minimisation of the model's -log L.

Every row is an independent fit; rows converge at their own pace and finished rows leave the
batch so that stragglers do not hold the rest back (nor make them pay for extra iterations).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.linalg import eigh, lapack

from reinterpret.fitter import kernel
from reinterpret.fitter.model import ModelBatch

# A code0 parameter this close to its kink at 0 is taken to sit on it (see _settle_kinks).
KINK_WIDTH = 1e-6
# The Newton step works through the rows' Hessians in blocks of about this many bytes.
BLOCK_BYTES = 1 << 20
# Batches of rows are fitted in blocks whose Hessians take about this many bytes: every
# Newton iteration makes several passes over them, which then stay near the cache (staus,
# 120 parameters: a limit search over the whole patchset at once took 29 ms per point,
# 24 in blocks of 4 MB; 1 and 16 MB were no better).
FIT_BLOCK_BYTES = 4 << 20
MIN_FIT_BLOCK = 8
# A row whose Newton decrement is below this takes its full step and is checked at the new
# point by value and gradient alone: the decrement there is measured with the Hessian just
# factorised (the decrement of a chord step), and where it is below the tolerance the fit has
# converged without a new Hessian (Newton's quadratic convergence makes that the usual last
# step). The point's own Hessian, where one is kept, is then evaluated apart (or, for
# predictors, the last one stands in).
CHORD_DECREMENT = 1e-4
# At most this many chord steps (Newton steps with that Hessian) follow where the decrement
# measured so is below CHORD_STEP_BELOW but not yet below the tolerance.
CHORD_STEPS = 2
CHORD_STEP_BELOW = 1e-6
# An eigenvalue of the Jacobi-scaled free Hessian (unit diagonal) below minus this is a
# negative curvature the Newton step follows (see _newton_step).
NEGATIVE_CURVATURE = 1e-6
# ... where the step of the positive stand-in predicts less decrease than this (in fits
# with minimize(..., escape=True)); in the other fits, where it predicts less than the
# tolerance: a point the decrement would call converged is no minimum while the Hessian has
# negative curvature there (a saddle, or the ridge between two basins).
CRAWL = 1e-2


# A fit given another fit's minimum to beat stops once it is seen that it cannot: at a
# positive-definite Hessian, with a Newton decrement below LOST_DECREMENT, where -log L minus
# LOST_FACTOR times the decrement lies above the value to beat by more than LOST_MARGIN (its
# own minimum lies higher), or where the minimum to beat lies within SAME_RADIUS of the point
# in the Hessian's norm (the one it is heading for: both lie where -log L is convex).
LOST_DECREMENT = 0.1
LOST_FACTOR = 4.0
LOST_MARGIN = 1e-3
SAME_RADIUS = 0.5
LOST_MESSAGE = "stopped: its minimum lies above the one it was to beat"
SAME_MESSAGE = "stopped: it is heading for the minimum it was to beat"


@dataclass(frozen=True)
class FitOptions:
    max_iterations: int = 200
    # Stop when the Newton decrement (predicted decrease of -log L) falls below this.
    tolerance: float = 1e-9
    max_halvings: int = 40


@dataclass
class FitOutcome:
    """Per-row results: theta (R, P), nll (R,), converged (R,), iterations (R,),
    projected gradient norm (R,), message per row; spread (R,) is how far above the kept
    minimum the highest other converged start ended, in -log L (0 for a single start; see
    starts.py); gradient (R, P) is that of -log L at theta (NaN where not computed): along a
    fixed parameter it is the derivative of the profile likelihood in that parameter."""

    theta: np.ndarray
    nll: np.ndarray
    converged: np.ndarray
    iterations: np.ndarray
    gradient_norm: np.ndarray
    messages: list[str]
    hessian: np.ndarray | None = None
    spread: np.ndarray | None = None
    gradient: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.spread is None:
            self.spread = np.zeros(self.nll.shape)
        if self.gradient is None:
            self.gradient = np.full(self.theta.shape, np.nan)

    def replace_rows(self, rows: np.ndarray, other: FitOutcome, which: np.ndarray) -> None:
        """Rows `rows` of this outcome become rows `which` of other (in place; spread kept)."""
        self.theta[rows] = other.theta[which]
        self.nll[rows] = other.nll[which]
        self.converged[rows] = other.converged[which]
        self.iterations[rows] = other.iterations[which]
        self.gradient_norm[rows] = other.gradient_norm[which]
        self.gradient[rows] = other.gradient[which]
        for r, k in zip(np.atleast_1d(rows), np.atleast_1d(which), strict=True):
            self.messages[r] = other.messages[k]
        if self.hessian is not None and other.hessian is not None:
            self.hessian[rows] = other.hessian[which]

    @staticmethod
    def concat(parts: list[FitOutcome]) -> FitOutcome:
        """The rows of several outcomes, one after the other."""
        hessians = [p.hessian for p in parts]
        return FitOutcome(
            np.concatenate([p.theta for p in parts]),
            np.concatenate([p.nll for p in parts]),
            np.concatenate([p.converged for p in parts]),
            np.concatenate([p.iterations for p in parts]),
            np.concatenate([p.gradient_norm for p in parts]),
            [m for p in parts for m in p.messages],
            None if any(h is None for h in hessians) else np.concatenate(hessians),
            np.concatenate([p.spread for p in parts]),
            np.concatenate([p.gradient for p in parts]),
        )

    def take(self, index) -> FitOutcome:
        """The rows selected by index (an integer array or a slice), as a new outcome."""
        messages = (
            self.messages[index]
            if isinstance(index, slice)
            else [self.messages[i] for i in np.asarray(index)]
        )
        return FitOutcome(
            self.theta[index],
            self.nll[index],
            self.converged[index],
            self.iterations[index],
            self.gradient_norm[index],
            messages,
            None if self.hessian is None else self.hessian[index],
            self.spread[index],
            self.gradient[index],
        )


def minimize(
    model: ModelBatch,
    rows: np.ndarray,
    main: np.ndarray,
    aux: np.ndarray,
    init: np.ndarray,
    fixed: np.ndarray,
    options: FitOptions | None = None,
    keep_hessian: bool = False,
    settle_kinks: bool = True,
    hessian_out: np.ndarray | None = None,
    near_hessian: bool | np.ndarray = False,
    escape: bool = False,
    beat: tuple[np.ndarray, np.ndarray] | None = None,
) -> FitOutcome:
    """Minimise -log L for each row; rows index models of the batch (R,).

    init (R, P) is clipped into the bounds; parameters with fixed (R, P) stay at their init.
    With settle_kinks, see _settle_kinks. With keep_hessian, the Hessian at each result is
    kept (written into hessian_out (R, P, P) when given). Where near_hessian is True (for
    all rows, or per row), a row that converged on a chord check (CHORD_DECREMENT) keeps the
    Hessian of its last Newton point instead, one step before the result: enough for a
    predictor such as a profile path, and no new evaluation. With escape, a row that crawls
    where the Hessian has negative curvature steps along it (_newton_step): for fits from
    starts whose only purpose is to find a lower minimum elsewhere (starts.try_flips); the
    other fits keep to the valley they start in, and step along negative curvature only
    where the decrement would otherwise call a saddle converged. With beat ((R,), (R, P)),
    the -log L and the point of the minimum each row is fitted to go below (a fit from
    another start, say), a row stops unconverged once it is seen that it cannot
    (_cannot_beat): its own minimum lies above that one (LOST_MESSAGE), or is that one
    (SAME_MESSAGE); stopped_by_beat tells those rows. Many rows are
    fitted in blocks (FIT_BLOCK_BYTES), their Hessians written into one array, not
    concatenated afterwards.
    """
    options = options or FitOptions()
    rows = np.asarray(rows, dtype=int)
    R, P = init.shape
    hessians = None
    if keep_hessian:
        hessians = np.empty((R, P, P)) if hessian_out is None else hessian_out
    near_hessian = np.broadcast_to(near_hessian, (R,))
    block = max(MIN_FIT_BLOCK, FIT_BLOCK_BYTES // (8 * P * P))
    if rows.size > block:
        parts = []
        for t in _row_blocks(R, block):
            out = None if hessians is None else hessians[t]
            part = minimize(
                model, rows[t], main[t], aux[t], init[t], fixed[t], options, keep_hessian,
                settle_kinks, out, near_hessian[t], escape,
                None if beat is None else (beat[0][t], beat[1][t]),
            )  # fmt: skip
            part.hessian = None  # a view of hessians
            parts.append(part)
        outcome = FitOutcome.concat(parts)
        outcome.hessian = hessians
        return outcome
    lower, upper = model.lower[rows], model.upper[rows]
    theta = np.where(fixed, init, np.clip(init, lower, upper))
    out_nll = np.full(R, np.nan)
    out_grad = np.full(R, np.nan)
    iterations = np.zeros(R, dtype=int)
    converged = np.zeros(R, dtype=bool)
    messages = ["iteration limit reached"] * R
    gradients = np.full((R, P), np.nan)
    active = np.arange(R)
    # The evaluation at the current point of every active row. A full Newton step is tried
    # with a full evaluation (value, gradient and Hessian at once), which the next iteration
    # reuses; only rows where that step fails the sufficient-decrease test backtrack.
    ev = model.evaluate(theta, rows, main, aux)
    stalled = np.zeros(R, dtype=int)
    # Rows that converged on a chord check whose own Hessian is still to be evaluated.
    late: list[int] = []
    for it in range(options.max_iterations):
        if active.size == 0:
            break
        th = theta[active]
        lo, hi, fx = lower[active], upper[active], fixed[active]
        free = free_parameters(th, ev.grad, lo, hi, fx)
        g = np.where(free, ev.grad, 0.0)
        step, decrement, chord, positive = _newton_step(
            ev.hess, ev.fisher, g, free, CHORD_DECREMENT, CRAWL if escape else options.tolerance
        )
        bad = ~np.isfinite(ev.nll) | ~np.isfinite(decrement)
        # A kink (code0 interpolation at alpha = 0) can leave a Newton decrement that never
        # vanishes while no step lowers -log L any more: that point is taken as the minimum.
        done = ((decrement < options.tolerance) | (stalled[active] >= 2)) & ~bad
        lost = same = np.zeros_like(done)
        if beat is not None:
            lost, same = _cannot_beat(
                ev, th, fx, model.kinks, decrement, positive, beat[0][active], beat[1][active]
            )
            lost &= ~done & ~bad
            same &= ~done & ~bad
        finished = done | bad | lost | same
        idx = active[finished]
        out_nll[idx] = ev.nll[finished]
        out_grad[idx] = np.sqrt((g[finished] ** 2).sum(axis=1))
        converged[idx] = done[finished]
        iterations[idx] = it
        for i, is_bad, is_lost, is_same in zip(
            idx, bad[finished], lost[finished], same[finished], strict=True
        ):
            messages[i] = (
                "likelihood not finite"
                if is_bad
                else LOST_MESSAGE
                if is_lost
                else SAME_MESSAGE
                if is_same
                else "converged"
            )
        gradients[idx] = ev.grad[finished]
        if keep_hessian:
            # Row by row: a fancy-indexed copy would first gather them into a temporary.
            for i, j in zip(idx, np.flatnonzero(finished), strict=True):
                hessians[i] = ev.hess[j]
        keep = ~finished
        active = active[keep]
        if active.size == 0:
            break
        th, step, g, f0 = th[keep], step[keep], g[keep], ev.nll[keep]
        lo, hi = lo[keep], hi[keep]
        cand = np.clip(th + step, lo, hi)
        c = chord.rows[keep[chord.rows]]
        if c.size:
            at = np.cumsum(keep) - 1  # positions among the kept rows
            k = at[c]
            ok, point, nll, grad, g1 = _chord_check(
                model, rows, main, aux, fixed, active[k], cand[k], th[k], g[k], f0[k], chord, c,
                options,
            )  # fmt: skip
            if ok.any():
                done_rows = at[c[ok]]
                idx = active[done_rows]
                theta[idx] = point[ok]
                out_nll[idx] = nll[ok]
                out_grad[idx] = np.sqrt((g1[ok] ** 2).sum(axis=1))
                gradients[idx] = grad[ok]
                converged[idx] = True
                iterations[idx] = it + 1
                for i in idx:
                    messages[i] = "converged"
                if keep_hessian:
                    for i, j in zip(idx, c[ok], strict=True):
                        if near_hessian[i]:
                            hessians[i] = ev.hess[j]
                        else:
                            late.append(i)
                rest = np.ones(active.size, dtype=bool)
                rest[done_rows] = False
                active = active[rest]
                if active.size == 0:
                    break
                th, step, g, f0 = th[rest], step[rest], g[rest], f0[rest]
                lo, hi, cand = lo[rest], hi[rest], cand[rest]
        r, m, a = rows[active], main[active], aux[active]
        trial = model.evaluate(cand, r, m, a)
        ok = _sufficient(trial.nll, f0, cand - th, g)
        if not ok.all():
            back = np.flatnonzero(~ok)
            cand[back] = _line_search(
                model,
                r[back],
                m[back],
                a[back],
                th[back],
                step[back],
                g[back],
                f0[back],
                lo[back],
                hi[back],
                options.max_halvings,
                first=0.5,
            )
            redo = model.evaluate(cand[back], r[back], m[back], a[back])
            trial.set_rows(back, redo)
        change = f0 - trial.nll
        tiny = (change <= 1e-12 * np.maximum(1.0, np.abs(f0))) & (
            np.abs(cand - th).max(axis=1) <= 1e-6
        )
        stalled[active] = np.where(tiny, stalled[active] + 1, 0)
        theta[active] = cand
        ev = trial
        iterations[active] = it + 1
    if active.size:
        out_nll[active] = ev.nll
        out_grad[active] = np.sqrt(((ev.grad * ~fixed[active]) ** 2).sum(axis=1))
        gradients[active] = ev.grad
        if keep_hessian:
            hessians[active] = ev.hess
    if late:
        k = np.array(late)
        hessians[k] = model.evaluate(theta[k], rows[k], main[k], aux[k]).hess
    outcome = FitOutcome(
        theta, out_nll, converged, iterations, out_grad, messages, hessians, gradient=gradients
    )
    if settle_kinks and model.kinks.any():
        _settle_kinks(model, rows, main, aux, fixed, options, outcome)
    return outcome


def _cannot_beat(ev, theta, fixed, kinks, decrement, positive, nll, point):
    """Rows that cannot end below the minimum (nll (R,) at point (R, P)) they are to beat:
    (lost, same). Where the Hessian is positive definite and the Newton decrement (half the
    squared Newton step in the Hessian's norm) is below LOST_DECREMENT, -log L is near its
    quadratic model: its minimum lies at most a small multiple of the decrement below the
    point (for a self-concordant function, at most twice the decrement; LOST_FACTOR allows
    twice that), lost where even that lies above nll + LOST_MARGIN; and it lies within the
    region around the point (the unit ball of the Hessian's norm) where -log L is convex, so
    that a minimum to beat within SAME_RADIUS of the point (half that) is the one the fit is
    heading for: same. Not where a kink (kinks (P,): -log L is not smooth across 0) lies
    between the point and the minimum to beat, or at either: the Hessian on one side of it
    says nothing of the other (a mirrored start lies across the kinks from the fit)."""
    near = positive & (decrement < LOST_DECREMENT)
    with np.errstate(invalid="ignore"):
        lost = near & (ev.nll - LOST_FACTOR * decrement > nll + LOST_MARGIN)
        across = (kinks & ~fixed & ~(theta * point > 0.0)).any(axis=1)
    same = np.zeros_like(near)
    k = np.flatnonzero(near & ~lost & ~across & np.isfinite(nll))
    if k.size:
        d = np.where(fixed[k], 0.0, point[k] - theta[k])
        with np.errstate(invalid="ignore", over="ignore"):
            same[k] = np.einsum("rp,rpq,rq->r", d, ev.hess[k], d) <= SAME_RADIUS**2
    return lost, same


def stopped_by_beat(outcome: FitOutcome) -> np.ndarray:
    """Rows of a fit with minimize(..., beat=...) that stopped because they could not beat
    the minimum they were given (R,): such a row's -log L is no minimum."""
    return np.array([m in (LOST_MESSAGE, SAME_MESSAGE) for m in outcome.messages], dtype=bool)


def _settle_kinks(model, rows, main, aux, fixed, options, outcome: FitOutcome) -> None:
    """Where a fit ends on a kink (a code0 interpolation parameter at 0, where -log L is not
    differentiable), Newton steps keep crossing it and the other parameters are left short
    of their optimum. Such rows are fitted again with the kink parameters held at exactly 0;
    the result replaces the first where its -log L is lower. Updates outcome in place."""
    on_kink = model.kinks & ~fixed & (np.abs(outcome.theta) < KINK_WIDTH)
    redo = np.flatnonzero(on_kink.any(axis=1) & np.isfinite(outcome.nll))
    if redo.size == 0:
        return
    start = np.where(on_kink[redo], 0.0, outcome.theta[redo])
    keep_hessian = outcome.hessian is not None
    again = minimize(
        model,
        rows[redo],
        main[redo],
        aux[redo],
        start,
        fixed[redo] | on_kink[redo],
        options,
        keep_hessian,
        settle_kinks=False,
    )
    better = again.converged & (again.nll < outcome.nll[redo])
    idx = redo[better]
    outcome.replace_rows(idx, again, np.flatnonzero(better))
    for i in idx:
        outcome.messages[i] = "converged (on a kink)"


def free_parameters(theta, grad, lower, upper, fixed) -> np.ndarray:
    """The parameters a Newton step moves: not fixed, and not at a bound with the gradient
    pushing outward (an active bound constraint)."""
    return ~(fixed | ((theta <= lower) & (grad > 0)) | ((theta >= upper) & (grad < 0)))


def _sufficient(f: np.ndarray, f0: np.ndarray, delta: np.ndarray, grad: np.ndarray):
    """Armijo test, with a relative slack at the precision of the likelihood itself."""
    predicted = (delta * grad).sum(axis=1)
    return np.isfinite(f) & (f <= f0 + 1e-4 * predicted + 1e-12 * np.abs(f0))


def _chord_check(model, rows, main, aux, fixed, which, cand, th, g, f0, chord, c, options):
    """For rows `which`, whose last Newton step (from th, gradient g, -log L f0) led to cand
    (c: their rows in chord): whether they converge with the last Hessian (chord) alone.

    At cand -log L and its gradient are evaluated without a Hessian. A row has converged
    (ok) where the step lowered -log L enough, no bound became active or inactive, and the
    Newton decrement there, measured with the last Hessian, is below the tolerance. Where
    that decrement is small but not below it, chord steps (the last Hessian's Newton steps)
    follow, up to CHORD_STEPS, as long as each one lowers -log L and the decrement shrinks
    tenfold. Returns (ok, point (K, P), -log L, gradient, projected gradient) of the rows;
    the others are left to a full Newton iteration at cand."""
    K, P = cand.shape
    r, m, a = rows[which], main[which], aux[which]
    lo, hi, fx = model.lower[r], model.upper[r], fixed[which]
    place = np.searchsorted(chord.rows, c)
    ok = np.zeros(K, dtype=bool)
    point, base, slope, f_base = cand.copy(), th, g, f0
    nll, grad, g1 = np.empty(K), np.empty((K, P)), np.empty((K, P))
    last = np.full(K, np.inf)
    pending = np.arange(K)
    for attempt in range(CHORD_STEPS + 1):
        q = pending
        at = point[q]
        check = model.evaluate(at, r[q], m[q], a[q], hessian=False)
        free = free_parameters(at, check.grad, lo[q], hi[q], fx[q])
        gq = np.where(free, check.grad, 0.0)
        nll[q], grad[q], g1[q] = check.nll, check.grad, gq
        good = _sufficient(check.nll, f_base[q], at - base[q], slope[q])
        good &= (free == chord.free[place[q]]).all(axis=1) & np.isfinite(gq).all(axis=1)
        step = np.zeros((q.size, P))
        dec = np.full(q.size, np.inf)
        step[good], dec[good] = chord.step(place[q[good]], gq[good])
        ok[q] = good & (dec < options.tolerance)
        more = good & ~ok[q] & (dec < CHORD_STEP_BELOW) & (dec < 0.1 * last[q])
        if attempt == CHORD_STEPS or not more.any():
            break
        pending = q[more]
        last[pending] = dec[more]
        base, slope, f_base = point.copy(), g1.copy(), nll.copy()
        point[pending] = np.clip(at[more] + step[more], lo[pending], hi[pending])
    return ok, point, nll, grad, g1


@dataclass
class _Chord:
    """Of the rows of a Newton iteration whose decrement is small (rows, indices into its
    active rows): the Cholesky factors of their Jacobi-scaled free Hessians (K, P, P),
    scales and free parameters (K, P), kept to measure the decrement at their next points."""

    rows: np.ndarray
    factor: np.ndarray
    scale: np.ndarray
    free: np.ndarray

    def step(self, place: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The Newton step -H^-1 g with the kept Hessians of the rows at positions place (of
        self.rows), at gradients g (K, P) (zero off the free parameters), and its decrement
        g^T H^-1 g / 2 (K,)."""
        scale = self.scale[place]
        gs = g * scale
        step = np.zeros_like(g)
        out = np.full(g.shape[0], np.inf)
        for k, j in enumerate(place):
            x, info = lapack.dpotrs(self.factor[j].T, gs[k], lower=1)
            if info == 0:
                step[k] = -x * scale[k]
                out[k] = 0.5 * (x * gs[k]).sum()
        return np.where(self.free[place], step, 0.0), out


def _newton_step(
    hess: np.ndarray,
    fisher: Callable[[np.ndarray], np.ndarray] | None,
    g: np.ndarray,
    free: np.ndarray,
    chord_below: float = 0.0,
    crawl: float = 0.0,
):
    """Newton step restricted to free parameters, with a positive-definite stand-in for the
    Hessian where it is not positive definite.

    The stand-in (fisher: a function of the rows that need it, such as Evaluation.fisher, or
    None) is the Hessian without the yields' second derivatives, i.e.
    the Fisher-like J W J^T plus the constraints, which is positive semi-definite and costs one
    more Cholesky factorisation; only rows where even that fails get an eigendecomposition
    with |eigenvalues| floored. Rows and columns are Jacobi-scaled first so that wildly
    different parameter scales (a Poisson constraint with tau ~ 1e11 beside a signal
    strength of order one) do not make a positive-definite matrix look singular.

    Where the Hessian has a clearly negative curvature the point is no minimum (a saddle or
    the ridge between two basins), and the stand-in's step alone can crawl there for dozens
    of iterations with a decrement that looks nearly converged. Rows whose stand-in step
    predicts less decrease than `crawl` get a unit step (in the scaled parameters) along the
    most negative curvature direction added, downhill, its predicted decrease counted in the
    decrement.
    """
    step, decrement, ok, chord = _scaled_newton(hess, g, free, chord_below)
    positive = ok.copy()
    if ok.all():
        return step, decrement, chord, positive
    indefinite = np.flatnonzero(~ok)
    if fisher is not None:
        bad = indefinite
        s2, d2, ok2, _ = _scaled_newton(fisher(bad), g[bad], free[bad])
        fixed_up = bad[ok2]
        step[fixed_up], decrement[fixed_up], ok[fixed_up] = s2[ok2], d2[ok2], True
    if not ok.all():
        bad = np.flatnonzero(~ok)
        step[bad], decrement[bad] = _floored_newton(hess[bad], g[bad], free[bad])
    slow = indefinite[decrement[indefinite] < crawl]
    extra, gain = _negative_curvature(hess[slow], g[slow], free[slow])
    step[slow] += extra
    decrement[slow] += gain
    return step, decrement, chord, positive


def _negative_curvature(hess: np.ndarray, g: np.ndarray, free: np.ndarray):
    """Per row: a step of unit length (in the Jacobi-scaled parameters) along the
    eigenvector of the most negative eigenvalue of the scaled free Hessian, signed downhill,
    and the decrease the quadratic model predicts for it; zero where that eigenvalue is
    above -NEGATIVE_CURVATURE."""
    R, P = g.shape
    step = np.zeros((R, P))
    gain = np.zeros(R)
    if R == 0:
        return step, gain
    hs, gs, scale = _scaled(hess, g, free)
    for r in range(R):
        try:
            w, v = eigh(hs[r], subset_by_index=(0, 0), overwrite_a=True, check_finite=False)
        except (np.linalg.LinAlgError, ValueError):
            continue
        if not w[0] < -NEGATIVE_CURVATURE:
            continue
        v = v[:, 0]
        slope = float(gs[r] @ v)
        if slope > 0.0:
            v, slope = -v, -slope
        step[r] = np.where(free[r], v * scale[r], 0.0)
        gain[r] = -slope - 0.5 * w[0]
    return step, gain


def _scaled(hess: np.ndarray, g: np.ndarray, free: np.ndarray):
    """The free block of each Hessian with unit diagonal (identity elsewhere), the gradient in
    the same scaling, and the scale (kernel.scale_free: one compiled pass over the rows)."""
    R, P = g.shape
    hs, gs, scale = np.empty((R, P, P)), np.empty((R, P)), np.empty((R, P))
    kernel.scale_free(
        np.ascontiguousarray(hess, dtype=float), np.ascontiguousarray(g, dtype=float),
        np.ascontiguousarray(free, dtype=bool), hs, gs, scale,
    )  # fmt: skip
    return hs, gs, scale


def _scaled_newton(hess: np.ndarray, g: np.ndarray, free: np.ndarray, chord_below: float = 0.0):
    """-H^-1 g and its decrement g^T H^-1 g / 2 for the rows whose H is positive definite
    (ok); the other rows' entries are left at zero. In blocks of rows whose Hessians take
    about BLOCK_BYTES, so that scaling and factorising a block happen in the cache (whole
    batches of 120 x 120 Hessians made each pass stream tens of MB from memory). The
    factors of the rows whose decrement is below chord_below are kept (a _Chord)."""
    R, P = g.shape
    step = np.zeros((R, P))
    decrement = np.zeros(R)
    ok = np.zeros(R, dtype=bool)
    kept = []
    for t in _row_blocks(R, max(1, BLOCK_BYTES // (8 * P * P))):
        hs, gs, scale = _scaled(hess[t], g[t], free[t])
        s, ok[t] = _cholesky_solve(hs, -gs)
        step[t] = np.where(free[t] & ok[t, None], s * scale, 0.0)
        decrement[t] = np.where(ok[t], -0.5 * (s * gs).sum(axis=1), 0.0)
        near = np.flatnonzero(ok[t] & (decrement[t] < chord_below))
        if near.size:
            kept.append((near + t.start, hs[near], scale[near]))
    rows = np.concatenate([k[0] for k in kept]) if kept else np.zeros(0, dtype=int)
    chord = _Chord(
        rows,
        np.concatenate([k[1] for k in kept]) if kept else np.zeros((0, P, P)),
        np.concatenate([k[2] for k in kept]) if kept else np.zeros((0, P)),
        free[rows],
    )
    return step, decrement, ok, chord


def _row_blocks(count: int, size: int) -> list[slice]:
    """Consecutive slices of at most size rows covering count rows."""
    return [slice(i, i + size) for i in range(0, count, size)]


def solve_free(hess: np.ndarray, rhs: np.ndarray, free: np.ndarray):
    """H_ff^-1 rhs_f for each row over its free parameters (0 on the others), by the Newton
    step's Jacobi-scaled Cholesky factorisation in blocks; ok (R,) is False, and the row 0,
    where H_ff is not positive definite."""
    x, _, ok, _ = _scaled_newton(hess, -rhs, free)
    return x, ok


def profile_path(fit, fixed: np.ndarray, poi: int) -> tuple[np.ndarray, np.ndarray]:
    """d theta / d mu along the profile at fixed-POI fits with Hessians (fixed: with the POI)
    (R, P): the optimum of the free parameters f moves as -H_ff^-1 H_f,mu. Zero where it
    cannot be computed (no Hessian, H_ff not positive definite). Also
    the profile likelihood's curvature d2 (-log L) / d mu2 = H_mu,mu - H_mu,f H_ff^-1 H_f,mu
    (R,), NaN where the path is not known."""
    if fit.hessian is None:
        return np.zeros_like(fit.theta), np.full(fit.theta.shape[0], np.nan)
    path, ok = solve_free(fit.hessian, -fit.hessian[:, :, poi], ~fixed)
    ok &= np.isfinite(path).all(axis=1)
    path = np.where(ok[:, None], path, 0.0)
    curvature = fit.hessian[:, poi, poi] + np.einsum("rp,rp->r", fit.hessian[:, poi, :], path)
    return path, np.where(ok, curvature, np.nan)


def _cholesky_solve(h: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Solve H x = b row by row through H's Cholesky factorisation (LAPACK potrf, potrs),
    which also proves H positive definite (ok). Row by row is no slower than numpy's batched
    factorisation, whose error stops the whole stack, and the two triangular solves cost a
    fraction of the batched LU solve numpy would need after it. h is overwritten: each
    (symmetric) matrix is factorised in place, as the Fortran-ordered transpose LAPACK
    takes without a copy."""
    x = np.zeros_like(b)
    ok = np.zeros(b.shape[0], dtype=bool)
    for r in range(b.shape[0]):
        factor, info = lapack.dpotrf(h[r].T, lower=1, clean=0, overwrite_a=1)
        if info == 0:
            x[r], info = lapack.dpotrs(factor, b[r], lower=1)
            ok[r] = info == 0
    return x, ok


def _floored_newton(hess: np.ndarray, g: np.ndarray, free: np.ndarray):
    """Newton on |H| with small eigenvalues floored: still a descent direction."""
    hs, gs, scale = _scaled(hess, g, free)
    w, v = np.linalg.eigh(hs)
    floor = 1e-10 * np.maximum(np.abs(w).max(axis=1, keepdims=True), 1.0)
    w = np.maximum(np.abs(w), floor)
    coeff = np.einsum("rpk,rp->rk", v, gs) / w
    step = -np.einsum("rpk,rk->rp", v, coeff)
    return np.where(free, step * scale, 0.0), 0.5 * (coeff * coeff * w).sum(axis=1)


def _line_search(
    model, rows, main, aux, theta, step, grad, f0, lower, upper, max_halvings, first=1.0
):
    """Backtracking (Armijo) along the projected Newton path, for all rows at once."""
    t = np.full(theta.shape[0], first)
    result = theta.copy()
    pending = np.arange(theta.shape[0])
    for _ in range(max_halvings):
        cand = np.clip(
            theta[pending] + t[pending, None] * step[pending], lower[pending], upper[pending]
        )
        f = model.nll(cand, rows[pending], main[pending], aux[pending])
        ok = _sufficient(f, f0[pending], cand - theta[pending], grad[pending])
        result[pending[ok]] = cand[ok]
        pending = pending[~ok]
        if pending.size == 0:
            break
        t[pending] *= 0.5
    return result
