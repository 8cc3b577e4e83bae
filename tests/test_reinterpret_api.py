"""Reinterpretation over the API: cached point results, custom signals, scans, jobs."""

from __future__ import annotations

import json
import subprocess
import sys

import jsonpatch
import pytest
from django.test import Client, override_settings
from rest_framework.test import APIClient

from hepstore.services import Publication, ingest_paths
from reinterpret.jobs import Worker
from reinterpret.models import CachedResult, Job, JobState

pytestmark = pytest.mark.django_db


@pytest.fixture
def client():
    return APIClient()


@pytest.fixture
def stored(bundle):
    root, ws, ps = bundle
    _, version = ingest_paths([root], Publication(title="Example", collaboration="ATLAS"))
    return version.likelihoods.get(), ws, ps


def test_point_result_is_computed_once_then_served_from_the_cache(client, stored):
    lh, _, _ = stored
    url = f"/api/v1/likelihoods/{lh.pk}/signals/C1N2_600_100/result"
    first = client.get(url)
    assert first.status_code == 200 and first["X-Cache"] == "miss"
    second = client.get(url)
    assert second["X-Cache"] == "hit"
    a, b = first.json(), second.json()
    assert a["cls_obs"] == b["cls_obs"] and len(a["mu_up_exp"]) == 5
    assert a["settings"]["interpolation"] == {"normsys": "code4", "histosys": "code4p"}
    assert a["inputs"]["background_sha256"] == lh.background_id
    assert CachedResult.objects.count() == 1


def test_cached_result_equals_cls_command_on_the_downloaded_workspace(client, stored, tmp_path):
    lh, _, _ = stored
    name = "C1N2_500_100"
    result = client.get(f"/api/v1/likelihoods/{lh.pk}/signals/{name}/result").json()
    workspace = client.get(f"/api/v1/likelihoods/{lh.pk}/signals/{name}/workspace").content
    (tmp_path / "ws.json").write_bytes(workspace)
    out = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "cls",
            str(tmp_path / "ws.json"),
            "--upper-limit",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    (cli,) = json.loads(out.stdout)["results"]
    for key in ("cls_obs", "mu_hat", "twice_nll", "mu_up_obs"):
        assert result[key] == pytest.approx(cli[key], rel=1e-9, abs=1e-12)
    assert result["cls_exp"] == pytest.approx(cli["cls_exp"], rel=1e-9)
    assert result["mu_up_exp"] == pytest.approx(cli["mu_up_exp"], rel=1e-9)


def test_custom_yields_equal_the_equivalent_json_patch_and_pyhf(client, stored):
    lh, ws, ps = stored
    yields = [2.5, 4.0, 6.5]
    by_yields = client.post(
        f"/api/v1/likelihoods/{lh.pk}/reinterpret", {"signal": {"SR_meff": yields}}, format="json"
    ).json()
    sample = {
        "name": "my_signal",
        "data": yields,
        "modifiers": [
            {"name": "mu_SIG", "type": "normfactor", "data": None},
            {"name": "lumi", "type": "lumi", "data": None},
        ],
    }
    patch = [{"op": "add", "path": "/channels/0/samples/-", "value": sample}]
    by_patch = client.post(
        f"/api/v1/likelihoods/{lh.pk}/reinterpret", {"patch": patch}, format="json"
    ).json()
    assert by_yields["cls_obs"] == pytest.approx(by_patch["cls_obs"], rel=1e-8)
    assert by_yields["cls_exp"] == pytest.approx(by_patch["cls_exp"], rel=1e-8)
    pyhf = pytest.importorskip("pyhf")
    pyhf.set_backend("numpy")
    workspace = pyhf.Workspace(jsonpatch.apply_patch(ws, patch))
    model = workspace.model()
    obs, exp = pyhf.infer.hypotest(
        1.0, workspace.data(model), model, test_stat="qtilde", return_expected_set=True
    )
    assert by_yields["cls_obs"] == pytest.approx(float(obs), rel=5e-3, abs=2e-4)
    assert by_yields["cls_exp"] == pytest.approx([float(x) for x in exp], rel=5e-3, abs=2e-4)


def test_custom_signal_mistakes_are_reported_each_with_a_pointer(client, stored):
    lh, _, _ = stored
    url = f"/api/v1/likelihoods/{lh.pk}/reinterpret"
    raw = '{"signal": {"SR_meff": [1.0, 1e300, -2.0], "CR_ttbar": [1.0], "VR": [1.0]}}'
    body = client.post(url, raw, content_type="application/json")
    assert body.status_code == 400
    pointers = {p["pointer"] for p in body.json()["error"]["problems"]}
    assert {"/signal/SR_meff/1", "/signal/SR_meff/2", "/signal/CR_ttbar", "/signal/VR"} <= pointers
    # 1e999 overflows a double: the strict body parser refuses it with its reason.
    overflow = client.post(url, raw.replace("1e300", "1e999"), content_type="application/json")
    assert overflow.status_code == 400
    assert "overflows" in overflow.json()["error"]["message"]


