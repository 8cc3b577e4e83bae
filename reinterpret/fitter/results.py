"""The result of one signal point: numbers that may be missing, each missing one with its reason.

A number the engine cannot vouch for is never printed as if it were one: a non-finite value
becomes None at construction (here, and nowhere else), with a reason under its field name in
`null_reasons`. Band entries are named `field[i]` (i = 0..4 for -2..+2 sigma).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from scipy.special import ndtri

BAND = 5  # expected values from -2 sigma to +2 sigma
SCALARS = ("cls_obs", "mu_hat", "mu_hat_error", "twice_nll", "q_obs", "q_asimov", "mu_up_obs")
BANDS = ("cls_exp", "mu_up_exp")


def _finite(x) -> bool:
    return x is not None and math.isfinite(x)


@dataclass(frozen=True)
class PointResult:
    """Result for one model of the batch. CLs values are at mu_test; cls_exp and mu_up_exp run
    from -2 sigma to +2 sigma. twice_nll is -2 log L at the best fit (HistFactory convention).
    With the discovery statistic q0, cls_obs/cls_exp hold p0 and `significance` is its Z.

    Every number may be None; null_reasons then says why (field name -> reason). `error` is
    set when the point could not be built or fitted at all: every number is then None and
    `error` is the reason for all of them.
    `converged` is about the fits behind CLs only; the upper limits carry their own flag,
    `limits_converged` (None when no limits were asked for). A limit above the upper bound
    of the POI is None with `limit_above_poi_bound` (observed) or the matching entry of
    `limit_above_poi_bound_exp` set, and `poi_upper_bound` gives that bound.

    start_spread: over the fits, the largest amount (in 2 NLL) by which the minimum reached
    from a fit's usual start (the warm start) lies above the lowest minimum of its other
    starts (see starts.py), which is the one used; 0.0 when the usual start found the lowest.
    Above starts.START_TOLERANCE the likelihood has several minima there and `warnings` says
    so: a single-start fit would have been wrong by that much. Not a failure of this result.
    """

    index: int
    cls_obs: float | None
    cls_exp: tuple[float | None, ...]
    mu_hat: float | None
    mu_hat_error: float | None
    twice_nll: float | None
    q_obs: float | None
    q_asimov: float | None
    converged: bool
    warnings: tuple[str, ...] = ()
    mu_up_obs: float | None = None
    mu_up_exp: tuple[float | None, ...] | None = None
    limits_converged: bool | None = None
    limit_above_poi_bound: bool = False
    limit_above_poi_bound_exp: tuple[bool, ...] | None = None
    poi_upper_bound: float | None = None
    null_reasons: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    start_spread: float = 0.0

    def __post_init__(self) -> None:
        reasons = dict(self.null_reasons)
        hint = "; see the warnings" if self.warnings else ""
        for name in SCALARS:
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                object.__setattr__(self, name, None)
                reasons.setdefault(name, f"not a finite number ({value}){hint}")
        for name in BANDS:
            values = getattr(self, name)
            if values is None:
                continue
            clean = []
            for i, value in enumerate(values):
                if value is not None and not math.isfinite(value):
                    reasons.setdefault(f"{name}[{i}]", f"not a finite number ({value}){hint}")
                    value = None
                clean.append(value)
            object.__setattr__(self, name, tuple(clean))
        object.__setattr__(self, "null_reasons", reasons)

    @classmethod
    def failed(cls, index: int, error: str, upper_limit: bool = False) -> PointResult:
        """The result of a point that could not be built or fitted: no numbers, the error."""
        return cls(
            index=index,
            cls_obs=None,
            cls_exp=(None,) * BAND,
            mu_hat=None,
            mu_hat_error=None,
            twice_nll=None,
            q_obs=None,
            q_asimov=None,
            converged=False,
            mu_up_exp=(None,) * BAND if upper_limit else None,
            limits_converged=False if upper_limit else None,
            limit_above_poi_bound_exp=(False,) * BAND if upper_limit else None,
            error=error,
        )

    @property
    def significance(self) -> float | None:
        """Z = Phi^-1(1 - p); meaningful for the discovery statistic q0 (None without p)."""
        if self.cls_obs is None:
            return None
        z = float(ndtri(1.0 - self.cls_obs))
        return z if math.isfinite(z) else None

    def __repr__(self) -> str:
        if self.error is not None:
            return f"PointResult(#{self.index} ERROR: {self.error})"
        exp = ", ".join(_short(x) for x in self.cls_exp)
        text = (
            f"PointResult(#{self.index} CLs={_short(self.cls_obs)} exp=[{exp}] "
            f"mu_hat={_short(self.mu_hat)} 2nll={_short(self.twice_nll, '.6g')}"
        )
        if self.limit_above_poi_bound:
            text += f" mu_up>{self.poi_upper_bound:g}"
        elif self.mu_up_obs is not None:
            text += f" mu_up={self.mu_up_obs:.4g}"
        return text + ("" if self.converged else " NOT CONVERGED") + ")"


def _short(x: float | None, spec: str = ".4g") -> str:
    return "null" if x is None else format(x, spec)


def limit_fields(values, found, upper_bound: float, lower_bound: float) -> tuple[dict, list[str]]:
    """PointResult fields for the six limits of one point (observed, then expected -2..+2
    sigma; values and found, whether each was found, are sequences of 6) and the warnings
    about them.

    A curve that was not found and ended at the upper POI bound lies above the bound: its
    limit is None with the flag set, which is an answer, not a failure. Any other curve not
    found is None with a reason, and the limits are not converged."""
    out, reasons, warnings = [], {}, []
    above = []
    names = ["mu_up_obs", *(f"mu_up_exp[{i}]" for i in range(BAND))]
    for name, value, ok in zip(names, values, found, strict=True):
        value = float(value)
        is_above = not ok and _finite(value) and value >= upper_bound * (1.0 - 1e-9)
        above.append(is_above)
        if ok and _finite(value):
            out.append(value)
        elif is_above:
            out.append(None)
            reasons[name] = (
                f"above the upper bound of the POI ({upper_bound:g}): CLs stays above the "
                "target level up to the bound"
            )
        else:
            out.append(None)
            end = f"{value:.6g}" if _finite(value) else str(value)
            reasons[name] = (
                f"the limit was not found within the POI bounds [{lower_bound:g}, "
                f"{upper_bound:g}] (the search ended at mu = {end})"
            )
            warnings.append(f"upper limit {name}: {reasons[name]}")
    fields = {
        "mu_up_obs": out[0],
        "mu_up_exp": tuple(out[1:]),
        "limit_above_poi_bound": above[0],
        "limit_above_poi_bound_exp": tuple(above[1:]),
        "limits_converged": not warnings,
        "poi_upper_bound": float(upper_bound),
    }
    return {"fields": fields, "null_reasons": reasons}, warnings
