"""Safeguards against local minima: a fit from several starts, the lowest minimum kept.

A Newton fit finds the minimum of the basin it starts in. -log L of a HistFactory model can
have several: along a parameter whose up and down variations move a yield the same way
(ModelBatch.folds), two values of the parameter give one yield, and the data can be matched
on either side of 0. So the fits every result depends on are run from
more than one start, as extra rows of a batch:

- best_of: the given starts (a warm start first, the measurement's inits), lowest kept;
- try_flips: from each fitted row, the fold parameters that ended away from 0 (where the up
  and down variations meet) are mirrored through it (one start per parameter, the largest few
  deviations, plus one with all of them mirrored). A mirrored start is fitted only where
  -log L along the line from the fit to it is not convex (at the centre, half-way, it lies
  above the mean of its ends: a barrier between two basins; a convex line leads back into the
  fit's own basin) and where -log L there, before any refit, is at most FLIP_MARGIN above the
  fit's (the mirror image of a deeper basin lies about as low as the fit, since the yields it
  changes are the same; a start in a basin far above only finds that basin again); a mirror
  below the fit is always refitted. A kink parameter (code0; code1 normsys) is mirrored at any
  distance from its kink (its two basins meet there). A lower minimum replaces the fit; a
  refit stops as soon as its own minimum is seen to lie above the fit's, or to be the fit's
  (minimize's beat). From a lower minimum the mirrors are tried again (FLIP_ROUNDS): one
  mirror at a time, a few rounds reach minima that need several mirrored at once.

Every outcome carries `spread`: how far (in -log L) the first start's own minimum lies above
the one kept, i.e. how wrong a single-start fit would have been (0 when the first start's
minimum is kept). Starts are chosen deterministically, so results are reproducible.
"""

from __future__ import annotations

import numpy as np

from reinterpret.fitter.model import ModelBatch
from reinterpret.fitter.optimize import (
    KINK_WIDTH,
    FitOptions,
    FitOutcome,
    minimize,
    stopped_by_beat,
)

# Two converged starts whose -log L differ by more than this (1e-4 in 2 NLL) reached different
# minima; converged starts in one minimum agree to ~1e-9.
START_TOLERANCE = 0.5e-4
# A fold parameter closer than this (in units of its constraint's width) to the centre is not
# mirrored: its mirror image lies in the same basin.
FLIP_MIN = 0.25
# At most this many fold parameters of a row are mirrored one at a time.
MAX_FLIPS = 8
# A row whose mirrored start ended lower is tried again from its new minimum, for at most this
# many rounds in all: a greedy descent over the folds. Where a large signal pulls many fold
# parameters away from 0 (fixed-POI fits at a strongly excluded mu), the lowest minimum can
# lie several mirrors away, each lower than the last (sbottom_600_500_60 at mu = 1: 2 NLL
# 280.13 after one round of four, 276.90 after three rounds of eight; pyhf 278.57).
FLIP_ROUNDS = 3
# A mirrored start must end this much lower (in -log L) to replace the fit.
IMPROVEMENT = 1e-9
# A mirrored start is fitted only where -log L there is at most this much above the fit's.
FLIP_MARGIN = 1.0


def best_of(
    model: ModelBatch,
    rows: np.ndarray,
    main: np.ndarray,
    aux: np.ndarray,
    starts: list[np.ndarray],
    fixed: np.ndarray,
    options: FitOptions,
    keep_hessian: bool = False,
    near_hessian: bool = False,
) -> FitOutcome:
    """Fit every row from each of the starts (each (R, P)) in one batch; per row, the start
    that ends lowest is kept, with spread set from the others."""
    n = len(starts)
    if n == 1:
        return minimize(
            model, rows, main, aux, starts[0], fixed, options, keep_hessian,
            near_hessian=near_hessian,
        )  # fmt: skip
    out = minimize(
        model,
        np.tile(rows, n),
        np.tile(main, (n, 1)),
        np.tile(aux, (n, 1)),
        np.concatenate(starts),
        np.tile(fixed, (n, 1)),
        options,
        keep_hessian,
        near_hessian=near_hessian,
    )
    return keep_lowest(out, n)


def keep_lowest(out: FitOutcome, n: int) -> FitOutcome:
    """Of n fits of each row stacked start after start (n R rows), the lowest per row."""
    R = out.nll.size // n
    nll = out.nll.reshape(n, R)
    ranked = np.where(np.isfinite(nll), nll, np.inf)
    best = np.argmin(ranked, axis=0)
    # Ties (starts in one minimum) keep the first start's fit.
    best = np.where(ranked[0] <= ranked[best, np.arange(R)] + IMPROVEMENT, 0, best)
    kept = out.take(best * R + np.arange(R))
    kept.spread = _above(out.spread[:R] + nll[0], kept.nll)
    return kept