def test_large_models_answer_with_a_job(client, stored):
    lh, _, _ = stored
    lh.summary = {**lh.summary, "parameters": 10**6}
    lh.save()
    response = client.post(
        f"/api/v1/likelihoods/{lh.pk}/reinterpret",
        {"signal": {"SR_meff": [1.0, 2.0, 3.0]}},
        format="json",
    )
    assert response.status_code == 202 and response["Location"].endswith(
        f"/api/v1/jobs/{response.json()['id']}"
    )
    created = response.json()
    # The same description of the custom workspace as an immediate answer gives.
    assert len(created["patch_sha256"]) == 64 and created["page"].endswith(
        f"/custom/{created['patch_sha256']}/"
    )
    assert set(created["channels"]) == {"removed", "added", "note"}
    Worker().run_until_idle()
    job = client.get(f"/api/v1/jobs/{created['id']}", HTTP_X_JOB_TOKEN=created["token"]).json()
    assert job["state"] == "succeeded" and 0 <= job["result"]["cls_obs"] <= 1


def test_scan_reports_progress_table_and_contour(client, stored):
    lh, _, ps = stored
    response = client.post(f"/api/v1/likelihoods/{lh.pk}/scan", {}, format="json")
    assert response.status_code == 202
    job_id = response.json()["id"]
    client.credentials(HTTP_X_JOB_TOKEN=response["X-Job-Token"])
    assert client.get(f"/api/v1/jobs/{job_id}").json()["state"] == "queued"
    Worker().run_until_idle()
    job = client.get(f"/api/v1/jobs/{job_id}").json()
    assert job["state"] == "succeeded"
    assert job["progress"] == {"done": len(ps["patches"]), "total": len(ps["patches"])}
    assert len(job["result"]["points"]) == len(ps["patches"])
    curves = job["result"]["contour"]["curves"]
    assert curves["observed"] and curves["expected"]
    svg = client.get(f"/api/v1/jobs/{job_id}/exclusion.svg")
    assert svg["Content-Type"] == "image/svg+xml" and b'id="observed-0"' in svg.content


def test_scan_of_a_slice_serves_figures_and_contour_downloads(client, stored):
    lh, _, ps = stored
    response = client.post(
        f"/api/v1/likelihoods/{lh.pk}/scan",
        {"x": "m1", "y": "m2", "fixed": {}, "upper_limit": True},
        format="json",
    )
    assert response.status_code == 202
    bad = client.post(f"/api/v1/likelihoods/{lh.pk}/scan", {"fixed": {"mass": 1}}, format="json")
    assert bad.status_code == 400 and "not one of the labels" in bad.json()["error"]["message"]
    axis = client.post(f"/api/v1/likelihoods/{lh.pk}/scan", {"fixed": {"m1": 300}}, format="json")
    assert axis.status_code == 400 and "axis" in axis.json()["error"]["message"]
    Worker().run_until_idle()
    job_id = response.json()["id"]
    # The downloads are the owner's, as the job is: without its token, 404.
    for path in ("exclusion.svg", "upper-limits.png", "contour.json", "contour.csv"):
        assert APIClient().get(f"/api/v1/jobs/{job_id}/{path}").status_code == 404, path
    client.credentials(HTTP_X_JOB_TOKEN=response["X-Job-Token"])
    job = client.get(f"/api/v1/jobs/{job_id}").json()
    assert job["state"] == "succeeded" and "mu_up_obs" in job["result"]["points"][0]
    for kind, fmt, magic in [
        ("exclusion", "png", b"\x89PNG"),
        ("exclusion", "pdf", b"%PDF"),
        ("upper-limits", "svg", b"<svg"),
        ("upper-limits", "png", b"\x89PNG"),
    ]:
        figure = client.get(f"/api/v1/jobs/{job_id}/{kind}.{fmt}")
        assert figure.status_code == 200 and magic in figure.content[:300], (kind, fmt)
    contour = client.get(f"/api/v1/jobs/{job_id}/contour.json").json()
    assert contour["x_label"] == "m1" and contour["fixed"] == {}
    assert all(isinstance(line[0], list) for line in contour["curves"]["observed"])
    assert contour["slices"] == [{"fixed": {}, "points": len(ps["patches"])}]
    csv_body = client.get(f"/api/v1/jobs/{job_id}/contour.csv")
    assert csv_body["Content-Type"] == "text/csv"
    assert csv_body.content.decode().splitlines()[0] == "curve,line,point,m1,m2"
    unknown = client.get(f"/api/v1/jobs/{job_id}/contour.json?x=mass")
    assert unknown.status_code == 400


