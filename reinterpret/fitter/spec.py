"""Read a HistFactory 1.0.0 workspace (a plain dict) into the parameter and modifier lists
that model.py turns into arrays. Pure Python: no arrays of model size are built here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from reinterpret.fitter.errors import ModelError

NO_SETTINGS: dict = {}  # a parameter the measurement says nothing about (never modified)

# Modifier types whose parameter's spec reads every modifier's data (their constraints);
# of the others' requirements only the first is read (its number of bins).
DATA_TYPES = frozenset(("staterror", "shapesys"))
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

    def add(self, entries: list[tuple[str, str, dict]]) -> None:
        """Add a sample's requirements: (parameter name, modifier type, info) per modifier."""
        reqs, types = self.reqs, self.types
        for name, mtype, info in entries:
            known = reqs.get(name)
            if known is None:
                reqs[name] = [(mtype, info)]
                types[name] = {mtype}
            else:
                known.append((mtype, info))
                types[name].add(mtype)


def read_workspace(
    workspace: dict,
    measurement: str | None = None,
    cache: dict | None = None,
    common: frozenset | None = None,
    check_data: bool = False,
) -> WorkspaceSpec:
    """Collect channels, samples, modifiers and parameter settings of a workspace.

    Raises ModelError (with the JSON pointer of the offending part where it is known) for a
    workspace that cannot be evaluated. With check_data, also the data of the (numerous)
    normsys and histosys modifiers are checked for the shape and values the model reads (a
    few microseconds per modifier: the validator asks for it, so what validates is what can
    be evaluated; compiling does not, and asks again only for points that fail to compile,
    to say where they fail).

    cache (optional, shared between calls) reuses what was read from a sample object that
    several workspaces share, as signal points patched from one background workspace do; the
    resulting SampleSpec is then the very same object in each WorkspaceSpec. common (with a
    cache) names the samples every workspace of a batch has (keys from sample_keys): what they
    require of the parameters is collected once for the batch, and only the other samples'
    requirements are collected per workspace.
    """
    try:
        return _read_workspace(workspace, measurement, cache, common, check_data)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        # The schema rules these out; a workspace that skipped validation still gets a
        # clear error, not a traceback.
        raise ModelError(f"the workspace is malformed ({type(exc).__name__}: {exc})") from exc


def _read_workspace(workspace, measurement, cache, common, check_data) -> WorkspaceSpec:
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
    for c, channel in enumerate(workspace["channels"]):
        cname = channel["name"]
        if cname not in observations:
            raise ModelError(f"channel {cname!r} has no observation", f"/channels/{c}/name")
        nbins = len(observations[cname])
        channels.append((cname, nbins))
        for sample in channel["samples"]:
            key = (id(sample), cname, offset, nbins)
            hit = cache.get(key)
            if hit is None or hit[0] is not sample or (check_data and not hit[3]):
                try:
                    hit = (sample, *_read_sample(sample, cname, offset, nbins, check_data))
                except ModelError as exc:
                    s = next(i for i, x in enumerate(channel["samples"]) if x is sample)
                    where = f"/channels/{c}/samples/{s}"
                    raise ModelError(str(exc), where + (exc.pointer or "")) from None
                cache[key] = hit
            _, spec, entries, _ = hit
            if key not in common:
                own.add(entries)
            elif base is None:
                shared.add(entries)
            samples.append(spec)
        offset += nbins

    if common and base is None:
        cache[("shared requirements", common)] = shared
    parameters = {}
    for name in [*shared.reqs, *(n for n in own.reqs if n not in shared.reqs)]:
        if name in own.reqs:
            types = shared.types.get(name, set()) | own.types[name]
            if types.isdisjoint(DATA_TYPES):  # only the first requirement is read
                reqs = shared.reqs.get(name) or own.reqs[name]
            else:
                reqs = shared.reqs.get(name, []) + own.reqs[name]
        else:
            reqs, types = shared.reqs[name], shared.types[name]
        try:
            parameters[name] = _cached_parameter(
                name, reqs, types, user.get(name, NO_SETTINGS), cache
            )
        except ModelError as exc:
            raise ModelError(str(exc), _parameter_pointer(workspace, meas, name)) from None
    if poi not in parameters:
        raise ModelError(
            f"the parameter of interest {poi!r} is not a modifier of any sample",
            f"{_measurement_pointer(workspace, meas)}/config/poi",
        )
    return WorkspaceSpec(channels, observations, samples, parameters, poi)


