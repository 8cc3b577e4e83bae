"""Asymptotic formulae for the profile-likelihood test statistics (Cowan, Cranmer, Gross,
Vitells 2011, arXiv:1007.1727), all vectorised over rows.

The observed statistic is mapped to t, in which the background-only distribution is a unit
normal and the signal-plus-background one a unit normal shifted by -sqrt(q_A):
  t = sqrt(q) - sqrt(q_A)                      for q-like statistics and for q~ when q <= q_A,
  t = (q - q_A) / (2 sqrt(q_A))                 for q~ when q > q_A.
CLs+b = Q(t + sqrt(q_A)), CLb = Q(t), CLs = CLs+b / CLb, with Q the unit-normal survival.
Expected values use t = n for n in (2, 1, 0, -1, -2), i.e. CLs from -2 sigma to +2 sigma.
"""

from __future__ import annotations

import numpy as np
from scipy.special import log_ndtr, ndtr, ndtri

TEST_STATISTICS = ("qtilde", "q", "q0")
EXPECTED_SIGMAS = np.array([2.0, 1.0, 0.0, -1.0, -2.0])


def survival(x: np.ndarray) -> np.ndarray:
    return ndtr(-x)


def log_survival(x: np.ndarray) -> np.ndarray:
    """log Q(x), accurate far in the tail (Q(40) ~ 1e-350 is below the smallest double)."""
    return log_ndtr(-x)


def t_value(q: np.ndarray, q_asimov: np.ndarray, test_stat: str) -> np.ndarray:
    sqrt_q = np.sqrt(np.maximum(q, 0.0))
    sqrt_qa = np.sqrt(np.maximum(q_asimov, 0.0))
    if test_stat != "qtilde":
        return sqrt_q - sqrt_qa
    with np.errstate(divide="ignore", invalid="ignore"):
        far = (q - q_asimov) / (2.0 * sqrt_qa)
    return np.where(sqrt_q <= sqrt_qa, sqrt_q - sqrt_qa, far)


def log_cls_from_t(t: np.ndarray, sqrt_qa: np.ndarray) -> tuple[np.ndarray, ...]:
    """(log CLs+b, log CLb, log CLs) for test-statistic values t with Asimov sqrt(q_A): the
    ratio is taken in log space, so that CLs of a huge signal (both tails far below 1e-300)
    is still a number."""
    log_clsb = log_survival(t + sqrt_qa)
    log_clb = log_survival(t)
    with np.errstate(invalid="ignore"):  # both tails -inf: NaN, see far_tail_log_cls
        return log_clsb, log_clb, log_clsb - log_clb


def cls_from_t(t: np.ndarray, sqrt_qa: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(CLs+b, CLb, CLs) for test-statistic values t with Asimov sqrt(q_A); values below the
    smallest double are 0."""
    return tuple(np.exp(x) for x in log_cls_from_t(t, sqrt_qa))


# Beyond this t the q~ CLs is taken from its tail expansion (far_tail_log_cls).
FAR_TAIL = 1e4


def far_tail_log_cls(q: np.ndarray, t: np.ndarray, sqrt_qa: np.ndarray) -> np.ndarray:
    """log CLs of q~ for t = (q - q_A) / (2 sqrt(q_A)) far in the tail (t >> 1), where the
    ratio of the two normal tails is exp(-(s t + s^2 / 2)) t / (t + s) (s = sqrt(q_A)) and
    s t + s^2 / 2 = q / 2. Unlike the tails themselves this stays a number as q_A -> 0
    (t -> inf, no sensitivity left): there CLs -> exp(-q / 2)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(np.isfinite(t), np.log(t / (t + sqrt_qa)), 0.0)
    return -0.5 * q + ratio


def observed_and_expected(q: np.ndarray, q_asimov: np.ndarray, test_stat: str):
    """CLs observed (R,) and expected (R, 5), -2 sigma .. +2 sigma.

    For the discovery statistic q0 the values are instead the p-values of the
    background-only hypothesis (p0), observed and expected.
    """
    sqrt_qa = np.sqrt(np.maximum(q_asimov, 0.0))
    which = 0 if test_stat == "q0" else 2
    t = t_value(q, q_asimov, test_stat)
    log_obs = log_cls_from_t(t, sqrt_qa)[which]
    if test_stat == "qtilde":
        log_obs = np.where(t > FAR_TAIL, far_tail_log_cls(q, t, sqrt_qa), log_obs)
    obs = np.exp(log_obs)
    t_exp = EXPECTED_SIGMAS[None, :] + 0.0 * sqrt_qa[:, None]
    exp = cls_from_t(t_exp, sqrt_qa[:, None])[which]
    return obs, exp


def expected_limit_guess(sigma: np.ndarray, level: float = 0.05) -> np.ndarray:
    """Expected upper limits (R, 5) if sqrt(q_A(mu)) = mu / sigma held exactly."""
    n = EXPECTED_SIGMAS[None, :]
    target = level * survival(n)
    return sigma[:, None] * (ndtri(1.0 - target) - n)