def test_scan_of_chosen_points_and_bad_axes(client, stored):
    lh, _, _ = stored
    bad = client.post(f"/api/v1/likelihoods/{lh.pk}/scan", {"x": "mass"}, format="json")
    assert bad.status_code == 400
    missing = client.post(f"/api/v1/likelihoods/{lh.pk}/scan", {"points": ["nope"]}, format="json")
    assert missing.status_code == 404
    ok = client.post(
        f"/api/v1/likelihoods/{lh.pk}/scan",
        {"points": ["C1N2_300_0", "C1N2_800_200"]},
        format="json",
    )
    Worker().run_until_idle()
    job = Job.objects.get(pk=ok.json()["id"])
    assert [p["patch"] for p in job.result["points"]] == ["C1N2_300_0", "C1N2_800_200"]


def test_queued_job_can_be_cancelled(client, stored):
    lh, _, _ = stored
    created = client.post(f"/api/v1/likelihoods/{lh.pk}/scan", {}, format="json").json()
    job_id = created["id"]
    cancelled = client.post(f"/api/v1/jobs/{job_id}/cancel?token={created['token']}").json()
    assert cancelled["state"] == "cancelled"
    Worker().run_until_idle()
    assert Job.objects.get(pk=job_id).state == JobState.CANCELLED


@override_settings(REINTERPRET_MAX_QUEUED_JOBS=2)
def test_a_full_queue_refuses_with_429(client, stored):
    lh, _, _ = stored
    for _ in range(2):
        assert (
            client.post(f"/api/v1/likelihoods/{lh.pk}/scan", {}, format="json").status_code == 202
        )
    refused = client.post(f"/api/v1/likelihoods/{lh.pk}/scan", {}, format="json")
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "too_busy"


# ------------------------------------------- one bad point, nulls with reasons (issue 15)


@pytest.fixture
def stored_with_empty_patch(bundle):
    """The example bundle with one empty patch (allowed; real patchsets have them)."""
    root, ws, ps = bundle
    ps["patches"][4]["patch"] = []
    (root / "RegionA" / "patchset.json").write_text(json.dumps(ps))
    _, version = ingest_paths([root], Publication(title="Example", collaboration="ATLAS"))
    return version.likelihoods.get(), ps["patches"][4]["metadata"]["name"]


def test_a_scan_computes_every_point_but_the_one_that_cannot_be_built(
    client, stored_with_empty_patch
):
    from reinterpret.models import ScanPointResult

    lh, empty = stored_with_empty_patch
    created = client.post(f"/api/v1/likelihoods/{lh.pk}/scan", {}, format="json").json()
    job_id, token = created["id"], created["token"]
    Worker().run_until_idle()
    job = client.get(f"/api/v1/jobs/{job_id}", HTTP_X_JOB_TOKEN=token).json()
    assert job["state"] == "succeeded", job["error"]
    points = {p["patch"]: p for p in job["result"]["points"]}
    assert len(points) == 18
    assert points[empty]["error"] and "parameter of interest" in points[empty]["error"]
    assert points[empty]["cls_obs"] is None
    others = [p for name, p in points.items() if name != empty]
    assert all(p["error"] is None and p["cls_obs"] is not None for p in others)
    # The stored row holds null and the error, never NaN.
    row = ScanPointResult.objects.get(job_id=job_id, name=empty)
    assert row.result["cls_obs"] is None and row.result["error"] == points[empty]["error"]
    contour = job["result"]["contour"]
    assert contour["left_out"] == 1 and contour["curves"]["observed"]
    svg = client.get(f"/api/v1/jobs/{job_id}/contour.svg", HTTP_X_JOB_TOKEN=token)
    assert svg.status_code == 200 and b"not evaluated" in svg.content


def test_an_archived_point_that_cannot_be_built_answers_with_its_error(
    client, stored_with_empty_patch
):
    lh, empty = stored_with_empty_patch
    response = client.get(f"/api/v1/likelihoods/{lh.pk}/signals/{empty}/result")
    assert response.status_code == 200
    body = response.json()
    assert body["cls_obs"] is None and body["mu_up_obs"] is None
    assert "parameter of interest" in body["error"]
    page = Client().get(f"/likelihoods/{lh.pk}/signals/{empty}/")
    assert page.status_code == 200
    assert "cannot be evaluated" in page.content.decode()


def test_a_custom_signal_that_cannot_be_built_is_refused(client, stored):
    lh, _, _ = stored
    sample = {
        "name": "my_signal",
        "data": [1.0, 2.0, 3.0],
        "modifiers": [{"name": "not_the_poi", "type": "normfactor", "data": None}],
    }
    patch = [{"op": "add", "path": "/channels/0/samples/-", "value": sample}]
    response = client.post(
        f"/api/v1/likelihoods/{lh.pk}/reinterpret", {"patch": patch}, format="json"
    )
    # The validator (which asks the fitter's own spec reader) refuses it before any fit.
    assert response.status_code == 400
    error = response.json()["error"]
    assert any("parameter of interest" in p["message"] for p in error["problems"])
    assert CachedResult.objects.count() == 0


