"""Hypothesis tests and upper limits for every model of a batch at once."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from reinterpret.fitter import asymptotics, starts
from reinterpret.fitter.errors import FitterError
from reinterpret.fitter.model import ModelBatch
from reinterpret.fitter.optimize import (
    FitOptions,
    FitOutcome,
    free_parameters,
    minimize,
    profile_path,
    solve_free,
)
from reinterpret.fitter.results import PointResult, limit_fields

ENGINE_VERSION = "1.0.0"


@dataclass(frozen=True)
class InferenceOptions:
    test_stat: str = "qtilde"
    mu_test: float = 1.0
    level: float = 0.05
    upper_limit: bool = False
    fit: FitOptions = field(default_factory=FitOptions)
    # Also start the global fits from the measurement's inits, besides the warm start (the
    # signal-free optimum) and the mirrored starts: one more fit per point (about +40 % of the
    # evaluations on the published patchsets), so off by default.
    init_start: bool = False

    def __post_init__(self) -> None:
        if self.test_stat not in asymptotics.TEST_STATISTICS:
            raise FitterError(f"unknown test statistic {self.test_stat!r}")
        if self.test_stat == "q0":
            # The discovery test is a test of mu = 0 (with Asimov data at mu = 1), whatever
            # mu_test the caller passed for the exclusion statistics.
            object.__setattr__(self, "mu_test", 0.0)
            if self.upper_limit:
                raise FitterError("upper limits need the q~mu or q_mu test statistic, not q0")

    @property
    def asimov_mu(self) -> float:
        return 1.0 if self.test_stat == "q0" else 0.0


@dataclass
class _Fits:
    free: FitOutcome
    fixed_mu: FitOutcome
    background: FitOutcome
    asimov_main: np.ndarray
    asimov_aux: np.ndarray
    asimov_free: FitOutcome
    asimov_fixed_mu: FitOutcome


def _set_poi(model: ModelBatch, theta: np.ndarray, fixed: np.ndarray, value) -> tuple:
    theta = theta.copy()
    theta[:, model.poi_index] = value
    fixed = fixed.copy()
    fixed[:, model.poi_index] = True
    return theta, fixed


def _tmu(nll_fixed: np.ndarray, nll_free: np.ndarray) -> np.ndarray:
    return np.maximum(2.0 * (nll_fixed - nll_free), 0.0)


def q_statistic(model: ModelBatch, test_stat: str, mu, nll_fixed, free: FitOutcome) -> np.ndarray:
    """The test statistic (R,) from fixed-POI and global fit results: q~mu/q_mu are 0 when
    mu_hat > mu, q0 when mu_hat < mu (= 0); otherwise 2 (nll_fixed - nll_free), clipped at 0."""
    tmu = _tmu(nll_fixed, free.nll)
    mu_hat = free.theta[:, model.poi_index]
    if test_stat == "q0":
        return np.where(mu_hat < mu, 0.0, tmu)
    return np.where(mu_hat > mu, 0.0, tmu)


def run_fits(model: ModelBatch, options: InferenceOptions) -> _Fits:
    """The five fits of every model's CLs, in three batched stages.

    1. The signal-free fits (POI at 0) on the observed data. Without signal the points of a
       patchset are (nearly) the same model, so one point's fit, done first on its own, starts
       them all next to their optimum.
    2. From there, in one batch: the global fits (from that warm start moved one Newton step
       along the profile likelihood, _profile_start, and from the measurement's inits) and
       the other fixed-POI fits (at mu_test and at the Asimov POI, where these are not 0).
    3. The two Asimov fits: the global one is the generating point itself (checked by its
       gradient, _generating_point), the fixed one starts from the observed fixed-POI optimum.

    Every fit on the data and the Asimov fixed-POI fit are then tried again from mirrored
    starts where the likelihood can fold (starts.try_flips); the lowest minimum is kept. The
    Asimov global fit needs none: the generating point is its global minimum by construction.
    """
    rows = np.arange(model.size)
    fopt = options.fit
    main, aux = model.observed, model.aux
    zero = _signal_free_fits(model, fopt)
    # The global fits start near the signal-free optimum (_profile_start) and (with
    # options.init_start) also from the measurement's inits; the other fixed-POI fits from
    # the signal-free optimum.
    theta = [_profile_start(model, zero)]
    fixed = [model.fixed]
    if options.init_start:
        init = model.init.copy()
        poi = model.poi_index
        init[:, poi] = np.clip(init[:, poi], model.lower[:, poi], model.upper[:, poi])
        theta.append(init)
        fixed.append(model.fixed)
    k = len(theta)
    values = [mu for mu in dict.fromkeys((options.mu_test, options.asimov_mu)) if mu != 0.0]
    for mu in values:
        th, fx = _set_poi(model, zero.theta, model.fixed, mu)
        theta.append(th)
        fixed.append(fx)
    n = len(theta)
    stage = minimize(
        model,
        np.tile(rows, n),
        np.tile(main, (n, 1)),
        np.tile(aux, (n, 1)),
        np.concatenate(theta),
        np.concatenate(fixed),
        fopt,
        keep_hessian=True,
        # The global fits' Hessians give mu_hat's error; the others' only predict the
        # limits' warm starts (a Hessian one Newton step from the optimum serves).
        near_hessian=np.arange(n * model.size) >= k * model.size,
    )
    parts = _split(stage, model.size, n)
    free = starts.keep_lowest(FitOutcome.concat(parts[:k]), k)
    n -= k - 1
    stage = starts.try_flips(
        model,
        np.tile(rows, n),
        np.tile(main, (n, 1)),
        np.tile(aux, (n, 1)),
        np.concatenate([model.fixed, *fixed[k:]]),
        fopt,
        FitOutcome.concat([free, *parts[k:]]),
    )
    free, *others = _split(stage, model.size, n)
    at = {0.0: zero, **dict(zip(values, others, strict=True))}
    fixed_mu, background = at[options.mu_test], at[options.asimov_mu]
    _, fx_mu = _set_poi(model, free.theta, model.fixed, options.mu_test)
    a_main, a_aux = model.expected(background.theta, rows)
    a_free = _generating_point(model, a_main, a_aux, background.theta, fopt, options.upper_limit)
    a_fixed = minimize(
        model,
        rows,
        a_main,
        a_aux,
        fixed_mu.theta,
        fx_mu,
        fopt,
        keep_hessian=options.upper_limit,  # the limits' first warm starts follow from it
        near_hessian=True,
    )
    a_fixed = starts.try_flips(model, rows, a_main, a_aux, fx_mu, fopt, a_fixed)
    return _Fits(free, fixed_mu, background, a_main, a_aux, a_free, a_fixed)


# The Asimov global fit is taken at its generating point where the projected gradient there
# is at most this (it is zero up to rounding: every term of -log L is at its own minimum).
GENERATING_GRADIENT = 1e-7


def _generating_point(model, main, aux, theta, fopt, hessian: bool) -> FitOutcome:
    """The Asimov global fits: the Asimov data are the expected data at theta, where each
    Poisson term (counts equal to their expectation) and each constraint (auxiliary data
    equal to their expectation) is at its own minimum, so theta is the global minimum of
    -log L. It is checked, not assumed: one evaluation there (with the Hessian where the
    limits need it), and a row whose projected gradient is not below GENERATING_GRADIENT
    (a bin with no expected events, say, whose minimum lies on a bound) is fitted from
    there instead."""
    rows = np.arange(model.size)
    ev = model.evaluate(theta, rows, main, aux, hessian=hessian)
    free = free_parameters(theta, ev.grad, model.lower, model.upper, model.fixed)
    norm = np.sqrt((np.where(free, ev.grad, 0.0) ** 2).sum(axis=1))
    ok = np.isfinite(ev.nll) & (norm <= GENERATING_GRADIENT)
    redo = np.flatnonzero(~ok)
    out = FitOutcome(
        theta.copy(),  # the background fit's, which stays as it is
        ev.nll,
        ok,
        np.zeros(model.size, dtype=int),
        norm,
        ["converged (at the generating point)"] * model.size,
        ev.hess,
        gradient=ev.grad,
    )
    if redo.size:
        again = minimize(
            model, redo, main[redo], aux[redo], theta[redo], model.fixed[redo], fopt,
            keep_hessian=hessian, near_hessian=True,
        )  # fmt: skip
        out.replace_rows(redo, again, np.arange(redo.size))
    return out


def _signal_free_fits(model: ModelBatch, fopt: FitOptions) -> FitOutcome:
    """Fits with the POI fixed at 0 on the observed data, all warm-started from the first
    model's (for the parameters every model has; pooled, point-specific ones start at their
    initial values). The first model's fit is safeguarded (mirrored starts) before it warm
    starts the others, and so is every model's. Each keeps its last Hessian (one Newton step
    before the optimum where the fit ended on a chord check: no further evaluation), from
    which the global fits' start follows (_profile_start)."""
    rows = np.arange(model.size)
    th, fx = _set_poi(model, model.init, model.fixed, 0.0)
    obs, aux = model.observed, model.aux
    first = starts.safeguarded(
        model, rows[:1], obs[:1], aux[:1], [th[:1]], fx[:1], fopt, True, True
    )
    if model.size == 1:
        return first
    shared = model.common_slots & ~model.fixed
    if not (first.converged[0] and np.isfinite(first.theta[0]).all()):
        shared = np.zeros_like(shared)  # no good warm start: every model from its init
    start = np.where(shared, first.theta[0], th)
    start[:, model.poi_index] = 0.0
    return starts.safeguarded(model, rows, obs, aux, [start], fx, fopt, True, True)


