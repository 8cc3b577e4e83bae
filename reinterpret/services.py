"""Reinterpretation services: apply signal patches and run the fitter over many points,
in chunks that keep peak memory under a budget, reporting progress as it goes."""

from __future__ import annotations

import logging
import re
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
            # A lone first point is the model already compiled to size the chunks.
            model = (
                probe
                if len(part) == 1 and start == 0
                else compile_models(
                    [p.workspace for p in part], settings.measurement, settings.codes
                )
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


# --------------------------------------------------------------------------- web services
# Everything below works on archived likelihoods (Django models); the functions above only
# on plain workspaces.


def service_settings(upper_limit: bool = True) -> Settings:
    from django.conf import settings as dj

    return Settings(upper_limit=upper_limit, memory_budget_mb=dj.REINTERPRET_MEMORY_BUDGET_MB)


def cache_key(background_digest: str, patch_digest: str, settings: Settings) -> tuple[str, dict]:
    from hepstore.jsonio import canonical_sha256

    inputs = {
        "background_sha256": background_digest,
        "patch_sha256": patch_digest,
        "settings": settings.as_dict(),
    }
    return canonical_sha256(inputs), inputs


def cached_evaluation(
    likelihood,
    operations: list | None,
    signal_name: str = "",
    values=None,
    patch_digest: str | None = None,
) -> tuple[dict, bool]:
    """Result for the background-only workspace patched by operations: from the cache when
    the same inputs and settings were evaluated before, else computed and stored.

    Give patch_digest (the sha256 of the canonical operations, which is also their blob
    name) to look the cache up without the operations; they are then read only on a miss.
    Returns (result, served_from_cache)."""
    import time

    from hepstore import blobs
    from hepstore.jsonio import canonical_sha256
    from reinterpret.models import CachedResult

    settings = service_settings()
    if patch_digest is None:
        patch_digest = canonical_sha256(operations)
    key, inputs = cache_key(likelihood.background_id, patch_digest, settings)
    hit = CachedResult.objects.filter(key=key).first()
    if hit is not None:
        return hit.result, True
    if operations is None:
        operations = blobs.read_json(patch_digest)
    bkg = blobs.read_json(likelihood.background_id)
    point = Point(
        signal_name or None,
        tuple(values) if values is not None else None,
        apply_patch(bkg, operations, signal_name or None),
    )
    t0 = time.perf_counter()
    (result,) = evaluate([point], settings)
    seconds = time.perf_counter() - t0
    result = {
        **result,
        "settings": settings.as_dict(),
        "inputs": inputs,
        "seconds": round(seconds, 4),
    }
    CachedResult.objects.get_or_create(
        key=key,
        defaults={
            "likelihood": likelihood,
            "signal": signal_name,
            "result": result,
            "inputs": inputs,
            "seconds": seconds,
        },
    )
    return result, False


def archived_point_result(likelihood, name: str) -> tuple[dict, bool]:
    from hepstore.errors import NotFound

    point = likelihood.signals.filter(name=name).first()
    if point is None:
        raise NotFound(f"no signal point {name!r} in this likelihood")
    return cached_evaluation(likelihood, None, name, point.values, patch_digest=point.patch_id)


_CHANNEL_SET_PATH = re.compile(r"^/(channels|observations)/(\d+|-)$")


def channel_set_ops(operations: list) -> list[dict]:
    """The operations of a patch that add or remove whole channels (or their observations)."""
    return [
        op
        for op in operations
        if isinstance(op, dict) and _CHANNEL_SET_PATH.match(str(op.get("path", "")))
    ]


def published_channel_set(workspace: dict, patches: list[list]) -> dict:
    """How the published signal points change the background-only channel set, from the
    patches of some of them (first, middle, last): {"operations": [...], "removed": [names],
    "added": [names], "note": text}. When the points disagree, nothing is changed."""
    found = [channel_set_ops(ops) for ops in patches]
    names = [c["name"] for c in workspace["channels"]]
    if not found or any(f != found[0] for f in found[1:]):
        note = (
            "the published points change the channel set differently; the custom signal is "
            "fitted on every channel of the background-only workspace"
            if found
            else "no published point to compare with: every background-only channel is used"
        )
        return {"operations": [], "removed": [], "added": [], "note": note}
    ops = found[0]
    removed = [
        names[int(m.group(2))]
        for op in ops
        if op.get("op") == "remove"
        and (m := _CHANNEL_SET_PATH.match(op["path"]))
        and m.group(1) == "channels"
        and m.group(2).isdigit()
        and int(m.group(2)) < len(names)
    ]
    added = [
        op["value"].get("name", "?")
        for op in ops
        if op.get("op") == "add"
        and op["path"].startswith("/channels/")
        and isinstance(op.get("value"), dict)
    ]
    if removed or added:
        note = (
            "as every published signal point does, the fit "
            + (f"leaves out {', '.join(removed)}" if removed else "")
            + (" and " if removed and added else "")
            + (f"adds {', '.join(added)}" if added else "")
            + " (the published patches change the background-only channel set this way)"
        )
    else:
        note = "the published signal points use every background-only channel; so does this fit"
    return {"operations": ops, "removed": removed, "added": added, "note": note}


def likelihood_channel_set(likelihood, workspace: dict) -> dict:
    """published_channel_set from the first, middle and last archived signal point."""
    from hepstore import blobs

    count = likelihood.signals.count()
    if not count:
        return published_channel_set(workspace, [])
    picks = sorted({0, count // 2, count - 1})
    digests = [likelihood.signals.order_by("index")[i].patch_id for i in picks]
    return published_channel_set(workspace, [blobs.read_json(d) for d in digests if d])


def store_patch(operations: list) -> str:
    """Keep a custom signal's operations as a blob (named by their sha256, the digest its
    result is cached under), so that its point view can be shown again later."""
    from hepstore.blobs import BlobWriter
    from hepstore.models import Blob

    sha, size = BlobWriter().put_json(operations)
    Blob.objects.get_or_create(sha256=sha, defaults={"size": size})
    return sha


def custom_signal_patch(
    workspace: dict, payload: dict, channel_set: dict | None = None
) -> list[dict]:
    """JSON Patch operations for a theorist's signal, or the expert's raw operations.

    payload: {"signal": {channel: [yields]}, "modifiers": [extra modifiers]} or
    {"patch": [operations]}. The signal sample gets the POI normfactor and the luminosity
    modifier of the analysis, as published signal patches do, and the channel set is changed
    as channel_set (from published_channel_set) says the published points change it. Raises
    ReinterpretError with a problem per mistake.
    """
    import math

    if "patch" in payload:
        if not isinstance(payload["patch"], list) or not payload["patch"]:
            raise ReinterpretError("'patch' must be a non-empty list of JSON Patch operations")
        return payload["patch"]
    signal = payload.get("signal")
    if not isinstance(signal, dict) or not signal:
        raise ReinterpretError("give 'signal': {channel: [yields per bin]} or 'patch': [...]")
    measurement = workspace["measurements"][0]["config"]
    channels = {c["name"]: i for i, c in enumerate(workspace["channels"])}
    nbins = {o["name"]: len(o["data"]) for o in workspace["observations"]}
    lumi = next(
        (
            m["name"]
            for c in workspace["channels"]
            for s in c["samples"]
            for m in s["modifiers"]
            if m["type"] == "lumi"
        ),
        None,
    )
    problems = []
    removed = set((channel_set or {}).get("removed", []))
    for channel, yields in signal.items():
        ptr = f"/signal/{channel}"
        if channel in removed:
            problems.append(
                {
                    "pointer": ptr,
                    "severity": "error",
                    "message": f"channel {channel!r} is left out of the fit by every published "
                    "signal point (not a signal region of this likelihood); put the signal in "
                    f"the others: {sorted(set(channels) - removed)}",
                }
            )
            continue
        if channel not in channels:
            problems.append(
                {
                    "pointer": ptr,
                    "severity": "error",
                    "message": f"unknown channel {channel!r}; the channels are {sorted(channels)}",
                }
            )
            continue
        if not isinstance(yields, list) or len(yields) != nbins[channel]:
            n = len(yields) if isinstance(yields, list) else "no list of"
            problems.append(
                {
                    "pointer": ptr,
                    "severity": "error",
                    "message": f"channel {channel!r} has {nbins[channel]} bins, got {n} yields",
                }
            )
            continue
        for i, y in enumerate(yields):
            if (
                not isinstance(y, int | float)
                or isinstance(y, bool)
                or not math.isfinite(y)
                or y < 0
            ):
                problems.append(
                    {
                        "pointer": f"{ptr}/{i}",
                        "severity": "error",
                        "message": f"yield {y!r} must be a finite number >= 0",
                    }
                )
    extra = payload.get("modifiers", [])
    if not isinstance(extra, list):
        problems.append(
            {
                "pointer": "/modifiers",
                "severity": "error",
                "message": "'modifiers' must be a list of HistFactory modifiers",
            }
        )
        extra = []
    from hepstore.schemas import fragment_errors

    for i, mod in enumerate(extra):
        for err in fragment_errors("modifier", mod):
            problems.append(
                {"pointer": f"/modifiers/{i}", "severity": "error", "message": err.message}
            )
    if problems:
        raise ReinterpretError("the signal is not usable", problems)
    modifiers = [{"name": measurement["poi"], "type": "normfactor", "data": None}]
    if lumi:
        modifiers.append({"name": lumi, "type": "lumi", "data": None})
    ops = []
    for channel, yields in signal.items():
        sample = {
            "name": "custom_signal",
            "data": [float(y) for y in yields],
            "modifiers": modifiers
            + [m for m in extra if m["type"] != "staterror" or len(m["data"]) == len(yields)],
        }
        ops.append(
            {"op": "add", "path": f"/channels/{channels[channel]}/samples/0", "value": sample}
        )
    return ops + list((channel_set or {}).get("operations", []))


def is_small(likelihood) -> bool:
    """Small enough to answer a single fit synchronously within a request."""
    summary = likelihood.summary or {}
    return (summary.get("bins") or 0) * (summary.get("parameters") or 0) <= 20000


def point_yields(likelihood, name: str) -> dict:
    """Pre- and post-fit yields per channel and sample for an archived signal point."""
    from hepstore.services import patched_workspace
    from reinterpret.fitter import compile_models
    from reinterpret.fitter.infer import fitted_yields

    workspace = patched_workspace(likelihood, name)
    try:
        model = compile_models([workspace])
    except FitterError as exc:
        raise ReinterpretError(f"cannot build the model: {exc}") from exc
    return fitted_yields(model)