def test_a_limit_above_the_poi_bound_is_null_flagged_and_shown_as_above_it(client, bundle):
    root, ws, ps = bundle
    ps["patches"][0]["patch"][0]["value"]["data"] = [0.01, 0.01, 0.01]
    (root / "RegionA" / "patchset.json").write_text(json.dumps(ps))
    _, version = ingest_paths([root], Publication(title="Example", collaboration="ATLAS"))
    lh = version.likelihoods.get()
    name = ps["patches"][0]["metadata"]["name"]
    body = client.get(f"/api/v1/likelihoods/{lh.pk}/signals/{name}/result").json()
    assert body["mu_up_obs"] is None and body["limit_above_poi_bound"] is True
    assert body["converged"] is True and body["limits_converged"] is True
    assert "above the upper bound" in body["null_reasons"]["mu_up_obs"]
    stored = CachedResult.objects.get().result
    assert stored["mu_up_obs"] is None and stored["limit_above_poi_bound"] is True
    page = Client().get(f"/likelihoods/{lh.pk}/signals/{name}/").content.decode()
    assert "&gt; 10" in page and "10.0000" not in page


def test_stored_results_refuse_nan(stored):
    from django.db import transaction

    lh, _, _ = stored
    with pytest.raises(ValueError, match="Out of range float"), transaction.atomic():
        CachedResult.objects.create(
            key="k" * 64, likelihood=lh, result={"cls_obs": float("nan")}, inputs={}
        )


def test_a_published_patchset_with_an_empty_patch_ingests_and_scans(client):
    from tests.shared_data import require_shared

    folder = require_shared("3l-offshell-simplified")
    _, version = ingest_paths([folder], Publication(title="3L", collaboration="ATLAS"))
    lh = version.likelihoods.get()
    created = client.post(f"/api/v1/likelihoods/{lh.pk}/scan", {}, format="json").json()
    job_id, token = created["id"], created["token"]
    Worker().run_until_idle()
    job = client.get(f"/api/v1/jobs/{job_id}", HTTP_X_JOB_TOKEN=token).json()
    assert job["state"] == "succeeded" and job["progress"]["done"] == 91
    failed = [p["patch"] for p in job["result"]["points"] if p["error"]]
    assert failed == ["3Lconfig_MLL_v2p2_CRs_C1N2_WZ_150_50_3L_2L7"]
    assert sum(p["cls_obs"] is not None for p in job["result"]["points"]) == 90


def test_shown_numbers_give_a_reason_for_each_null_and_the_bound_for_limits_above_it():
    from reinterpret.services import shown_numbers

    result = {
        "cls_obs": None,
        "cls_exp": [0.01, 0.02, None, 0.2, 0.3],
        "mu_hat": 0.25,
        "mu_hat_error": None,
        "twice_nll": 12.5,
        "mu_up_obs": None,
        "mu_up_exp": [1.5, 2.0, 3.0, None, None],
        "limit_above_poi_bound": True,
        "limit_above_poi_bound_exp": [False, False, False, True, False],
        "poi_upper_bound": 10.0,
        "null_reasons": {
            "cls_obs": "not a finite number (nan); see the warnings",
            "cls_exp[2]": "not a finite number (inf)",
            "mu_hat_error": "the parameter of interest is fixed",
            "mu_up_obs": "above the upper bound of the POI (10)",
            "mu_up_exp[3]": "above the upper bound of the POI (10)",
            "mu_up_exp[4]": "the limit was not bracketed",
        },
        "error": None,
    }
    shown = shown_numbers(result)
    assert shown["cls_obs"]["text"] == "—" and "nan" in shown["cls_obs"]["reason"]
    assert shown["mu_hat"]["text"] == "0.2500" and shown["mu_hat"]["reason"] == ""
    assert shown["mu_up_obs"]["text"] == "> 10" and shown["mu_up_obs"]["above"]
    labels, cls, limits = zip(*shown["band"], strict=True)
    assert labels[2] == "median" and cls[2]["reason"] == "not a finite number (inf)"
    assert [u["text"] for u in limits] == ["1.5000", "2.0000", "3.0000", "> 10", "—"]
    assert limits[4]["reason"] == "the limit was not bracketed"
    failed = shown_numbers({**result, "null_reasons": {}, "error": "cannot build the model: x"})
    assert failed["twice_nll"]["text"] == "12.5000"  # a number is shown when there is one
    assert failed["cls_obs"]["reason"] == "cannot build the model: x"
