"""Load the JSON schemas in schemas/ into validators (built once per process)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import jsonschema
from referencing import Registry, Resource

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"
BASE = "https://scikit-hep.org/pyhf/schemas/1.0.0/"
KNOWN_IDS = {
    BASE + "workspace.json": "workspace",
    BASE + "patchset.json": "patchset",
}


@cache
def _registry() -> Registry:
    resources = []
    for path in SCHEMA_DIR.glob("*.json"):
        schema = json.loads(path.read_text())
        resources.append((schema["$id"], Resource.from_contents(schema)))
    return Registry().with_resources(resources)


@cache
def validator(name: str) -> jsonschema.Draft7Validator:
    schema = json.loads((SCHEMA_DIR / f"{name}.json").read_text())
    return jsonschema.Draft7Validator(schema, registry=_registry())


def kind_of_schema_id(schema_id: str) -> str | None:
    """'workspace' or 'patchset' for a recognised schema $id (also bare file names)."""
    if schema_id in KNOWN_IDS:
        return KNOWN_IDS[schema_id]
    tail = schema_id.rsplit("/", 1)[-1]
    return {"workspace.json": "workspace", "patchset.json": "patchset"}.get(tail)


@cache
def fragment_validator(definition: str) -> jsonschema.Draft7Validator:
    """A validator for one definition of defs.json (a channel, a sample, a modifier...)."""
    schema = {"$ref": f"{BASE}defs.json#/definitions/{definition}"}
    return jsonschema.Draft7Validator(schema, registry=_registry())


# Fast checks that accept only what the schema accepts. Signal patches insert samples with
# hundreds of modifiers; running jsonschema on each costs ~0.4 s per patch, so valid input takes
# this path and only input these reject goes through jsonschema for the detailed messages.
def _is_number(x) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _number_list(x) -> bool:
    return isinstance(x, list) and len(x) >= 1 and all(_is_number(v) for v in x)


def _name(x) -> bool:
    return isinstance(x, str) and len(x) >= 1


_NULL_DATA = {"normfactor", "shapefactor", "lumi"}


def _modifier(m) -> bool:
    if not isinstance(m, dict) or set(m) != {"name", "type", "data"} or not _name(m["name"]):
        return False
    mtype, data = m["type"], m["data"]
    if mtype in _NULL_DATA:
        return data is None
    if mtype == "normsys":
        return (
            isinstance(data, dict)
            and set(data) == {"hi", "lo"}
            and _is_number(data["hi"])
            and _is_number(data["lo"])
        )
    if mtype == "histosys":
        return (
            isinstance(data, dict)
            and set(data) == {"hi_data", "lo_data"}
            and _number_list(data["hi_data"])
            and _number_list(data["lo_data"])
        )
    if mtype in ("staterror", "shapesys"):
        return _number_list(data)
    return False


def _sample(s) -> bool:
    return (
        isinstance(s, dict)
        and set(s) == {"name", "data", "modifiers"}
        and _name(s["name"])
        and _number_list(s["data"])
        and isinstance(s["modifiers"], list)
        and all(_modifier(m) for m in s["modifiers"])
    )


def _channel(c) -> bool:
    return (
        isinstance(c, dict)
        and set(c) == {"name", "samples"}
        and _name(c["name"])
        and isinstance(c["samples"], list)
        and len(c["samples"]) >= 1
        and all(_sample(s) for s in c["samples"])
    )


FAST_CHECKS = {
    "channel": _channel,
    "sample": _sample,
    "modifier": _modifier,
    "number_list": _number_list,
}


def fragment_errors(definition: str, value) -> list:
    """jsonschema errors of a fragment, skipping jsonschema when the fast check passes."""
    fast = FAST_CHECKS.get(definition)
    if fast is not None and fast(value):
        return []
    return list(fragment_validator(definition).iter_errors(value))