def _cached_parameter(name: str, reqs: list, types: set[str], setting: dict, cache: dict):
    """The parameter spec, computed once per distinct input. Points patched from one
    background share most parameters; apart from staterror and shapesys (whose constraint
    depends on the yields of the samples they act on) a spec depends only on the modifier
    types, the number of bins and the measurement's settings for the parameter."""
    if not types.isdisjoint(DATA_TYPES):
        key = ("parameter", name, tuple(id(info) for _, info in reqs), id(setting))
        inputs = (setting, [info for _, info in reqs])
    else:
        key = ("parameter", name, frozenset(types), reqs[0][1]["nbins"], id(setting))
        inputs = (setting, [])
    hit = cache.get(key)
    if (
        hit is None
        or hit[0] is not setting
        or (inputs[1] and any(a is not b for a, b in zip(hit[1], inputs[1], strict=True)))
    ):
        hit = (*inputs, _parameter(name, reqs, types, setting))
        cache[key] = hit
    return hit[2]


def _read_sample(sample: dict, cname: str, offset: int, nbins: int, check_data: bool):
    """The sample's spec, what each of its modifiers requires of its parameter ((name,
    type, info) for _Requirements.add), and whether the modifiers' data were checked."""
    if check_data:
        _numbers(sample["data"], None, f"sample {sample['name']!r}", "/data")
    nominal = [float(x) for x in sample["data"]]
    if len(nominal) != nbins:
        raise ModelError(
            f"sample {sample['name']!r} in channel {cname!r} has {len(nominal)} bins, "
            f"the observation has {nbins}",
            "/data",
        )
    mods = []
    entries: list[tuple[str, str, dict]] = []  # what each modifier requires (_Requirements)
    # What a parameter spec reads of a modifier: its data only for staterror and shapesys
    # (their constraints), else the number of bins; so the others share one record.
    shared = {"channel": cname, "nbins": nbins, "nominal": nominal, "data": None}
    for m, mod in enumerate(sample.get("modifiers", [])):
        mtype, mname, data = mod["type"], mod["name"], mod.get("data")
        # Unchecked, only the numerous normsys and histosys are skipped: the model refuses
        # their wrong shapes, and their non-finite values give a null result with a reason.
        if (check_data or mtype not in ("normsys", "histosys")) and not _modifier_ok(
            mtype, data, nbins
        ):
            _explain_modifier(mtype, mname, data, nbins, sample["name"], cname, f"/modifiers/{m}")
        mods.append((mname, mtype, data))
        if mtype in DATA_TYPES:
            info = {"channel": cname, "nbins": nbins, "nominal": nominal, "data": data}
        else:
            info = shared
        entries.append((mname, mtype, info))
    keys = [(mname, mtype) for mname, mtype, _ in mods] if check_data else []
    if len(set(keys)) != len(keys):  # unchecked, the model refuses it (without the place)
        m, (mname, mtype) = next((i, k) for i, k in enumerate(keys) if k in keys[:i])
        raise ModelError(
            f"modifier {mname!r} ({mtype}) appears twice on sample {sample['name']!r}",
            f"/modifiers/{m}",
        )
    return SampleSpec(cname, sample["name"], offset, nominal, mods), entries, check_data


MODIFIER_TYPES = (
    "normfactor",
    "shapefactor",
    "normsys",
    "histosys",
    "lumi",
    "staterror",
    "shapesys",
)


