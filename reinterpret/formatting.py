"""How result numbers are written for people: CLs, limits and the exclusion verdict, the same
on pages, in figures and in tables (3 significant digits; a floor; limits beyond the POI bound).
"""

from __future__ import annotations

import math

CLS_FLOOR = 1e-6
LEVEL = 0.05


def _finite(value) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def number(value, digits: int = 3) -> str:
    """A number to `digits` significant digits ("–" when missing)."""
    value = _finite(value)
    if value is None:
        return "–"
    return f"{value:.{digits}g}"


def cls(value) -> str:
    """A CLs value: 3 significant digits, "< 1e-6" below the floor, "–" when missing."""
    value = _finite(value)
    if value is None:
        return "–"
    if value < CLS_FLOOR:
        return f"< {CLS_FLOOR:.0e}".replace("e-0", "e-")
    return f"{value:.3g}"


def limit(value, above_bound: bool = False, bound: float | None = None) -> str:
    """An upper limit on mu: 3 significant digits, "> bound" when the limit lies beyond the
    upper bound of the POI (value then missing or meaningless), "–" when missing."""
    # A limit at the bound itself was not found below it: it too lies beyond.
    at_bound = _finite(value) is not None and _finite(bound) is not None and value >= bound
    if above_bound or at_bound:
        return f"> {bound:g}" if _finite(bound) is not None else "> bound"
    return number(value)


def verdict(cls_obs) -> str:
    """ "excluded" (CLs < 0.05), "not excluded", or "unknown" without a number."""
    value = _finite(cls_obs)
    if value is None:
        return "unknown"
    return "excluded" if value < LEVEL else "not excluded"


def limit_above_bound(result: dict, curve) -> bool:
    """Whether a result flags a curve's limit as above the POI's upper bound. curve: "obs"
    (the result's limit_above_poi_bound) or an index 0..4 of the expected band (its
    limit_above_poi_bound_exp, −2σ..+2σ)."""
    if curve == "obs":
        return bool(result.get("limit_above_poi_bound"))
    band = result.get("limit_above_poi_bound_exp") or []
    return bool(band[curve]) if len(band) > curve else False
