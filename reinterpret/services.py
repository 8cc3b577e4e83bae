"""Reinterpretation services: apply signal patches and run the fitter over many points,
in chunks that keep peak memory under a budget, reporting progress as it goes."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from hepstore import patching
from reinterpret.errors import PatchFailed, ReinterpretError
from reinterpret.fitter import (
    ENGINE_VERSION,
    FitterError,
    InferenceOptions,
    InterpolationCodes,
    PointResult,
    compile_models,
    hypotest,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Point:
    """A signal point to evaluate: its name and label values (None for a bare workspace)."""

    name: str | None
    values: tuple | None
    workspace: dict


@dataclass(frozen=True)
class Settings:
    measurement: str | None = None
    test_stat: str = "qtilde"
    mu_test: float = 1.0
    upper_limit: bool = False
    codes: InterpolationCodes = InterpolationCodes()
    memory_budget_mb: int = 2048

    def as_dict(self) -> dict:
        return {
            "test_statistic": self.test_stat,
            "calculator": "asymptotics",
            "mu_test": self.mu_test,
            "cl": 0.95,
            "interpolation": {"normsys": self.codes.normsys, "histosys": self.codes.histosys},
            "measurement": self.measurement,
            "upper_limit": self.upper_limit,
            "engine": f"hepstore-fitter {ENGINE_VERSION}",
        }


def apply_patch(workspace: dict, operations: list, name: str | None = None) -> dict:
    """The workspace with RFC 6902 operations applied (the input is not modified; the
    result shares untouched parts with it, which lets the fitter read them once)."""
    try:
        return patching.apply(workspace, operations)
    except patching.PatchError as exc:
        label = f"patch {name!r}" if name else "the patch"
        raise PatchFailed(f"{label} does not apply: {exc}") from exc


def patch_points(
    workspace: dict, patchset: dict, names: Sequence[str] | None = None
) -> list[Point]:
    """Points of a patchset (all, or those named, in the order named)."""
    patches = {p["metadata"]["name"]: p for p in patchset.get("patches", [])}
    if names:
        unknown = [n for n in names if n not in patches]
        if unknown:
            raise ReinterpretError(
                f"no patch named {', '.join(map(repr, unknown))} in the patchset"
            )
        chosen = [patches[n] for n in names]
    else:
        chosen = list(patches.values())
    return [
        Point(
            p["metadata"]["name"],
            tuple(p["metadata"].get("values", ())),
            apply_patch(workspace, p["patch"], p["metadata"]["name"]),
        )
        for p in chosen
    ]


def bytes_per_point(npars: int, nsb: int, nbins: int) -> int:
    """Rough peak memory of one row of a batched evaluation, in bytes (measured shapes)."""
    return 8 * (16 * npars * nsb + 6 * npars * npars + 4 * nsb + 4 * nbins) * 5


def evaluate(
    points: Sequence[Point],
    settings: Settings,
    progress: Callable[[int, int], None] | None = None,
) -> list[dict]:
    """Hypothesis test (and limits) for every point, in memory-bounded chunks."""
    if not points:
        return []
    options = InferenceOptions(
        test_stat=settings.test_stat, mu_test=settings.mu_test, upper_limit=settings.upper_limit
    )
    try:
        probe = compile_models([points[0].workspace], settings.measurement, settings.codes)
    except FitterError as exc:
        raise ReinterpretError(f"cannot build the model: {exc}") from exc
    per_point = bytes_per_point(probe.npars * 2, probe.nsb * 2, probe.nbins)
    chunk = max(1, min(len(points), settings.memory_budget_mb * 2**20 // per_point))
    out: list[dict] = []
    done = 0
    for start in range(0, len(points), chunk):
        part = points[start : start + chunk]
        try:
            model = compile_models(
                [p.workspace for p in part], settings.measurement, settings.codes
            )
            results = hypotest(model, options)
        except FitterError as exc:
            raise ReinterpretError(f"cannot evaluate the model: {exc}") from exc
        out += [result_dict(p, r, settings.upper_limit) for p, r in zip(part, results, strict=True)]
        done += len(part)
        if progress:
            progress(done, len(points))
    return out


def result_dict(point: Point, result: PointResult, upper_limit: bool) -> dict:
    data = {
        "patch": point.name,
        "values": list(point.values) if point.values is not None else None,
        "cls_obs": result.cls_obs,
        "cls_exp": list(result.cls_exp),
        "mu_hat": result.mu_hat,
        "mu_hat_error": result.mu_hat_error,
        "twice_nll": result.twice_nll,
        "converged": result.converged,
        "warnings": list(result.warnings),
    }
    if upper_limit:
        data["mu_up_obs"] = result.mu_up_obs
        data["mu_up_exp"] = list(result.mu_up_exp) if result.mu_up_exp else None
    return data
