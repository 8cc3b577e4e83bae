"""Reinterpretation over the API: cached point results, custom signals, scans, jobs."""

from __future__ import annotations

import json
import subprocess
import sys

import jsonpatch
import pytest
from django.test import override_settings
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
    # 1e999 is valid JSON that parses to infinity.
    raw = '{"signal": {"SR_meff": [1.0, 1e999, -2.0], "CR_ttbar": [1.0], "VR": [1.0]}}'
    body = client.post(
        f"/api/v1/likelihoods/{lh.pk}/reinterpret", raw, content_type="application/json"
    )
    assert body.status_code == 400
    pointers = {p["pointer"] for p in body.json()["error"]["problems"]}
    assert {"/signal/SR_meff/1", "/signal/SR_meff/2", "/signal/CR_ttbar", "/signal/VR"} <= pointers


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
    Worker().run_until_idle()
    job = client.get(f"/api/v1/jobs/{response.json()['id']}").json()
    assert job["state"] == "succeeded" and 0 <= job["result"]["cls_obs"] <= 1


def test_scan_reports_progress_table_and_contour(client, stored):
    lh, _, ps = stored
    response = client.post(f"/api/v1/likelihoods/{lh.pk}/scan", {}, format="json")
    assert response.status_code == 202
    job_id = response.json()["id"]
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
    job_id = client.post(f"/api/v1/likelihoods/{lh.pk}/scan", {}, format="json").json()["id"]
    cancelled = client.post(f"/api/v1/jobs/{job_id}/cancel").json()
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