def _profile_start(model: ModelBatch, zero: FitOutcome) -> np.ndarray:
    """The global fits' start (B, P): from the signal-free optimum, one Newton step on the
    profile likelihood in the POI (mu = -(d/dmu) / (d2/dmu2), inside its bounds), the other
    parameters moved along the profile path (d theta / d mu = -H_ff^-1 H_f,mu), both from
    the signal-free fits' last Hessian. The signal-free optimum itself where the POI is fixed
    or the profile likelihood is not convex there. Frees that Hessian (it is needed no more).
    On the published patchsets this start saves 1lbb's global fits about one Newton
    iteration in five (full evaluations per point 21.0 -> 20.1; staus 12.3 -> 11.9)."""
    poi = model.poi_index
    fixed = model.fixed.copy()
    fixed[:, poi] = True
    path, curvature = profile_path(zero, fixed, poi)  # NaN curvature: no path
    with np.errstate(divide="ignore", invalid="ignore"):
        mu = -zero.gradient[:, poi] / curvature
    good = np.isfinite(mu) & (curvature > 0)
    good &= ~model.fixed[:, poi] & np.isfinite(zero.theta).all(axis=1)
    mu = np.clip(np.where(good, mu, 0.0), model.lower[:, poi], model.upper[:, poi])
    start = np.where(good[:, None], zero.theta + path * mu[:, None], zero.theta)
    start[:, poi] = np.where(good, mu, zero.theta[:, poi])
    zero.hessian = None
    return start