def _above(first: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """first - kept where both are finite and positive, else 0."""
    with np.errstate(invalid="ignore"):
        d = first - kept
    return np.where(np.isfinite(d) & (d > 0), d, 0.0)


def flip_starts(
    model: ModelBatch, rows: np.ndarray, aux: np.ndarray, fixed: np.ndarray, theta: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Mirrored starts for fitted parameters theta (R, P): (which row each start belongs to
    (K,), the starts (K, P)), before the FLIP_MARGIN test. See the module docstring."""
    # Yields fold where the up and down variations meet: at 0 for every interpolation code
    # (not at the constraint's centre, which Asimov data move).
    sigma = model.sigma[rows]
    centre = np.zeros_like(theta)
    deviation = np.abs(theta) / sigma
    # A kink (code0, code1 normsys) separates its two basins exactly at the centre: any side counts.
    least = np.where(model.kinks, KINK_WIDTH, FLIP_MIN)
    eligible = model.folds[None, :] & ~fixed & np.isfinite(theta) & (deviation > least)
    owners: list[int] = []
    starts: list[np.ndarray] = []
    for r in np.flatnonzero(eligible.any(axis=1)):
        pars = np.flatnonzero(eligible[r])
        pars = pars[np.argsort(-deviation[r, pars], kind="stable")][:MAX_FLIPS]
        mirrored = 2.0 * centre[r] - theta[r]
        for p in pars:
            start = theta[r].copy()
            start[p] = mirrored[p]
            starts.append(start)
            owners.append(r)
        if pars.size > 1:
            start = theta[r].copy()
            start[pars] = mirrored[pars]
            starts.append(start)
            owners.append(r)
    if not starts:
        return np.zeros(0, dtype=int), np.zeros((0, theta.shape[1]))
    return np.array(owners), np.array(starts)


def try_flips(
    model: ModelBatch,
    rows: np.ndarray,
    main: np.ndarray,
    aux: np.ndarray,
    fixed: np.ndarray,
    options: FitOptions,
    outcome: FitOutcome,
) -> FitOutcome:
    """Refit the rows of outcome from mirrored starts (flip_starts); where one ends lower,
    it replaces the row, and the row's mirrored starts are tried again from its new minimum
    (at most FLIP_ROUNDS rounds). Updates outcome (and its spread) in place and returns it."""
    todo = np.arange(outcome.nll.size)
    for _ in range(FLIP_ROUNDS):
        before = outcome.nll[todo].copy()
        owner, start = flip_starts(model, rows[todo], aux[todo], fixed[todo], outcome.theta[todo])
        owner = todo[owner]
        if owner.size == 0:
            break
        # Value-only probes at each mirrored start and half-way back (the fit with the
        # flipped parameters at their centre), in one call.
        here = outcome.theta[owner]
        centre = 0.5 * (here + start)
        probe = model.nll_moved(
            outcome.theta, np.tile(owner, 2), np.concatenate([start, centre]), rows, main, aux
        )
        there, middle = probe[: owner.size], probe[owner.size :]
        f0 = outcome.nll[owner]
        with np.errstate(invalid="ignore"):
            low = np.isfinite(there) & (there <= f0 + FLIP_MARGIN)
            # Convex along the line through the centre: one basin there, the mirror leads back.
            barrier = ~(middle <= 0.5 * (f0 + there) + 1e-9 * np.abs(f0))
        # A mirrored start below the fit leads to a lower minimum, barrier or not.
        tried = low & (barrier | (there < f0))
        if not tried.any():
            break
        # A mirrored start matters only where it ends below the fit: one seen to end above
        # it, or in it, stops there (minimize's beat).
        _keep_lower(model, rows, main, aux, fixed, options, outcome, owner[tried], start[tried])
        with np.errstate(invalid="ignore"):
            todo = todo[outcome.nll[todo] < before - IMPROVEMENT]
        if todo.size == 0:
            break
    return outcome


def _keep_lower(model, rows, main, aux, fixed, options, outcome, owner, start) -> None:
    """Refit rows owner (K,) of outcome from mirrored starts (K, P), each given its row's
    minimum to beat; where one ends lower, it replaces the row (spread updated)."""
    keep_hessian = outcome.hessian is not None
    again = minimize(
        model, rows[owner], main[owner], aux[owner], start, fixed[owner], options, keep_hessian,
        near_hessian=keep_hessian, escape=True, beat=(outcome.nll[owner], outcome.theta[owner]),
    )  # fmt: skip
    stopped = stopped_by_beat(again)
    first = outcome.nll + outcome.spread
    best = outcome.nll.copy()
    for k, r in enumerate(owner):
        f = again.nll[k]
        if not np.isfinite(f) or stopped[k]:
            continue
        if f < best[r] - IMPROVEMENT or not np.isfinite(best[r]):
            best[r] = f
            outcome.replace_rows(np.array([r]), again, np.array([k]))
    outcome.spread = _above(first, best)


def safeguarded(
    model: ModelBatch,
    rows: np.ndarray,
    main: np.ndarray,
    aux: np.ndarray,
    starts: list[np.ndarray],
    fixed: np.ndarray,
    options: FitOptions,
    keep_hessian: bool = False,
    near_hessian: bool = False,
) -> FitOutcome:
    """best_of the starts, then try_flips from the kept minimum."""
    out = best_of(model, rows, main, aux, starts, fixed, options, keep_hessian, near_hessian)
    return try_flips(model, rows, main, aux, fixed, options, out)
