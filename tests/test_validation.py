"""Each planted defect is reported with the file and a JSON pointer to it."""

from __future__ import annotations

import json

import pytest

from hepstore.jsonio import patchset_digest
from hepstore.services import validate_paths
from tests.conftest import write_bundle


def report_for(tmp_path, ws, ps=None):
    root = write_bundle(tmp_path / "case", ws, ps)
    report, _ = validate_paths([root])
    return report


def errors(report):
    return [(p.file, p.pointer, p.message) for p in report.problems if p.severity == "error"]


def assert_error(report, file_part, pointer, words):
    for file, ptr, message in errors(report):
        if file_part in file and ptr == pointer and all(w in message for w in words):
            return
    pytest.fail(f"no error at {file_part}#{pointer} with {words}; got {errors(report)}")


def test_generated_example_is_valid(bundle):
    root, _, _ = bundle
    report, regions = validate_paths([root])
    assert report.valid, report.problems
    summary = regions[0].summary
    assert summary["channels"] == 2 and summary["bins"] == 5
    assert summary["signal_points"] == 18 and summary["poi"] == "mu_SIG"
    assert summary["modifiers_by_type"]["normsys"] == 3


def test_truncated_json_reports_line_and_column(tmp_path, example_docs):
    ws, ps = example_docs
    root = write_bundle(tmp_path / "c", ws, ps)
    text = json.dumps(ws, indent=1)
    (root / "RegionA" / "BkgOnly.json").write_text(text[: len(text) // 2])
    report, _ = validate_paths([root])
    assert not report.valid
    (problem,) = [p for p in report.problems if "BkgOnly" in p.file]
    assert "truncated" in problem.message and "line" in problem.message


def test_nan_literal_is_rejected(tmp_path, example_docs):
    ws, ps = example_docs
    root = write_bundle(tmp_path / "c", ws, ps)
    text = json.dumps(ws).replace("42.0", "NaN", 1)
    (root / "RegionA" / "BkgOnly.json").write_text(text)
    report, _ = validate_paths([root])
    assert any("NaN" in p.message for p in report.errors)


def test_unknown_key_is_a_schema_violation(tmp_path, example_docs):
    ws, ps = example_docs
    ws["channels"][0]["colour"] = "blue"
    assert_error(report_for(tmp_path, ws, ps), "BkgOnly", "/channels/0", ["unknown key", "colour"])


def test_sample_bin_count_mismatch(tmp_path, example_docs):
    ws, ps = example_docs
    ws["channels"][0]["samples"][1]["data"].append(1.0)
    ps["metadata"]["digests"]["sha256"] = patchset_digest(ws)
    assert_error(
        report_for(tmp_path, ws, ps), "BkgOnly", "/channels/0/samples/1/data", ["4 bins", "3"]
    )


def test_histosys_and_staterror_bin_mismatch(tmp_path, example_docs):
    ws, ps = example_docs
    sample = ws["channels"][0]["samples"][0]
    sample["modifiers"][2]["data"]["lo_data"].pop()
    sample["modifiers"][3]["data"].pop()
    report = report_for(tmp_path, ws, ps)
    assert_error(report, "BkgOnly", "/channels/0/samples/0/modifiers/2/data/lo_data", ["histosys"])
    assert_error(report, "BkgOnly", "/channels/0/samples/0/modifiers/3/data", ["staterror"])


def test_duplicate_channel_sample_and_patch_names(tmp_path, example_docs):
    ws, ps = example_docs
    ws["channels"][0]["samples"][1]["name"] = "ttbar"
    ps["patches"][1]["metadata"]["name"] = ps["patches"][0]["metadata"]["name"]
    report = report_for(tmp_path, ws, ps)
    assert_error(report, "BkgOnly", "/channels/0/samples/1/name", ["duplicate sample"])
    assert_error(report, "patchset", "/patches/1/metadata/name", ["duplicate patch name"])
    ws2, _ = json.loads(json.dumps(ws)), None
    ws2["channels"][1]["name"] = "SR_meff"
    assert_error(
        report_for(tmp_path / "b", ws2), "BkgOnly", "/channels/1/name", ["duplicate channel"]
    )


def test_duplicate_values_and_wrong_value_count(tmp_path, example_docs):
    ws, ps = example_docs
    ps["patches"][2]["metadata"]["values"] = ps["patches"][0]["metadata"]["values"]
    ps["patches"][3]["metadata"]["values"] = [1, 2, 3]
    report = report_for(tmp_path, ws, ps)
    assert_error(report, "patchset", "/patches/2/metadata/values", ["same values"])
    assert_error(report, "patchset", "/patches/3/metadata/values", ["3 values for 2 labels"])


def test_channel_without_observation_and_observation_without_channel(tmp_path, example_docs):
    ws, ps = example_docs
    ws["observations"][1]["name"] = "VR_elsewhere"
    report = report_for(tmp_path, ws, ps)
    assert_error(report, "BkgOnly", "/channels/1/name", ["has no observation"])
    assert_error(report, "BkgOnly", "/observations/1/name", ["belongs to no channel"])


def test_non_positive_bin_is_an_error_but_one_negative_sample_only_warns(tmp_path, example_docs):
    ws, ps = example_docs
    for sample in ws["channels"][1]["samples"]:
        sample["data"][1] = 0.0
    ws["channels"][0]["samples"][2]["data"][0] = -0.5
    report = report_for(tmp_path, ws, ps)
    assert_error(report, "BkgOnly", "/channels/1/samples", ["bin 1", "must be positive"])
    warnings = [p for p in report.problems if p.severity == "warning"]
    assert any(p.pointer == "/channels/0/samples/2/data/0" for p in warnings)


def test_digest_mismatch(tmp_path, example_docs):
    ws, ps = example_docs
    ps["metadata"]["digests"]["sha256"] = "0" * 64
    assert_error(
        report_for(tmp_path, ws, ps), "patchset", "/metadata/digests/sha256", ["does not match"]
    )


def test_patch_that_does_not_apply_names_patch_and_operation(tmp_path, example_docs):
    ws, ps = example_docs
    ps["patches"][4]["patch"].append({"op": "remove", "path": "/channels/7"})
    name = ps["patches"][4]["metadata"]["name"]
    assert_error(
        report_for(tmp_path, ws, ps), "patchset", "/patches/4/patch/1", [name, "does not apply"]
    )


def test_patched_workspace_must_be_valid_and_have_the_poi(tmp_path, example_docs):
    ws, ps = example_docs
    ps["patches"][0]["patch"][0]["value"]["data"] = [1.0]  # wrong bin count
    ps["patches"][1]["patch"][0]["value"]["modifiers"][0]["name"] = "mu_other"  # no POI
    ps["patches"][2]["patch"][0]["value"]["modifiers"][0]["type"] = "normfactorr"
    report = report_for(tmp_path, ws, ps)
    assert_error(report, "patchset", "/patches/0/patch", ["1 bins"])
    assert_error(report, "patchset", "/patches/1/patch", ["parameter of interest", "mu_SIG"])
    assert any(p.pointer.startswith("/patches/2/patch/0/value") for p in report.errors)


def test_measurement_parameter_checks(tmp_path, example_docs):
    ws, ps = example_docs
    params = ws["measurements"][0]["config"]["parameters"]
    params[0]["bounds"] = [[1.2, 0.8]]
    params.append({"name": "JES", "inits": [7.0], "bounds": [[-5.0, 5.0]]})
    params.append({"name": "nothing_uses_me", "fixed": True})
    ps["metadata"]["digests"]["sha256"] = patchset_digest(ws)
    report = report_for(tmp_path, ws, ps)
    params_ptr = "/measurements/0/config/parameters"
    assert_error(report, "BkgOnly", f"{params_ptr}/0/bounds/0", ["lower", "above upper"])
    assert_error(report, "BkgOnly", f"{params_ptr}/1/inits/0", ["outside its bounds"])
    assert any(
        p.pointer == f"{params_ptr}/2/name" and p.severity == "warning" for p in report.problems
    )


def test_every_problem_is_reported_not_just_the_first(tmp_path, example_docs):
    ws, ps = example_docs
    ws["channels"][0]["samples"][1]["name"] = "ttbar"
    ps["metadata"]["digests"]["sha256"] = "0" * 64
    ps["patches"][1]["metadata"]["name"] = ps["patches"][0]["metadata"]["name"]
    assert len(report_for(tmp_path, ws, ps).errors) >= 3


def test_deeply_nested_json_is_refused_without_crashing(tmp_path, example_docs):
    ws, ps = example_docs
    root = write_bundle(tmp_path / "c", ws, ps)
    (root / "RegionA" / "BkgOnly.json").write_text("[" * 100000 + "]" * 100000)
    report, _ = validate_paths([root])
    assert any("nested deeper" in p.message for p in report.errors)


# ------------------------------------------------ validator and fitter agree (issue 15)


def _redigest(ws, ps):
    ps["metadata"]["digests"]["sha256"] = patchset_digest(ws)


def test_an_empty_patch_is_accepted_with_a_warning_naming_it(tmp_path, example_docs):
    ws, ps = example_docs
    ps["patches"][3]["patch"] = []
    name = ps["patches"][3]["metadata"]["name"]
    report = report_for(tmp_path, ws, ps)
    assert report.valid, errors(report)
    (warning,) = [p for p in report.problems if p.severity == "warning"]
    assert warning.pointer == "/patches/3/patch" and name in warning.message
    assert "empty" in warning.message


def test_patches_using_lumi_without_its_settings_are_refused_once_with_a_pointer(
    tmp_path, example_docs
):
    ws, ps = example_docs
    lumi = ws["measurements"][0]["config"]["parameters"][0]
    assert lumi["name"] == "lumi"
    del lumi["auxdata"], lumi["sigmas"]
    _redigest(ws, ps)
    report = report_for(tmp_path, ws, ps)
    assert_error(
        report,
        "patchset",
        "/patches/0/patch",
        [
            "cannot be built into a model",
            "lumi parameter 'lumi' needs auxdata and sigmas",
            "(and 17 other patches)",
            "(at /measurements/0/config/parameters/0)",
        ],
    )
    assert len(report.errors) == 1  # one cause, one problem: not one per patch


def test_what_the_schema_allows_but_the_fitter_cannot_build_is_refused(tmp_path, example_docs):
    ws, ps = example_docs
    # A signal normfactor named like the lumi parameter: one name, two incompatible types.
    sample = ps["patches"][1]["patch"][0]["value"]
    sample["modifiers"].append({"name": "lumi", "type": "normfactor", "data": None})
    # Two initial values for a one-component parameter.
    ws["measurements"][0]["config"]["parameters"].append(
        {"name": "signal_theory", "inits": [0.0, 0.0]}
    )
    _redigest(ws, ps)
    report = report_for(tmp_path, ws, ps)
    assert_error(report, "patchset", "/patches/1/patch", ["incompatible modifier types"])
    assert_error(report, "patchset", "/patches/0/patch", ["has 1 components but 2 inits"])


def test_a_workspace_without_patches_must_be_buildable_itself(tmp_path, example_docs):
    ws, _ = example_docs
    full = json.loads(json.dumps(ws))
    from hepstore.examples import signal_patch
    from hepstore.patching import apply

    full = apply(full, signal_patch(500, 100))
    full["measurements"][0]["config"]["parameters"][0].pop("sigmas")
    report = report_for(tmp_path, full)
    assert_error(
        report, "BkgOnly", "/measurements/0/config/parameters/0", ["needs auxdata and sigmas"]
    )


def test_no_spurious_warnings_for_what_the_patches_supply_or_the_spec_allows(
    tmp_path, example_docs
):
    ws, ps = example_docs
    # The measurement sets up the POI, which only the signal patches bring in.
    ws["measurements"][0]["config"]["parameters"].append({"name": "mu_SIG", "bounds": [[0, 5]]})
    ps["metadata"]["analysis_name"] = "an extra metadata key (the specification allows them)"
    _redigest(ws, ps)
    report = report_for(tmp_path, ws, ps)
    assert report.valid and report.problems == [], report.problems
    # A parameter nothing uses is still warned about.
    ws["measurements"][0]["config"]["parameters"].append({"name": "unused", "fixed": True})
    _redigest(ws, ps)
    problems = report_for(tmp_path / "again", ws, ps).problems
    assert [p.severity for p in problems] == ["warning"] and "'unused'" in problems[0].message


def test_published_patchset_with_an_empty_patch_validates_with_one_warning():
    from tests.shared_data import require_shared

    root = require_shared("3l-offshell-simplified")
    report, regions = validate_paths([root])
    assert report.valid, errors(report)
    (warning,) = report.problems
    assert warning.severity == "warning" and warning.pointer == "/patches/8/patch"
    assert "3Lconfig_MLL_v2p2_CRs_C1N2_WZ_150_50_3L_2L7" in warning.message
    assert regions[0].summary["signal_points"] == 91