def _split(outcome: FitOutcome, n: int, parts: int) -> list[FitOutcome]:
    return [outcome.take(slice(k * n, (k + 1) * n)) for k in range(parts)]


def hypotest(model: ModelBatch, options: InferenceOptions | None = None) -> list[PointResult]:
    """CLs at options.mu_test (and upper limits if asked) for every model of the batch."""
    options = options or InferenceOptions()
    fits = run_fits(model, options)
    mu = options.mu_test
    q_obs = q_statistic(model, options.test_stat, mu, fits.fixed_mu.nll, fits.free)
    q_a = q_statistic(model, options.test_stat, mu, fits.asimov_fixed_mu.nll, fits.asimov_free)
    cls_obs, cls_exp = asymptotics.observed_and_expected(q_obs, q_a, options.test_stat)
    errors = _poi_errors(model, fits.free)
    limits = upper_limits(model, fits, options) if options.upper_limit else None

    return _assemble(model, fits, q_obs, q_a, cls_obs, cls_exp, errors, limits)


_FIT_NAMES = (
    "global fit",
    "fixed-POI fit",
    "background-only fit",
    "Asimov global fit",
    "Asimov fixed-POI fit",
)


def _assemble(model, fits, q_obs, q_a, cls_obs, cls_exp, errors, limits):
    """One PointResult per model: CLs converged when its fits did; limits flagged apart."""
    poi = model.poi_index
    outcomes = (fits.free, fits.fixed_mu, fits.background, fits.asimov_free, fits.asimov_fixed_mu)
    results = []
    for b in range(model.size):
        warnings = [
            f"{name} did not converge ({out.messages[b]})"
            for name, out in zip(_FIT_NAMES, outcomes, strict=True)
            if not out.converged[b]
        ]
        converged = not warnings
        reasons = {}
        if errors[b] is None:
            reasons["mu_hat_error"] = (
                "the parameter of interest is fixed"
                if model.fixed[b, poi]
                else "the Hessian of the global fit gives no positive variance for the POI"
            )
        spread = max(float(2.0 * out.spread[b]) for out in outcomes)
        notes = [
            f"{name}: starts reached different minima; the usual start's lies "
            f"{2.0 * out.spread[b]:.4g} above the lowest in 2 NLL (the lowest is used)"
            for name, out in zip(_FIT_NAMES, outcomes, strict=True)
            if out.spread[b] > starts.START_TOLERANCE
        ]
        warnings += _not_finite(b, cls_obs, cls_exp, q_obs, q_a, _FIT_NAMES, outcomes)
        extra: dict = {}
        if limits is not None:
            values, ok = limits
            lim, limit_warnings = limit_fields(
                values[b], ok[b], float(model.upper[b, poi]), float(model.lower[b, poi])
            )
            extra = lim["fields"]
            reasons.update(lim["null_reasons"])
            warnings += limit_warnings
        results.append(
            PointResult(
                index=b,
                cls_obs=float(cls_obs[b]),
                cls_exp=tuple(float(x) for x in cls_exp[b]),
                mu_hat=float(fits.free.theta[b, poi]),
                mu_hat_error=errors[b],
                twice_nll=float(2.0 * fits.free.nll[b]),
                q_obs=float(q_obs[b]),
                q_asimov=float(q_a[b]),
                converged=converged,
                warnings=tuple(warnings + notes),
                start_spread=spread,
                null_reasons=reasons,
                **extra,
            )
        )
    return results