def _finite_list(values, nbins: int | None) -> bool:
    """True for a list of finite numbers (nbins of them when nbins is given). Runs for every
    modifier of every sample read: one sum, not a loop in Python."""
    if not isinstance(values, list) or (nbins is not None and len(values) != nbins):
        return False
    try:
        total = sum(values)  # NaN or an infinity anywhere makes the sum non-finite
    except TypeError:
        return False
    return isinstance(total, int | float) and math.isfinite(total)


def _numbers(values, nbins: int | None, what: str, where: str) -> list:
    """values when _finite_list accepts them, else ModelError saying what is wrong."""
    if _finite_list(values, nbins):
        return values
    if _finite_list(values, None):
        raise ModelError(f"{what} does not have {nbins} bins (it has {len(values)})", where)
    raise ModelError(f"{what} must be a list of finite numbers", where)


def _positive(value) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


def _modifier_ok(mtype: str, data, nbins: int) -> bool:
    """Whether the modifier has the data its type needs, in the shape the model reads it.
    Runs for every modifier of every sample read, so it only answers yes or no."""
    if mtype == "normsys":
        return isinstance(data, dict) and _positive(data.get("hi")) and _positive(data.get("lo"))
    if mtype == "histosys":
        return (
            isinstance(data, dict)
            and _finite_list(data.get("hi_data"), nbins)
            and _finite_list(data.get("lo_data"), nbins)
        )
    if mtype in ("staterror", "shapesys"):
        return _finite_list(data, nbins) and min(data, default=0.0) >= 0
    return mtype in MODIFIER_TYPES


def _explain_modifier(mtype, mname, data, nbins, sample, cname, where) -> None:
    """Raise the ModelError saying what is wrong with a modifier _modifier_ok refused."""

    def what() -> str:
        return f"{mtype} {mname!r} of sample {sample!r} in channel {cname!r}"

    if mtype == "normsys":
        if not isinstance(data, dict):
            raise ModelError(f"{what()} needs data {{'hi': factor, 'lo': factor}}", where + "/data")
        for key in ("hi", "lo"):
            if not _positive(data.get(key)):
                raise ModelError(
                    f"{what()} needs a positive finite {key!r} factor", f"{where}/data/{key}"
                )
    elif mtype == "histosys":
        if not isinstance(data, dict):
            raise ModelError(
                f"{what()} needs data {{'hi_data': [...], 'lo_data': [...]}}", where + "/data"
            )
        for key in ("hi_data", "lo_data"):
            if not _finite_list(data.get(key), nbins):
                # The wording "histosys of sample ... not have N bins" is the model's own.
                _numbers(
                    data.get(key),
                    nbins,
                    f"{key} of a histosys of sample {sample!r} in channel {cname!r} ({mname!r})",
                    f"{where}/data/{key}",
                )
    elif mtype in ("staterror", "shapesys"):
        if not _finite_list(data, nbins):
            _numbers(data, nbins, what(), where + "/data")
        if min(data, default=0.0) < 0:
            raise ModelError(f"{what()} has a negative uncertainty", where + "/data")
    elif mtype not in MODIFIER_TYPES:
        raise ModelError(f"unknown modifier type {mtype!r} of {mname!r}", where + "/type")
    raise ModelError(f"{what()} has data the fitter cannot read", where + "/data")


def _measurement_pointer(workspace: dict, meas: dict) -> str:
    index = next(i for i, m in enumerate(workspace["measurements"]) if m is meas)
    return f"/measurements/{index}"


def _parameter_pointer(workspace: dict, meas: dict, name: str) -> str:
    """Where the measurement sets the parameter up (or would)."""
    base = f"{_measurement_pointer(workspace, meas)}/config/parameters"
    for p, par in enumerate(meas.get("config", {}).get("parameters", [])):
        if par.get("name") == name:
            return f"{base}/{p}"
    return base


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
    else:  # _check_modifier_data refuses other types first
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
