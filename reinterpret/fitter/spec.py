"""Read a HistFactory 1.0.0 workspace (a plain dict) into the parameter and modifier lists
that model.py turns into arrays. Pure Python: no arrays of model size are built here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from reinterpret.fitter.errors import ModelError

NO_SETTINGS: dict = {}  # a parameter the measurement says nothing about (never modified)

# Modifier types whose parameter multiplies the yield linearly.
LINEAR_TYPES = ("normfactor", "shapefactor", "lumi", "staterror", "shapesys")


@dataclass
class ParameterSpec:
    """One named parameter set (a scalar, or one component per bin for per-bin modifiers)."""

    name: str
    kind: str  # "free", "gauss" or "poisson"
    size: int
    inits: list[float]
    bounds: list[tuple[float, float]]
    fixed: list[bool]
    aux: list[float] = field(default_factory=list)
    sigmas: list[float] = field(default_factory=list)
    factors: list[float] = field(default_factory=list)  # Poisson constraint scale tau per bin
    modifier_types: set[str] = field(default_factory=set)


@dataclass
class SampleSpec:
    channel: str
    name: str
    offset: int  # first global bin of the channel
    nominal: list[float]
    # (parameter name, component offset, modifier type, data) per modifier.
    modifiers: list[tuple[str, str, object]]


@dataclass
class WorkspaceSpec:
    channels: list[tuple[str, int]]
    observations: dict[str, list[float]]
    samples: list[SampleSpec]
    parameters: dict[str, ParameterSpec]
    poi: str


def choose_measurement(workspace: dict, measurement: str | None) -> dict:
    measurements = workspace.get("measurements") or []
    if not measurements:
        raise ModelError("the workspace has no measurement")
    if measurement is None:
        return measurements[0]
    for candidate in measurements:
        if candidate.get("name") == measurement:
            return candidate
    names = ", ".join(m.get("name", "?") for m in measurements)
    raise ModelError(f"no measurement named {measurement!r} (the workspace has: {names})")


def sample_keys(workspace: dict) -> set[tuple]:
    """Identity keys of a workspace's sample objects in their places (see read_workspace)."""
    keys, offset = set(), 0
    nbins = {o["name"]: len(o["data"]) for o in workspace.get("observations", [])}
    for channel in workspace.get("channels", []):
        n = nbins.get(channel["name"], 0)
        keys.update((id(sample), channel["name"], offset, n) for sample in channel["samples"])
        offset += n
    return keys


class _Requirements:
    """Per parameter name: the (modifier type, info) of every modifier naming it, in the
    order met, and the set of those types."""

    def __init__(self) -> None:
        self.reqs: dict[str, list[tuple[str, dict]]] = {}
        self.types: dict[str, set[str]] = {}

    def add(self, grouped: dict[str, list[tuple[str, dict]]]) -> None:
        for name, entries in grouped.items():
            known = self.reqs.get(name)
            if known is None:
                self.reqs[name] = list(entries)
                self.types[name] = {t for t, _ in entries}
            else:
                known.extend(entries)
                self.types[name].update(t for t, _ in entries)