def _not_finite(b, cls_obs, cls_exp, q_obs, q_a, names, outcomes) -> list[str]:
    """Why a number of point b is not finite (the number itself stays non-finite; callers
    turn it into null with these reasons). Empty when every number is finite."""
    if np.isfinite(cls_obs[b]) and np.isfinite(cls_exp[b]).all():
        return []
    causes = [
        name for name, out in zip(names, outcomes, strict=True) if not np.isfinite(out.nll[b])
    ]
    if causes:
        reason = "-log L is not finite in the " + ", ".join(causes)
    elif not np.isfinite(q_a[b]) or q_a[b] <= 0.0:
        reason = f"the Asimov test statistic is {q_a[b]:.3g} (no sensitivity at mu_test)"
    else:
        reason = f"test statistics q = {q_obs[b]:.6g}, q_A = {q_a[b]:.6g}"
    which = ("observed " if not np.isfinite(cls_obs[b]) else "") + (
        "expected " if not np.isfinite(cls_exp[b]).all() else ""
    )
    return [f"CLs {which.strip().replace(' ', ' and ')} not computable: {reason}"]


def _poi_errors(model: ModelBatch, free: FitOutcome) -> list[float | None]:
    """Uncertainty of mu_hat from the inverse Hessian over the free parameters."""
    return [float(x) if np.isfinite(x) else None for x in poi_sigma(model, free)]


def poi_sigma(model: ModelBatch, fit: FitOutcome) -> np.ndarray:
    """The POI's standard deviation (R,) from each fit's Hessian over the free parameters:
    NaN where there is none (no Hessian kept, a fixed POI, no positive variance)."""
    poi = model.poi_index
    R = fit.theta.shape[0]
    if fit.hessian is None:
        return np.full(R, np.nan)
    free = ~model.fixed
    hess = fit.hessian
    unit = np.zeros(hess.shape[:2])
    unit[:, poi] = 1.0
    # Through the Newton step's Cholesky factorisation where the free block is positive
    # definite (a minimum: nearly always), by an LU solve of the rest one by one (a singular
    # Hessian leaves only its own row without a variance).
    x, ok = solve_free(hess, unit, free)
    var = np.where(ok, x[:, poi], np.nan)
    for b in np.flatnonzero(~ok & free[:, poi]):
        system = np.where(free[b, :, None] & free[b, None, :], hess[b], np.eye(hess.shape[1]))
        try:
            var[b] = np.linalg.solve(system, unit[b])[poi]
        except np.linalg.LinAlgError:
            continue
    with np.errstate(invalid="ignore"):
        return np.where(free[:, poi] & (var > 0.0), np.sqrt(var), np.nan)


def upper_limits(model: ModelBatch, fits: _Fits, options: InferenceOptions):
    """Upper limits on the POI at CLs = level: observed and the expected band.

    Returns (values (B, 6), found (B, 6)); column 0 observed, 1..5 expected -2..+2 sigma.
    See reinterpret/fitter/limits.py: Newton's method on the profile likelihood, every
    pending curve of every point evaluated in one batch of fixed-POI fits per round.
    """
    from reinterpret.fitter.limits import solve_limits

    return solve_limits(model, fits, options)


def fitted_yields(model: ModelBatch, row: int = 0) -> dict:
    """Pre-fit (initial parameters) and post-fit (global best fit) yields of one model.

    Returns {"prefit"|"postfit": {channel: {sample: [yield per bin]}}, "observed":
    {channel: [counts]}, "converged": bool}.
    """
    rows = np.array([row])
    fit = minimize(
        model, rows, model.observed[rows], model.aux[rows], model.init[rows], model.fixed[rows]
    )
    out: dict = {"converged": bool(fit.converged[0])}
    for label, theta in (("prefit", model.init[row]), ("postfit", fit.theta[0])):
        table: dict = {}
        for (channel, sample), values in model.sample_yields(theta, row).items():
            table.setdefault(channel, {})[sample] = [float(v) for v in values]
        out[label] = table
    offsets = np.cumsum([0] + [n for _, n in model.channels])
    out["observed"] = {
        c: model.observed[row, offsets[i] : offsets[i + 1]].tolist()
        for i, (c, _) in enumerate(model.channels)
    }
    return out
