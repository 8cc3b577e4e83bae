"""Interpolation of systematic variations as a function of a nuisance parameter alpha.

Each function takes alpha and the up/down variations broadcast against each other and returns
(value, first derivative, second derivative) with respect to alpha, so that the likelihood can
be differentiated analytically. Multiplicative codes (normsys) return a factor that is 1 at
alpha = 0; additive codes (histosys) return a shift of the yield that is 0 at alpha = 0.
"""

from __future__ import annotations

import numpy as np

MULTIPLICATIVE_CODES = ("code0", "code1", "code4")
ADDITIVE_CODES = ("code0", "code4p")


def code4_coefficients(hi: np.ndarray, lo: np.ndarray, last: bool = False) -> np.ndarray:
    """Coefficients a_1..a_6 of the polynomial 1 + sum_i a_i alpha^i used inside |alpha| < 1.

    They make the factor, its first and its second derivative continuous at alpha = +-1, where
    the factor is hi**alpha (alpha >= 1) and lo**(-alpha) (alpha <= -1). Shape: (6,) + hi.shape,
    one contiguous array per coefficient (numpy code reads them one at a time); with last,
    hi.shape + (6,) (an entry's six side by side, as the compiled kernel reads them).
    """
    hi = np.asarray(hi, dtype=float)
    lo = np.asarray(lo, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_hi = np.log(hi)
        log_lo = np.log(lo)
    powers = np.arange(1, 7)
    # Rows: value at +1, value at -1, slope at +1, slope at -1, curvature at +1, curvature at -1.
    matrix = np.array(
        [
            np.ones(6),
            (-1.0) ** powers,
            powers * 1.0,
            powers * (-1.0) ** (powers - 1),
            powers * (powers - 1.0),
            powers * (powers - 1.0) * (-1.0) ** (powers - 2),
        ]
    )
    rhs = np.stack(
        [
            hi - 1.0,
            lo - 1.0,
            hi * log_hi,
            -lo * log_lo,
            hi * log_hi**2,
            lo * log_lo**2,
        ],
        axis=-1,
    )
    # One (entries, 6) x (6, 6) product (a stacked product would loop over tiny matrices).
    coefficients = (rhs.reshape(-1, 6) @ np.linalg.inv(matrix).T).reshape(rhs.shape)
    return coefficients if last else np.ascontiguousarray(np.moveaxis(coefficients, -1, 0))


def multiplicative(
    code: str, alpha: np.ndarray, hi: np.ndarray, lo: np.ndarray, coeffs: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Factor for a normsys-like variation with relative up/down factors hi and lo."""
    if code == "code0":
        slope = np.where(alpha >= 0, hi - 1.0, 1.0 - lo)
        return 1.0 + alpha * slope, slope, np.zeros_like(slope)
    if code == "code1":
        base = np.where(alpha >= 0, hi, lo)
        exponent = np.where(alpha >= 0, alpha, -alpha)
        with np.errstate(divide="ignore", invalid="ignore"):
            log_base = np.where(alpha >= 0, np.log(hi), -np.log(lo))
        value = base**exponent
        return value, value * log_base, value * log_base**2
    if code == "code4":
        if coeffs is None:
            coeffs = code4_coefficients(hi, lo)
        return code4(alpha, coeffs, lambda out: (hi[out], lo[out]))
    raise ValueError(f"unknown multiplicative interpolation code {code!r}")


def code4(alpha: np.ndarray, coeffs: np.ndarray, variations, derivatives: bool = True) -> tuple:
    """code4 factor, slope and curvature for alpha (R, K) with coefficients (6, R or 1, K).

    Horner's scheme evaluated in place (one array per output: these run over every normsys
    entry of every row, the largest arrays of a batch after the dense (R, P, S) ones).
    variations(mask) returns hi, lo at the entries selected by the boolean mask (R, K) for
    the exponential branch, which only entries with |alpha| >= 1 need. Without derivatives
    the slope and curvature are None.
    """
    inside = np.abs(alpha) < 1.0
    everywhere = inside.all()
    a = alpha if everywhere else np.where(inside, alpha, 0.0)
    c0, c1, c2, c3, c4, c5 = coeffs
    poly = c5 * a
    for c in (c4, c3, c2, c1, c0):
        poly += c
        poly *= a
    poly += 1.0
    if not derivatives:
        if not everywhere:
            out = ~inside
            hi, lo = variations(out)
            poly[out] = multiplicative("code1", alpha[out], hi, lo)[0]
        return poly, None, None
    d1 = (6.0 * c5) * a
    for k, c in ((5.0, c4), (4.0, c3), (3.0, c2), (2.0, c1)):
        d1 += k * c
        d1 *= a
    d1 += c0
    d2 = (30.0 * c5) * a
    for k, c in ((20.0, c4), (12.0, c3), (6.0, c2)):
        d2 += k * c
        d2 *= a
    d2 += 2.0 * c1
    if not everywhere:
        out = ~inside
        hi, lo = variations(out)
        poly[out], d1[out], d2[out] = multiplicative("code1", alpha[out], hi, lo)
    return poly, d1, d2


def additive(
    code: str,
    alpha: np.ndarray,
    up: np.ndarray,
    down: np.ndarray,
    derivatives: bool = True,
) -> tuple:
    """Shift of a yield for a histosys-like variation.

    up and down are the differences hi_data - nominal and nominal - lo_data. Without
    derivatives the slope and curvature are None.
    """
    if code == "code0":
        slope = np.where(alpha >= 0, up, down)
        return alpha * slope, slope, np.zeros_like(slope)
    if code == "code4p":
        outside = np.abs(alpha) > 1.0
        anywhere = outside.any()
        s = 0.5 * (up + down)
        a_coef = 0.0625 * (up - down)
        a = np.where(outside, 0.0, alpha) if anywhere else alpha
        a2 = a * a
        a4 = a2 * a2
        # delta = a*S + A*(15 a^2 - 10 a^4 + 3 a^6) inside |alpha| <= 1, linear outside.
        inner = a * s + a_coef * a2 * (15.0 - 10.0 * a2 + 3.0 * a4)
        if derivatives:
            inner_d1 = s + a_coef * a * (30.0 - 40.0 * a2 + 18.0 * a4)
            inner_d2 = a_coef * (30.0 - 120.0 * a2 + 90.0 * a4)
        if not anywhere:
            return (inner, inner_d1, inner_d2) if derivatives else (inner, None, None)
        slope = np.where(alpha >= 0, up, down)
        value = np.where(outside, alpha * slope, inner)
        if not derivatives:
            return value, None, None
        return value, np.where(outside, slope, inner_d1), np.where(outside, 0.0, inner_d2)
    raise ValueError(f"unknown additive interpolation code {code!r}")
