"""Reinterpretation services: apply signal patches and run the fitter over many points,
in chunks that keep peak memory under a budget, reporting progress as it goes."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from hepstore import patching
from reinterpret.errors import PatchFailed, PointNotEvaluable, ReinterpretError
from reinterpret.fitter import (
    ENGINE_VERSION,
    FitterError,
    InferenceOptions,
    InterpolationCodes,
    PointResult,
    evaluate_points,
    kernel,
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

    def __post_init__(self) -> None:
        if self.test_stat == "q0":  # the discovery test is at mu = 0 (InferenceOptions)
            object.__setattr__(self, "mu_test", 0.0)

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


# With a progress callback, results come in about this many steps of at least this many points.
PROGRESS_STEPS = 20
PROGRESS_MIN_CHUNK = 16


def bytes_per_point(npars: int, nsb: int, upper_limit: bool) -> int:
    """Peak memory a batch needs per point, in bytes, for a model of npars parameters and
    nsb sample-bins. The fits and evaluations work in blocks of bounded size (optimize,
    ModelBatch.tile_rows); what grows with the points is the compiled model (modifier data
    per sample-bin) and the Hessians kept per fit: two for CLs, a dozen in the limit search's
    rounds. Measured (growth of VmHWM over one whole patchset in one batch, 2026-11-26):
    sbottom / staus / 1lbb 0.30 / 0.81 / 2.3 MB per point for CLs, 0.72 / 2.2 / 3.6 MB with
    the limits; the model below lies 1.3-2.3x above each."""
    per_hessian = 24 if upper_limit else 6
    return 8 * (per_hessian * npars * npars + 18 * npars * nsb)


def evaluate(
    points: Sequence[Point],
    settings: Settings,
    progress: Callable[[int, int], None] | None = None,
) -> list[dict]:
    """Hypothesis test (and limits) for every point, in memory-bounded chunks.

    A point that cannot be built or fitted gets its own result with `error` set (and every
    number null); the other points are computed all the same."""
    if not points:
        return []
    try:
        options = InferenceOptions(
            test_stat=settings.test_stat, mu_test=settings.mu_test, upper_limit=settings.upper_limit
        )
    except FitterError as exc:
        raise ReinterpretError(str(exc)) from exc
    chunk = _chunk_size(points, settings) if len(points) > 1 else 1
    if progress is not None:
        # Someone watches: about PROGRESS_STEPS updates, however many points a batch could
        # hold (smaller batches cost a few percent).
        chunk = min(chunk, max(PROGRESS_MIN_CHUNK, -(-len(points) // PROGRESS_STEPS)))
    out: list[dict] = []
    done = 0
    for start in range(0, len(points), chunk):
        part = points[start : start + chunk]
        results = evaluate_points(
            [p.workspace for p in part], options, settings.measurement, settings.codes
        )
        for p, r in zip(part, results, strict=True):
            if r.error is not None:
                log.debug("point %s not evaluated: %s", p.name, r.error)
            out.append(result_dict(p, r, settings.upper_limit))
        done += len(part)
        if progress:
            progress(done, len(points))
    return out


def _chunk_size(points: Sequence[Point], settings: Settings) -> int:
    """Points per batch under the memory budget, sized on the first point whose model size
    can be read (compiling it alone to size the batch cost staus 3 % of its time)."""
    for point in points:
        size = model_size(point.workspace)
        if size is not None:
            per_point = bytes_per_point(*size, settings.upper_limit)
            return max(1, min(len(points), settings.memory_budget_mb * 2**20 // per_point))
    return len(points)  # none can be read: each gets its error, no fit runs


def model_size(workspace: dict) -> tuple[int, int] | None:
    """(parameters, sample-bins) of the model of a workspace, counted from its modifiers'
    names and types without compiling it (one per bin for staterror, shapesys and
    shapefactor); None for a workspace too malformed to count."""
    try:
        nbins = {o["name"]: len(o["data"]) for o in workspace["observations"]}
        sizes: dict[str, int] = {}
        nsb = 0
        for channel in workspace["channels"]:
            n = nbins.get(channel["name"], 0)
            for sample in channel["samples"]:
                nsb += n
                for mod in sample.get("modifiers", []):
                    per_bin = mod["type"] in ("staterror", "shapesys", "shapefactor")
                    sizes[mod["name"]] = n if per_bin else 1
    except (KeyError, TypeError, AttributeError):
        return None
    return sum(sizes.values()), nsb


def result_dict(point: Point, result: PointResult, upper_limit: bool) -> dict:
    """The JSON form of a point's result (CLI, API, database): numbers or null, a reason
    for every null in `null_reasons`, and `error` for a point that could not be evaluated."""
    data = {
        "patch": point.name,
        "values": list(point.values) if point.values is not None else None,
        "cls_obs": result.cls_obs,
        "cls_exp": list(result.cls_exp),
        "mu_hat": result.mu_hat,
        "mu_hat_error": result.mu_hat_error,
        "twice_nll": result.twice_nll,
        "converged": result.converged,
        "start_spread": result.start_spread,
        "warnings": list(result.warnings),
        "null_reasons": dict(result.null_reasons),
        "error": result.error,
    }
    if upper_limit:
        data["mu_up_obs"] = result.mu_up_obs
        data["mu_up_exp"] = list(result.mu_up_exp) if result.mu_up_exp else [None] * 5
        data["limit_above_poi_bound"] = result.limit_above_poi_bound
        data["limit_above_poi_bound_exp"] = list(result.limit_above_poi_bound_exp or [False] * 5)
        data["limits_converged"] = result.limits_converged
        data["poi_upper_bound"] = result.poi_upper_bound
    # Reasons for the numbers shown (not for q_obs, q_asimov, nor limits not asked for).
    data["null_reasons"] = {k: v for k, v in result.null_reasons.items() if k.split("[")[0] in data}
    return data


SIGMA_LABELS = ("−2σ", "−1σ", "median", "+1σ", "+2σ")


def shown_numbers(result: dict) -> dict:
    """How a result's numbers read on a page: each as {"value": float | None, "text": str,
    "reason": str, "above": bool} where text is "> 10" for a limit above the POI bound of 10
    (above) and "—" for a null (reason then says why). Keys: cls_obs, mu_hat, mu_hat_error,
    twice_nll, mu_up_obs (None without limits), and "band": rows (label, CLs, limit) from
    −2σ to +2σ."""
    reasons = result.get("null_reasons") or {}
    error = result.get("error")
    bound = result.get("poi_upper_bound")

    def number(key: str, digits: int, above: bool = False) -> dict:
        base = key.split("[")[0]
        value = result.get(base)
        if "[" in key and value is not None:
            value = value[int(key[key.index("[") + 1 : -1])]
        if above and bound is not None:
            why = reasons.get(key, "")
            return {"value": None, "text": f"> {bound:g}", "reason": why, "above": True}
        if value is None:
            why = reasons.get(key) or error or ""
            return {"value": None, "text": "—", "reason": why, "above": False}
        return {"value": value, "text": f"{value:.{digits}f}", "reason": "", "above": False}

    above_exp = result.get("limit_above_poi_bound_exp") or [False] * 5
    limits = "mu_up_obs" in result
    return {
        "cls_obs": number("cls_obs", 4),
        "mu_hat": number("mu_hat", 4),
        "mu_hat_error": number("mu_hat_error", 3),
        "twice_nll": number("twice_nll", 4),
        "mu_up_obs": number("mu_up_obs", 4, bool(result.get("limit_above_poi_bound")))
        if limits
        else None,
        "band": [
            (
                label,
                number(f"cls_exp[{i}]", 5),
                number(f"mu_up_exp[{i}]", 4, above_exp[i]) if limits else None,
            )
            for i, label in enumerate(SIGMA_LABELS)
        ],
    }


# --------------------------------------------------------------------------- web services
# Everything below works on archived likelihoods (Django models); the functions above only
# on plain workspaces.


# Bumped when the shape of a stored result changes, so that no older shape is served from the
# cache (2: nullable numbers with null_reasons, error, limit_above_poi_bound).
RESULT_FORMAT = 2


def service_settings(upper_limit: bool = True) -> Settings:
    from django.conf import settings as dj

    return Settings(upper_limit=upper_limit, memory_budget_mb=dj.REINTERPRET_MEMORY_BUDGET_MB)


def cache_key(background_digest: str, patch_digest: str, settings: Settings) -> tuple[str, dict]:
    from hepstore.jsonio import canonical_sha256

    inputs = {
        "background_sha256": background_digest,
        "patch_sha256": patch_digest,
        "settings": settings.as_dict(),
        "result_format": RESULT_FORMAT,
    }
    return canonical_sha256(inputs), inputs


def cached_evaluation(
    likelihood,
    operations: list | None,
    signal_name: str = "",
    values=None,
    patch_digest: str | None = None,
    keep_errors: bool = False,
) -> tuple[dict, bool]:
    """Result for the background-only workspace patched by operations: from the cache when
    the same inputs and settings were evaluated before, else computed and stored.

    A point that cannot be evaluated raises PointNotEvaluable (a custom signal: the user's
    to fix), or with keep_errors (an archived point) is a result with `error` set.

    Give patch_digest (the sha256 of the canonical operations, which is also their blob
    name) to look the cache up without the operations; they are then read only on a miss.
    Returns (result, served_from_cache)."""
    import time

    from hepstore import blobs
    from hepstore.jsonio import canonical_sha256
    from reinterpret.models import CachedResult

    settings = service_settings()
    point_digest = patch_digest
    if patch_digest is None:
        patch_digest = canonical_sha256(operations)
    key, inputs = cache_key(likelihood.background_id, patch_digest, settings)
    hit = CachedResult.objects.fresh().filter(key=key).first()
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
    kernel.warm_up()  # the compiled kernel's loading is no part of this fit's CPU time
    t0, cpu0 = time.perf_counter(), time.thread_time()
    (result,) = evaluate([point], settings)
    seconds, cpu_seconds = time.perf_counter() - t0, time.thread_time() - cpu0
    if result["error"] is not None and not keep_errors:
        raise PointNotEvaluable(f"the signal cannot be evaluated: {result['error']}")
    result = {
        **result,
        "settings": settings.as_dict(),
        "inputs": inputs,
        "seconds": round(seconds, 4),
    }
    from django.conf import settings as dj

    from reinterpret.models import custom_cache_expiry

    # Archived points (looked up by their patch's digest) are kept; custom signals expire.
    custom = point_digest is None
    CachedResult.objects.update_or_create(
        key=key,
        defaults={
            "likelihood": likelihood,
            "signal": signal_name,
            "result": result,
            "inputs": inputs,
            "seconds": seconds,
            "cpu_seconds": cpu_seconds,
            "expires": custom_cache_expiry() if custom else None,
        },
    )
    if custom:
        CachedResult.objects.prune(dj.REINTERPRET_CUSTOM_CACHE_MAX_ENTRIES)
    return result, False


def archived_point_result(likelihood, name: str) -> tuple[dict, bool]:
    from hepstore.errors import NotFound

    point = likelihood.signals.filter(name=name).first()
    if point is None:
        raise NotFound(f"no signal point {name!r} in this likelihood")
    return cached_evaluation(
        likelihood, None, name, point.values, patch_digest=point.patch_id, keep_errors=True
    )


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
                or not 0 <= y <= MAX_SIGNAL_YIELD
            ):
                problems.append(
                    {
                        "pointer": f"{ptr}/{i}",
                        "severity": "error",
                        "message": f"yield {y!r} must be a number from 0 to "
                        f"{MAX_SIGNAL_YIELD:g} events",
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
        errors = list(fragment_errors("modifier", mod))
        for err in errors:
            problems.append(
                {"pointer": f"/modifiers/{i}", "severity": "error", "message": err.message}
            )
        if not errors:
            problems += _per_bin_problems(mod, f"/modifiers/{i}", signal, nbins)
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
            "modifiers": modifiers + extra,
        }
        ops.append(
            {"op": "add", "path": f"/channels/{channels[channel]}/samples/0", "value": sample}
        )
    return ops + list((channel_set or {}).get("operations", []))


# Largest accepted custom signal yield per bin (events). The fit works in double precision:
# beside a background of O(1) events, a larger yield leaves the background below the
# precision of the sum (1e12 * 2**-52 ~ 2e-4 events), and far larger ones overflow.
MAX_SIGNAL_YIELD = 1e12


def _per_bin_problems(mod: dict, ptr: str, signal: dict, nbins: dict) -> list[dict]:
    """A per-bin modifier added to the custom signal must have one value per bin of every
    channel the signal is given in."""
    arrays = {
        "shapesys": {"data": mod["data"]},
        "staterror": {"data": mod["data"]},
        "histosys": {k: mod["data"].get(k) for k in ("hi_data", "lo_data")}
        if isinstance(mod["data"], dict)
        else {},
    }.get(mod["type"], {})
    problems = []
    for key, values in arrays.items():
        for channel in signal:
            n = nbins.get(channel)
            if n is not None and isinstance(values, list) and len(values) != n:
                where = f"{ptr}/data" if key == "data" else f"{ptr}/data/{key}"
                problems.append(
                    {
                        "pointer": where,
                        "severity": "error",
                        "message": f"{mod['type']} {mod['name']!r} has {len(values)} values "
                        f"but channel {channel!r} has {n} bins",
                    }
                )
    return problems


def check_custom_workspace(workspace: dict) -> None:
    """Refuse (ReinterpretError, one problem each) a workspace patched by a user's signal or
    raw patch that the archive's validator would refuse: schema, lengths, bounds, POI."""
    from hepstore.validation import Report, check_schema, check_workspace

    report = Report()
    if check_schema(workspace, "workspace", report, "patched workspace"):
        check_workspace(
            workspace, report, "patched workspace", True, orphan_observations_are_errors=False
        )
        # Yields the fit cannot hold in double precision (see MAX_SIGNAL_YIELD).
        for c, channel in enumerate(workspace["channels"]):
            for s, sample in enumerate(channel["samples"]):
                for b, value in enumerate(sample["data"]):
                    if not abs(value) <= MAX_SIGNAL_YIELD:
                        report.error(
                            "patched workspace",
                            f"/channels/{c}/samples/{s}/data/{b}",
                            f"yield {value:g} of sample {sample['name']!r} is beyond "
                            f"{MAX_SIGNAL_YIELD:g} events",
                        )
    errors = [p for p in report.problems if p.severity == "error"]
    if errors:
        raise ReinterpretError(
            "the patched workspace is not valid",
            [{"pointer": p.pointer, "severity": p.severity, "message": p.message} for p in errors],
        )


def fits_synchronously(likelihood) -> bool:
    """Whether one fit of this likelihood may run inside a request: the CPU time of its
    recent fits is within REINTERPRET_SYNC_FIT_CPU_SECONDS (before any was measured: the
    size rule of is_small)."""
    from django.conf import settings as dj

    from reinterpret.models import CachedResult

    recent = list(
        CachedResult.objects.filter(likelihood=likelihood, cpu_seconds__gt=0)
        .order_by("-created", "-id")
        .values_list("cpu_seconds", flat=True)[:20]
    )
    if not recent:
        return is_small(likelihood)
    return max(recent) <= dj.REINTERPRET_SYNC_FIT_CPU_SECONDS


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