def read_workspace(
    workspace: dict,
    measurement: str | None = None,
    cache: dict | None = None,
    common: frozenset | None = None,
) -> WorkspaceSpec:
    """Collect channels, samples, modifiers and parameter settings of a workspace.

    cache (optional, shared between calls) reuses what was read from a sample object that
    several workspaces share, as signal points patched from one background workspace do; the
    resulting SampleSpec is then the very same object in each WorkspaceSpec. common (with a
    cache) names the samples every workspace of a batch has (keys from sample_keys): what they
    require of the parameters is collected once for the batch, and only the other samples'
    requirements are collected per workspace.
    """
    meas = choose_measurement(workspace, measurement)
    config = meas.get("config", {})
    poi = config.get("poi")
    if not poi:
        raise ModelError(f"measurement {meas.get('name')!r} names no parameter of interest")
    user = {p["name"]: p for p in config.get("parameters", [])}
    cache = {} if cache is None else cache
    common = common or frozenset()

    observations = {o["name"]: [float(x) for x in o["data"]] for o in workspace["observations"]}
    channels: list[tuple[str, int]] = []
    samples: list[SampleSpec] = []
    # What the shared samples require is collected by the first workspace of a batch only.
    base = cache.get(("shared requirements", common)) if common else None
    shared = base or _Requirements()
    own = _Requirements()
    offset = 0
    for channel in workspace["channels"]:
        cname = channel["name"]
        if cname not in observations:
            raise ModelError(f"channel {cname!r} has no observation")
        nbins = len(observations[cname])
        channels.append((cname, nbins))
        for sample in channel["samples"]:
            key = (id(sample), cname, offset, nbins)
            hit = cache.get(key)
            if hit is None or hit[0] is not sample:
                hit = (sample, *_read_sample(sample, cname, offset, nbins))
                cache[key] = hit
            _, spec, grouped = hit
            if key not in common:
                own.add(grouped)
            elif base is None:
                shared.add(grouped)
            samples.append(spec)
        offset += nbins

    if common and base is None:
        cache[("shared requirements", common)] = shared
    parameters = {}
    for name in [*shared.reqs, *(n for n in own.reqs if n not in shared.reqs)]:
        if name in own.reqs:
            reqs = shared.reqs.get(name, []) + own.reqs[name]
            types = shared.types.get(name, set()) | own.types[name]
        else:
            reqs, types = shared.reqs[name], shared.types[name]
        parameters[name] = _cached_parameter(name, reqs, types, user.get(name, NO_SETTINGS), cache)
    if poi not in parameters:
        raise ModelError(f"the parameter of interest {poi!r} is not a modifier of any sample")
    return WorkspaceSpec(channels, observations, samples, parameters, poi)


def _cached_parameter(name: str, reqs: list, types: set[str], setting: dict, cache: dict):
    """The parameter spec, computed once per distinct input. Points patched from one
    background share most parameters; apart from staterror and shapesys (whose constraint
    depends on the yields of the samples they act on) a spec depends only on the modifier
    types, the number of bins and the measurement's settings for the parameter."""
    if types & {"staterror", "shapesys"}:
        key = ("parameter", name, tuple(id(info) for _, info in reqs), id(setting))
        inputs = (setting, [info for _, info in reqs])
    else:
        key = ("parameter", name, frozenset(types), reqs[0][1]["nbins"], id(setting))
        inputs = (setting, [])
    hit = cache.get(key)
    if (
        hit is None
        or hit[0] is not setting
        or any(a is not b for a, b in zip(hit[1], inputs[1], strict=True))
    ):
        hit = (*inputs, _parameter(name, reqs, types, setting))
        cache[key] = hit
    return hit[2]


def _read_sample(sample: dict, cname: str, offset: int, nbins: int):
    """The sample's spec and, per parameter name, what its modifiers require of it."""
    nominal = [float(x) for x in sample["data"]]
    if len(nominal) != nbins:
        raise ModelError(
            f"sample {sample['name']!r} in channel {cname!r} has {len(nominal)} bins, "
            f"the observation has {nbins}"
        )
    mods = []
    grouped: dict[str, list[tuple[str, dict]]] = {}
    for mod in sample.get("modifiers", []):
        mtype, mname, data = mod["type"], mod["name"], mod.get("data")
        mods.append((mname, mtype, data))
        info = {"channel": cname, "nbins": nbins, "nominal": nominal, "data": data}
        grouped.setdefault(mname, []).append((mtype, info))
    return SampleSpec(cname, sample["name"], offset, nominal, mods), grouped


