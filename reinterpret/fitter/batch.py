"""Evaluate many points at once while keeping each point's failure its own.

A point that cannot be read into a model (say an empty signal patch: no sample carries the
parameter of interest) or whose fits cannot run gets a PointResult with `error`; the batch is
compiled and fitted without it, so one bad point never costs the others their results.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from reinterpret.fitter.errors import FitterError
from reinterpret.fitter.infer import InferenceOptions, hypotest
from reinterpret.fitter.memory import collector_paused
from reinterpret.fitter.model import InterpolationCodes, ModelBatch
from reinterpret.fitter.results import PointResult
from reinterpret.fitter.spec import WorkspaceSpec, read_workspace, sample_keys

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CompiledPoints:
    """The batch of the points that could be built; `indices[r]` is the input position of
    model row r, `errors` maps the input position of every point that cannot be built to its
    reason, `deferred` lists the points that build alone but not in this batch (say with
    other channels): they need a batch of their own."""

    model: ModelBatch | None
    indices: tuple[int, ...]
    errors: dict[int, str]
    deferred: tuple[int, ...] = ()


# What compiling a workspace that skipped validation may raise besides ModelError; each is
# turned into that point's error (with the exact place found by a checked re-read).
_MALFORMED = (FitterError, KeyError, TypeError, ValueError, IndexError, AttributeError)


def read_specs(
    workspaces: list[dict], measurement: str | None = None, check_data: bool = False
) -> tuple[dict[int, WorkspaceSpec], dict[int, str]]:
    """The spec of each workspace that can be read, and the reason for each that cannot
    (both keyed by position). Shares what the workspaces share, as compile_models does."""
    cache: dict = {}
    specs: dict[int, WorkspaceSpec] = {}
    errors: dict[int, str] = {}
    keys = []
    for ws in workspaces:
        try:
            keys.append(sample_keys(ws))
        except (KeyError, TypeError, AttributeError):
            keys.append(set())  # read_workspace below says what is wrong with it
    common = frozenset(set.intersection(*keys)) if keys else frozenset()
    for i, ws in enumerate(workspaces):
        try:
            specs[i] = read_workspace(ws, measurement, cache, common, check_data)
        except FitterError as exc:
            errors[i] = _where(exc)
    return specs, errors


def _where(exc: Exception) -> str:
    pointer = getattr(exc, "pointer", None)
    return f"{exc} (at {pointer})" if pointer else str(exc)


def compile_points(
    workspaces: list[dict],
    measurement: str | None = None,
    codes: InterpolationCodes | None = None,
) -> CompiledPoints:
    """Compile the workspaces (plain dicts, already patched) that can be compiled into one
    batch; the others are left out with their reasons."""
    with collector_paused():
        # The specs read on the way are dropped (with _compile's frame) before the collector
        # resumes: its first pass then scans the compiled batch only, not every object read
        # (which had cost 5 ms for staus's 57 points, 30 ms for 1lbb's 125).
        return _compile(workspaces, measurement, codes)


def _compile(workspaces, measurement, codes) -> CompiledPoints:
    """compile_points' work (see there)."""
    specs, errors = read_specs(workspaces, measurement)
    if not specs:
        return CompiledPoints(None, (), errors)
    order = sorted(specs)
    try:
        return CompiledPoints(ModelBatch([specs[i] for i in order], codes), tuple(order), errors)
    except _MALFORMED as exc:
        log.info("the batch does not compile (%r); finding the points at fault", exc)
    # Rare: read the points again with every modifier's data checked, keep those that
    # compile alone, and of them the points that compile with the first ones kept.
    checked, more = read_specs([workspaces[i] for i in order], measurement, check_data=True)
    errors.update({order[k]: why for k, why in more.items()})
    alone = {}
    for k, spec in checked.items():
        try:
            ModelBatch([spec], codes)
            alone[order[k]] = spec
        except _MALFORMED as exc:
            errors[order[k]] = str(exc) if isinstance(exc, FitterError) else repr(exc)
    if not alone:
        return CompiledPoints(None, (), errors)
    try:
        return CompiledPoints(ModelBatch(list(alone.values()), codes), tuple(alone), errors)
    except _MALFORMED as exc:
        log.info("the points do not fit in one batch (%r)", exc)
    # Rarer still: points that do not fit together. Keep those that fit with the first
    # ones kept (one compilation per point), defer the others to a batch of their own.
    kept: list[int] = []
    deferred: list[int] = []
    for i in alone:
        try:
            ModelBatch([alone[j] for j in [*kept, i]], codes)
            kept.append(i)
        except _MALFORMED:
            deferred.append(i)
    model = ModelBatch([alone[i] for i in kept], codes)
    return CompiledPoints(model, tuple(kept), errors, tuple(deferred))


def evaluate_points(
    workspaces: list[dict],
    options: InferenceOptions | None = None,
    measurement: str | None = None,
    codes: InterpolationCodes | None = None,
) -> list[PointResult]:
    """One PointResult per workspace, in order (index = position in the input); a point that
    cannot be built or fitted has `error` set and no numbers."""
    options = options or InferenceOptions()
    compiled = compile_points(workspaces, measurement, codes)
    out: dict[int, PointResult] = {
        i: PointResult.failed(i, f"cannot build the model: {why}", options.upper_limit)
        for i, why in compiled.errors.items()
    }
    if compiled.model is not None:
        try:
            results = hypotest(compiled.model, options)
        except FitterError as exc:
            results = None
            if len(compiled.indices) == 1:
                results = [PointResult.failed(0, f"cannot fit: {exc}", options.upper_limit)]
            else:
                log.info(
                    "a batch of %d points failed (%s); fitting them one by one",
                    len(compiled.indices),
                    exc,
                )
        if results is None:
            # One by one: a failure then stays with the point that causes it.
            for i in compiled.indices:
                (out[i],) = evaluate_points([workspaces[i]], options, measurement, codes)
        else:
            out.update(zip(compiled.indices, results, strict=True))
    if compiled.deferred:
        later = [workspaces[i] for i in compiled.deferred]
        for i, result in zip(
            compiled.deferred, evaluate_points(later, options, measurement, codes), strict=True
        ):
            out[i] = result
    # Results carry their position in the input.
    return [replace(out[i], index=i) for i in range(len(workspaces))]
