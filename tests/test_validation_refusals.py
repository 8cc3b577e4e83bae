"""The validator refuses duplicate keys (at their JSON pointer), yields that are not finite or
overflow, and inverted parameter bounds, in the workspace and inside patches."""

from __future__ import annotations

import json

import pytest

from hepstore import jsonio
from hepstore.services import validate_paths
from hepstore.validation import MAX_YIELD, Report, check_parameter_bounds
from tests.conftest import write_bundle


def errors(report) -> list[tuple[str, str, str]]:
    return [(p.file, p.pointer, p.message) for p in report.errors]


def has_error(report, file_part: str, pointer: str, *words: str) -> bool:
    return any(
        file_part in file and ptr == pointer and all(w in message for w in words)
        for file, ptr, message in errors(report)
    )


def validate_texts(tmp_path, ws_text: str, ps_text: str):
    root = tmp_path / "case"
    (root / "R").mkdir(parents=True)
    (root / "R" / "BkgOnly.json").write_text(ws_text)
    (root / "R" / "patchset.json").write_text(ps_text)
    report, _ = validate_paths([root])
    return report


def test_duplicate_keys_are_refused_at_their_pointer_and_other_checks_still_run(
    tmp_path, example_docs
):
    ws, ps = example_docs
    ws_text = json.dumps(ws).replace(
        '"name": "SR_meff", "samples"', '"name": "SR_meff", "name": "SR_meff", "samples"', 1
    )
    ps_text = json.dumps(ps).replace('{"op": "add", ', '{"op": "add", "op": "remove", ', 1)
    ps_text = ps_text.replace('"labels": ["m1", "m2"]', '"labels": ["m1", "m2", "m3"]', 1)
    report = validate_texts(tmp_path, ws_text, ps_text)
    assert has_error(report, "BkgOnly.json", "/channels/0/name", "duplicate key 'name'")
    assert has_error(report, "patchset.json", "/patches/0/patch/0/op", "duplicate key 'op'")
    # The rest of the patchset was still checked: three labels against two values.
    assert has_error(report, "patchset.json", "/patches/0/metadata/values", "3 labels")


def test_loads_without_a_list_refuses_the_first_duplicate_with_its_pointer():
    with pytest.raises(jsonio.JSONProblem) as caught:
        jsonio.loads('{"a": [{"b": 1, "b": 2}]}')
    assert caught.value.pointer == "/a/0/b"


def test_a_document_nested_100000_levels_is_refused_not_a_crash():
    with pytest.raises(jsonio.JSONProblem, match="nested deeper"):
        jsonio.loads("[" * 100_000 + "]" * 100_000)


def test_yields_that_overflow_are_refused(tmp_path, example_docs):
    ws, ps = example_docs
    ws["channels"][0]["samples"][0]["data"][0] = 1e308
    ws["channels"][0]["samples"][1]["data"][0] = 1e308
    ps["metadata"]["digests"]["sha256"] = jsonio.patchset_digest(ws)
    root = write_bundle(tmp_path / "case", ws, ps)
    report, _ = validate_paths([root])
    assert has_error(report, "BkgOnly", "/channels/0/samples/0/data", "overflow")
    assert has_error(report, "BkgOnly", "/channels/0/samples/1/data", "overflow")


def test_a_number_beyond_double_precision_is_refused_when_read(tmp_path, example_docs):
    ws, ps = example_docs
    ws_text = json.dumps(ws).replace("42.0", "1e999", 1)
    report = validate_texts(tmp_path, ws_text, json.dumps(ps))
    assert any("overflows a double" in message for _, _, message in errors(report))


def test_overflowing_yields_brought_in_by_a_patch_are_refused(tmp_path, example_docs):
    ws, ps = example_docs
    ps["patches"][0]["patch"][0]["value"]["data"] = [MAX_YIELD * 10, 1.0, 1.0]
    root = write_bundle(tmp_path / "case", ws, ps)
    report, _ = validate_paths([root])
    assert any(
        ptr == "/patches/0/patch" and "overflow" in message for _, ptr, message in errors(report)
    ), errors(report)
    assert not any(ptr.startswith("/patches/1/") for _, ptr, _ in errors(report))


def test_inverted_poi_bounds_set_by_a_patch_are_refused(tmp_path, example_docs):
    ws, ps = example_docs
    ps["patches"][0]["patch"].append(
        {
            "op": "add",
            "path": "/measurements/0/config/parameters/-",
            "value": {"name": "mu_SIG", "bounds": [[5, -5]]},
        }
    )
    root = write_bundle(tmp_path / "case", ws, ps)
    report, _ = validate_paths([root])
    assert any(
        ptr == "/patches/0/patch" and "inverted" in message and "'mu_SIG'" in message
        for _, ptr, message in errors(report)
    ), errors(report)


def test_check_parameter_bounds_on_its_own():
    report = Report()
    ok = check_parameter_bounds({"name": "mu", "bounds": [[5, -5]]}, report, "f", "/p")
    assert not ok
    assert [(p.pointer, p.message) for p in report.errors] == [
        ("/p/bounds/0", "bounds of 'mu' are inverted: lower 5 is above upper -5")
    ]
    assert check_parameter_bounds({"name": "mu", "bounds": [[0, 10]]}, Report(), "f", "/p")


def test_a_bad_element_of_a_long_yield_array_is_reported_at_its_own_pointer(tmp_path, example_docs):
    """Long all-number arrays are checked in bulk, not element by element by jsonschema;
    one that is not all numbers is still checked whole, so the pointer is exact."""
    ws, _ = example_docs
    sample = ws["channels"][0]["samples"][0]
    n = 1000
    sample["data"] = [1.0] * n
    sample["data"][500] = "12"
    sample["modifiers"] = [m for m in sample["modifiers"] if m["type"] != "staterror"]
    ws["observations"][0]["data"] = [1] * n
    report, _ = validate_paths([write_bundle(tmp_path / "case", ws)])
    assert has_error(report, "BkgOnly", "/channels/0/samples/0/data/500", "not of type 'number'")
    sample["data"][500] = True
    report, _ = validate_paths([write_bundle(tmp_path / "case2", ws)])
    assert has_error(report, "BkgOnly", "/channels/0/samples/0/data/500", "not of type 'number'")
