"""The portal's embedded HistFactory fitter: pure numpy/scipy, no Django.

Public API:
    compile_models(workspaces, measurement=None, codes=None) -> ModelBatch
    hypotest(model, options) -> list[PointResult]
    evaluate_points(workspaces, options, measurement, codes) -> list[PointResult] (one per
        workspace; a point that cannot be built or fitted gets its own `error`)
    compile_points(workspaces, measurement, codes) -> CompiledPoints (the batch without them)
    InferenceOptions, InterpolationCodes, FitOptions, PointResult, FitterError, ModelError
"""

from reinterpret.fitter.batch import CompiledPoints, compile_points, evaluate_points
from reinterpret.fitter.errors import FitterError, ModelError
from reinterpret.fitter.infer import ENGINE_VERSION, InferenceOptions, hypotest
from reinterpret.fitter.memory import collector_paused, keep_freed_memory
from reinterpret.fitter.model import InterpolationCodes, ModelBatch
from reinterpret.fitter.optimize import FitOptions
from reinterpret.fitter.results import PointResult
from reinterpret.fitter.spec import read_workspace, sample_keys

keep_freed_memory()


def compile_models(
    workspaces: list[dict], measurement: str | None = None, codes: InterpolationCodes | None = None
) -> ModelBatch:
    """Compile workspaces (plain dicts, already patched) that share channels into one batch."""
    cache: dict = {}
    with collector_paused():
        common = (
            frozenset(set.intersection(*(sample_keys(ws) for ws in workspaces)))
            if workspaces
            else None
        )
        specs = [read_workspace(ws, measurement, cache, common) for ws in workspaces]
        return ModelBatch(specs, codes)


__all__ = [
    "ENGINE_VERSION",
    "CompiledPoints",
    "FitOptions",
    "FitterError",
    "InferenceOptions",
    "InterpolationCodes",
    "ModelBatch",
    "ModelError",
    "PointResult",
    "compile_models",
    "compile_points",
    "evaluate_points",
    "hypotest",
]
