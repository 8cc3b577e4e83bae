"""Pre- and post-fit details of one model: yields per sample with the prediction's
uncertainty per bin, and every parameter's value, constraint and fitted value with its error.

The post-fit covariance is the inverse of the Hessian of -log L over the free parameters at
the global best fit (the fitter's Hessian, which is the one its Newton steps use); the pre-fit
one is diagonal, from the constraint widths (unconstrained parameters contribute nothing
pre-fit). The uncertainty of a bin's total yield is sqrt(J C J^T) with J the derivative of the
bin's yield by the parameters, taken by central differences in one batched evaluation.
"""

from __future__ import annotations

import numpy as np

from reinterpret.fitter.model import ModelBatch
from reinterpret.fitter.optimize import minimize


def _jacobian(model: ModelBatch, theta: np.ndarray, row: int, slots: np.ndarray) -> np.ndarray:
    """d(expected yield per bin)/d(theta) at theta (P,) for the given slots: (N, len(slots))."""
    lower, upper = model.lower[row], model.upper[row]
    step = 1e-5 * np.maximum(1.0, np.abs(theta[slots]))
    up = np.tile(theta, (len(slots), 1))
    down = up.copy()
    cols = np.arange(len(slots))
    up[cols, slots] = np.minimum(theta[slots] + step, upper[slots])
    down[cols, slots] = np.maximum(theta[slots] - step, lower[slots])
    both = np.concatenate([up, down])
    rows = np.full(len(both), row)
    nu = model.expected(both, rows)[0]
    width = up[cols, slots] - down[cols, slots]
    width[width == 0] = np.inf  # a parameter pinned at both bounds moves nothing
    return ((nu[: len(slots)] - nu[len(slots) :]) / width[:, None]).T


def _band(model, theta, row, slots, cov) -> list[float] | None:
    if cov is None:
        return None
    if not len(slots):
        return [0.0] * model.nbins
    jac = _jacobian(model, theta, row, slots)
    var = np.einsum("ni,ij,nj->n", jac, cov, jac)
    if not np.all(np.isfinite(var)):
        return None
    return np.sqrt(np.clip(var, 0.0, None)).tolist()


def _per_channel(model: ModelBatch, values) -> dict:
    if values is None:
        return {c: None for c, _ in model.channels}
    offsets = np.cumsum([0] + [n for _, n in model.channels])
    return {
        c: [float(v) for v in values[offsets[i] : offsets[i + 1]]]
        for i, (c, _) in enumerate(model.channels)
    }


def fit_detail(model: ModelBatch, row: int = 0) -> dict:
    """Everything a yields table, a yields plot and a pulls plot need, for model `row`.

    Returns {"converged", "message", "twice_nll", "channels": [[name, nbins]],
    "observed": {channel: [counts]}, "prefit"/"postfit": {"samples": {channel: {sample:
    [yield per bin]}}, "total": {channel: [..]}, "uncertainty": {channel: [..] or None}},
    "parameters": [{"name", "modifiers" (types), "constraint" ("gaussian"|"poisson"|"none"),
    "fixed", "poi",
    "init", "bounds", "centre", "width", "value", "error"}], "notes": [...]}. centre/width:
    the constraint's nominal value and pre-fit standard deviation (None unconstrained); error:
    the post-fit standard deviation (None where the covariance is not available).
    """
    rows = np.array([row])
    fit = minimize(
        model,
        rows,
        model.observed[rows],
        model.aux[rows],
        model.init[rows],
        model.fixed[rows],
        keep_hessian=True,
    )
    theta_hat = fit.theta[0]
    theta_0 = np.clip(model.init[row], model.lower[row], model.upper[row])
    notes: list[str] = []
    present = model.present[row]
    free = present & ~model.fixed[row]
    free_slots = np.flatnonzero(free)
    gauss, poisson = model.gauss[row], model.poisson[row]
    with np.errstate(divide="ignore", invalid="ignore"):
        centre = np.where(poisson, model.aux[row] / model.tau[row], model.aux[row])
        width = np.where(
            gauss,
            model.sigma[row],
            np.where(poisson, np.sqrt(model.aux[row]) / model.tau[row], np.nan),
        )
    # Post-fit covariance over the free parameters.
    cov_post = None
    errors = np.full(model.npars, np.nan)
    if fit.hessian is not None and len(free_slots):
        h = fit.hessian[0][np.ix_(free_slots, free_slots)]
        try:
            cov_post = np.linalg.inv(h)
        except np.linalg.LinAlgError:
            notes.append("the Hessian at the best fit is singular: no post-fit uncertainties")
        else:
            diag = np.diag(cov_post)
            if np.all(np.isfinite(diag)) and np.all(diag > 0):
                errors[free_slots] = np.sqrt(diag)
            else:
                notes.append("the Hessian at the best fit is not positive definite")
                cov_post = None
    # Pre-fit covariance: the constraint widths of the constrained free parameters.
    constrained = free_slots[(gauss | poisson)[free_slots]]
    cov_pre = np.diag(np.nan_to_num(width[constrained]) ** 2)
    stages = {}
    for stage, theta, slots, cov in (
        ("prefit", theta_0, constrained, cov_pre),
        ("postfit", theta_hat, free_slots, cov_post),
    ):
        samples: dict = {}
        for (channel, sample), values in model.sample_yields(theta, row).items():
            samples.setdefault(channel, {})[sample] = [float(v) for v in values]
        total = model.expected(theta[None, :], rows)[0][0]
        stages[stage] = {
            "samples": samples,
            "total": _per_channel(model, total),
            "uncertainty": _per_channel(model, _band(model, theta, row, slots, cov)),
        }
    parameters = []
    labels = model.labels[row]
    for i in np.flatnonzero(present):
        constraint = "gaussian" if gauss[i] else "poisson" if poisson[i] else "none"
        spec = model.par_specs.get(labels[i].split("[")[0])
        parameters.append(
            {
                "name": labels[i],
                "modifiers": sorted(spec.modifier_types) if spec is not None else [],
                "constraint": constraint,
                "fixed": bool(model.fixed[row, i]),
                "poi": bool(i == model.poi_index),
                "init": float(model.init[row, i]),
                "bounds": [float(model.lower[row, i]), float(model.upper[row, i])],
                "centre": None if constraint == "none" else _finite(centre[i]),
                "width": None if constraint == "none" else _finite(width[i]),
                "value": _finite(theta_hat[i]),
                "error": _finite(errors[i]),
            }
        )
    if not fit.converged[0]:
        notes.append(f"the global fit did not converge: {fit.messages[0]}")
    return {
        "converged": bool(fit.converged[0]),
        "message": fit.messages[0],
        "twice_nll": _finite(2.0 * fit.nll[0]),
        "channels": [[c, int(n)] for c, n in model.channels],
        "observed": _per_channel(model, model.observed[row]),
        **stages,
        "parameters": parameters,
        "notes": notes,
    }


def _finite(value) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None