def _parameter(
    name: str, reqs: list[tuple[str, dict]], types: set[str], user: dict
) -> ParameterSpec:
    if len(types - {"normsys", "histosys"}) > 0 and len(types) > 1:
        raise ModelError(
            f"parameter {name!r} is used by incompatible modifier types {sorted(types)}"
        )
    mtype = next(iter(types)) if len(types) == 1 else "normsys"
    nbins = reqs[0][1]["nbins"]
    if mtype in ("normsys", "histosys"):
        spec = ParameterSpec(name, "gauss", 1, [0.0], [(-5.0, 5.0)], [False], [0.0], [1.0])
    elif mtype == "normfactor":
        spec = ParameterSpec(name, "free", 1, [1.0], [(0.0, 10.0)], [False])
    elif mtype == "shapefactor":
        spec = ParameterSpec(
            name, "free", nbins, [1.0] * nbins, [(0.0, 10.0)] * nbins, [False] * nbins
        )
    elif mtype == "lumi":
        if "auxdata" not in user or "sigmas" not in user:
            raise ModelError(f"lumi parameter {name!r} needs auxdata and sigmas in the measurement")
        aux = float(user["auxdata"][0])
        spec = ParameterSpec(
            name, "gauss", 1, [aux], [(0.0, 10.0 * aux)], [False], [aux], [float(user["sigmas"][0])]
        )
    elif mtype == "staterror":
        spec = _staterror(name, reqs, nbins)
    elif mtype == "shapesys":
        spec = _shapesys(name, reqs, nbins)
    else:
        raise ModelError(f"unknown modifier type {mtype!r} for parameter {name!r}")
    spec.modifier_types = set(types)
    _apply_user_settings(spec, user)
    return spec


def _staterror(name: str, reqs: list[tuple[str, dict]], nbins: int) -> ParameterSpec:
    total = [0.0] * nbins
    for _, req in reqs:
        total = [t + n for t, n in zip(total, req["nominal"], strict=True)]
    relvar = [0.0] * nbins
    for _, req in reqs:
        for i, unc in enumerate(req["data"]):
            relvar[i] += (float(unc) / total[i]) ** 2 if total[i] > 0 else 0.0
    sigmas = [math.sqrt(v) for v in relvar]
    fixed = [s == 0.0 for s in sigmas]
    sigmas = [1.0 if f else s for s, f in zip(sigmas, fixed, strict=True)]
    return ParameterSpec(
        name, "gauss", nbins, [1.0] * nbins, [(1e-10, 10.0)] * nbins, fixed, [1.0] * nbins, sigmas
    )


def _shapesys(name: str, reqs: list[tuple[str, dict]], nbins: int) -> ParameterSpec:
    _, req = reqs[0]
    factors, fixed = [], []
    for nom, unc in zip(req["nominal"], req["data"], strict=True):
        valid = nom > 0 and float(unc) > 0
        factors.append((nom / float(unc)) ** 2 if valid else 1.0)
        fixed.append(not valid)
    return ParameterSpec(
        name,
        "poisson",
        nbins,
        [1.0] * nbins,
        [(1e-10, 10.0)] * nbins,
        fixed,
        list(factors),
        [],
        list(factors),
    )


def _apply_user_settings(spec: ParameterSpec, user: dict) -> None:
    if "inits" in user:
        spec.inits = [float(x) for x in user["inits"]]
    if "bounds" in user:
        spec.bounds = [(float(lo), float(hi)) for lo, hi in user["bounds"]]
    if user.get("fixed") is True:
        spec.fixed = [True] * spec.size
    if "auxdata" in user and spec.kind == "gauss":
        spec.aux = [float(x) for x in user["auxdata"]]
    if "sigmas" in user and spec.kind == "gauss":
        spec.sigmas = [float(x) for x in user["sigmas"]]
    for attr in ("inits", "bounds", "aux", "sigmas"):
        values = getattr(spec, attr)
        if values and len(values) != spec.size:
            raise ModelError(
                f"parameter {spec.name!r} has {spec.size} components but {len(values)} {attr}"
            )
