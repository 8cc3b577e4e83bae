"""Stored combinations over the API: create (refused with pointers when members clash),
validate, combined point results with provenance and members alone, custom signals per
member, and whole-grid scans through the job queue."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from hepstore import examples
from hepstore.services import Publication, ingest_paths
from reinterpret import combination_services
from reinterpret.jobs import Worker
from reinterpret.models import CachedResult, Combination, CombinedResult, Job, JobState
from tests.conftest import write_bundle
from tests.test_combine import region

pytestmark = pytest.mark.django_db


@pytest.fixture
def client():
    return APIClient()


@pytest.fixture
def regions(tmp_path):
    """Two archived regions: the example (A) and a rescaled copy with its own channel names
    (B) whose grid lacks the m1 = 800 points (so those are background only there)."""
    a = region()
    b = region("_B", 1.3)
    ps_b = examples.patchset(b)
    ps_b["patches"] = [p for p in ps_b["patches"] if p["metadata"]["values"][0] != 800]
    root = tmp_path / "bundle"
    write_bundle(root, a, examples.patchset(a), region="RegionA")
    write_bundle(root, b, ps_b, region="RegionB")
    _, version = ingest_paths([root], Publication(title="Example", collaboration="ATLAS"))
    return {lh.region: lh for lh in version.likelihoods.all()}


def definition(regions, **policy):
    return {
        "name": "A and B",
        "members": [
            {"likelihood": regions["RegionA"].pk, "tag": "A"},
            {"likelihood": regions["RegionB"].pk, "tag": "B"},
        ],
        "policy": policy,
    }


def test_validate_reports_every_clash_with_its_pointer_and_create_refuses(client, regions):
    body = definition(regions)
    body["members"][1] = {"likelihood": regions["RegionA"].pk, "tag": "A2"}
    report = client.post("/api/v1/combinations/validate", body, format="json").json()
    assert report["valid"] is False
    clashes = [(p["file"], p["pointer"]) for p in report["problems"] if p["severity"] == "error"]
    assert clashes == [("A2", "/channels/0/name"), ("A2", "/channels/1/name")]
    assert report["problems"][0]["likelihood"] == regions["RegionA"].pk
    refused = client.post("/api/v1/combinations/", body, format="json")
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "invalid_combination"
    assert len(refused.json()["error"]["problems"]) >= 2
    assert not Combination.objects.exists()


def test_bad_definitions_are_400s_with_pointers(client, regions):
    body = definition(regions, decorrelate="lumi", bogus=1)
    response = client.post("/api/v1/combinations/", body, format="json")
    assert response.status_code == 400  # the policy's documented shape
    pointers = {p["pointer"] for p in response.json()["error"]["problems"]}
    assert pointers == {"/policy/decorrelate", "/policy/bogus"}
    body = definition(regions, decorrelate=["lumi"])
    body["members"].append({"likelihood": 99999})
    response = client.post("/api/v1/combinations/", body, format="json")
    assert response.status_code == 422  # well formed, but no such likelihood
    pointers = {p["pointer"] for p in response.json()["error"]["problems"]}
    assert "/members/2/likelihood" in pointers
    assert client.post("/api/v1/combinations/", [1, 2], format="json").status_code == 400


def test_a_combination_is_created_listed_and_described(client, regions):
    created = client.post(
        "/api/v1/combinations/", definition(regions, decorrelate=["lumi"]), format="json"
    )
    assert created.status_code == 201, created.json()
    body = created.json()
    assert body["report"]["valid"] and body["report"]["summary"]["points"] == 18
    assert body["report"]["summary"]["points_background_only_somewhere"] == 3
    assert [m["tag"] for m in body["members"]] == ["A", "B"]
    # A cleared tag field (as the page's form sends it) takes the default tag.
    untagged = definition(regions)
    untagged["members"][0]["tag"] = ""
    report = client.post("/api/v1/combinations/validate", untagged, format="json")
    assert report.status_code == 200 and report.json()["valid"], report.json()
    listed = client.get("/api/v1/combinations/").json()["results"]
    assert [c["id"] for c in listed] == [body["id"]]
    detail = client.get(f"/api/v1/combinations/{body['id']}").json()
    assert detail["policy"]["decorrelate"] == ["lumi"] and detail["latest_scan"] is None
    points = client.get(f"/api/v1/combinations/{body['id']}/points").json()
    assert points["labels"] == ["m1", "m2"]
    only_a = [p for p in points["points"] if p["background_only"]]
    assert {p["name"] for p in only_a} == {"C1N2_800_0", "C1N2_800_100", "C1N2_800_200"}
    assert all(p["background_only"] == ["B"] for p in only_a)


def test_point_result_has_provenance_members_alone_and_is_cached(client, regions):
    combination = client.post("/api/v1/combinations/", definition(regions), format="json").json()
    url = f"/api/v1/combinations/{combination['id']}/points/C1N2_500_100/result"
    first = client.get(url)
    assert first.status_code == 200 and first["X-Cache"] == "miss"
    result = first.json()
    assert result["point"]["members"] == {"A": "C1N2_500_100", "B": "C1N2_500_100"}
    assert result["point"]["background_only"] == []
    assert set(result["members_alone"]) == {"A", "B"} and len(result["mu_up_exp"]) == 5
    # Both regions see the same signal, B over 1.3 times the background: the combination is
    # more sensitive than either, and A alone is the best-expected member.
    alone = result["members_alone"]
    assert result["cls_exp"][2] < min(alone["A"]["cls_exp"][2], alone["B"]["cls_exp"][2])
    assert alone["A"]["mu_up_exp"][2] < alone["B"]["mu_up_exp"][2]
    assert result["best_expected_member"] == "A"
    assert [m["background_sha256"] for m in result["inputs"]["members"]] == [
        regions["RegionA"].background_id,
        regions["RegionB"].background_id,
    ]
    assert client.get(url)["X-Cache"] == "hit"
    assert CombinedResult.objects.count() == 1 and CachedResult.objects.count() == 2
    only_a = client.get(
        f"/api/v1/combinations/{combination['id']}/points/C1N2_800_100/result"
    ).json()
    assert only_a["point"]["background_only"] == ["B"]
    assert set(only_a["members_alone"]) == {"A"}
    missing = client.get(f"/api/v1/combinations/{combination['id']}/points/nope/result")
    assert missing.status_code == 404


def test_same_members_and_policy_share_the_cache_a_different_policy_does_not(client, regions):
    one = client.post("/api/v1/combinations/", definition(regions), format="json").json()
    two = client.post("/api/v1/combinations/", definition(regions), format="json").json()
    three = client.post(
        "/api/v1/combinations/", definition(regions, decorrelate=["lumi"]), format="json"
    ).json()
    path = "points/C1N2_400_0/result"
    assert client.get(f"/api/v1/combinations/{one['id']}/{path}")["X-Cache"] == "miss"
    assert client.get(f"/api/v1/combinations/{two['id']}/{path}")["X-Cache"] == "hit"
    assert client.get(f"/api/v1/combinations/{three['id']}/{path}")["X-Cache"] == "miss"


def test_custom_signal_with_yields_per_member(client, regions):
    combination = client.post("/api/v1/combinations/", definition(regions), format="json").json()
    url = f"/api/v1/combinations/{combination['id']}/reinterpret"
    both = client.post(
        url,
        {
            "members": {
                "A": {"signal": {"SR_meff": [2.0, 4.0, 6.0]}},
                "B": {"signal": {"SR_meff_B": [2.0, 4.0, 6.0]}},
            }
        },
        format="json",
    )
    assert both.status_code == 200, both.json()
    only_a = client.post(
        url, {"members": {"A": {"signal": {"SR_meff": [2.0, 4.0, 6.0]}}}}, format="json"
    ).json()
    assert only_a["point"]["background_only"] == ["B"]
    assert both.json()["cls_obs"] < only_a["cls_obs"]
    bad = client.post(
        url,
        {"members": {"A": {"signal": {"SR_meff": [1.0]}}, "Z": {"signal": {}}}},
        format="json",
    )
    assert bad.status_code == 422
    pointers = {p["pointer"] for p in bad.json()["error"]["problems"]}
    assert {"/members/A/signal/SR_meff", "/members/Z"} <= pointers
    broken = client.post(
        url,
        {"members": {"B": {"patch": [{"op": "remove", "path": "/observations"}]}}},
        format="json",
    )
    assert broken.status_code == 422
    (problem,) = broken.json()["error"]["problems"]
    assert problem["pointer"] == "/members/B/patch" and "observations" in problem["message"]


def test_whole_grid_scan_through_the_job_queue_with_contour(client, regions):
    combination = client.post("/api/v1/combinations/", definition(regions), format="json").json()
    response = client.post(f"/api/v1/combinations/{combination['id']}/scan", {}, format="json")
    assert response.status_code == 202
    job_id = response.json()["id"]
    assert response.json()["combination"] == combination["id"]
    Worker(name="test").run_until_idle()
    job = Job.objects.get(pk=job_id)
    assert job.state == JobState.SUCCEEDED, job.error
    points = job.result["points"]
    assert len(points) == 18 and job.result["labels"] == ["m1", "m2"]
    by_name = {p["patch"]: p for p in points}
    assert by_name["C1N2_800_100"]["background_only"] == ["B"]
    assert by_name["C1N2_300_0"]["members"] == {"A": "C1N2_300_0", "B": "C1N2_300_0"}
    assert job.result["contour"]["curves"]
    svg_url = f"/api/v1/combinations/{combination['id']}/scans/{job_id}/contour.svg"
    token = response.json()["token"]  # an anonymous job
    # Jobs are shown to their owners only: the contour and the latest scan of the detail
    # need the anonymous job's token (header or ?token=).
    svg = client.get(svg_url, HTTP_X_JOB_TOKEN=token)
    assert svg.status_code == 200 and b"<svg" in svg.content[:300]
    assert b"Observed limit" in svg.content
    assert client.get(f"{svg_url}?token={token}").status_code == 200
    assert client.get(svg_url).status_code == 404
    detail_url = f"/api/v1/combinations/{combination['id']}"
    assert client.get(detail_url, HTTP_X_JOB_TOKEN=token).json()["latest_scan"]["id"] == job_id
    assert client.get(detail_url).json()["latest_scan"] is None
    bad_axis = client.post(
        f"/api/v1/combinations/{combination['id']}/scan", {"x": "nope"}, format="json"
    )
    assert bad_axis.status_code == 400


def test_a_malformed_definition_is_a_400_naming_every_field(client, regions):
    body = {
        "name": 0,
        "members": [
            {"likelihood": str(regions["RegionA"].pk), "tag": "A\n"},
            {"likelihood": regions["RegionB"].pk, "measurement": "m" * 201},
        ],
        "policy": ["decorrelate"],
        "label_map": {"A": {"m1": 0}},
    }
    for url in ("/api/v1/combinations/", "/api/v1/combinations/validate"):
        response = client.post(url, body, format="json")
        assert response.status_code == 400, response.json()
        pointers = {p["pointer"] for p in response.json()["error"]["problems"]}
        assert pointers == {
            "/name",
            "/members/0/likelihood",
            "/members/0/tag",
            "/members/1/measurement",
            "/policy",
            "/label_map/A/m1",
        }
    one = client.post(
        "/api/v1/combinations/validate",
        {"name": "x", "members": [{"likelihood": regions["RegionA"].pk}]},
        format="json",
    )
    assert one.status_code == 400
    assert [p["pointer"] for p in one.json()["error"]["problems"]] == ["/members"]
    assert not Combination.objects.exists()
    combination, _ = combination_services.create(definition(regions))
    typed = client.post(
        f"/api/v1/combinations/{combination.pk}/reinterpret",
        {"members": {"A": {"signal": {"SR_meff": ["2.0", 4.0, 6.0]}}}},
        format="json",
    )
    assert typed.status_code == 400
    assert [p["pointer"] for p in typed.json()["error"]["problems"]] == [
        "/members/A/signal/SR_meff/0"
    ]


def test_a_policy_off_its_documented_shape_is_a_400_saying_where(client, regions):
    for policy, where in (
        ({"prefer": {}}, ("/policy/prefer", "is not of type 'array'")),
        ({"renames": [{"old": "lumi"}]}, ("/policy/renames/0", "'new' is a required property")),
        ({"decorelate": ["lumi"]}, ("/policy/decorelate", "not a key of the policy")),
    ):
        body = {**definition(regions), "policy": policy}
        response = client.post("/api/v1/combinations/validate", body, format="json")
        assert response.status_code == 400, response.json()
        (problem,) = response.json()["error"]["problems"]
        assert problem["pointer"] == where[0] and where[1] in problem["message"]


def test_the_list_of_combinations_is_paged(client, regions):
    ids = [
        client.post("/api/v1/combinations/", definition(regions), format="json").json()["id"]
        for _ in range(3)
    ]
    page = client.get("/api/v1/combinations/?page_size=2").json()
    assert page["count"] == 3 and [c["id"] for c in page["results"]] == ids[::-1][:2]
    assert "page=2" in page["next"]
    assert client.get("/api/v1/combinations/?page=9").status_code == 404
    options = client.options("/api/v1/combinations/")
    assert options.status_code == 200 and "members" in options.json()["actions"]["POST"]


def test_the_combination_posts_are_throttled_by_scope_and_the_list_is_not(
    client, regions, settings
):
    combination, _ = combination_services.create(definition(regions))
    settings.HEPSTORE_THROTTLE_RATES = {
        **settings.HEPSTORE_THROTTLE_RATES,
        **{f"{scope}_anon": "1/hour" for scope in ("validate", "submissions", "reinterpret")},
        "scan_anon": "1/hour",
    }
    base = f"/api/v1/combinations/{combination.pk}"
    signal = {"members": {"A": {"signal": {"SR_meff": [2.0, 4.0, 6.0]}}}}
    for url, body in [
        ("/api/v1/combinations/validate", definition(regions)),
        ("/api/v1/combinations/", definition(regions)),
        (f"{base}/reinterpret", signal),
        (f"{base}/scan", {"points": ["C1N2_300_0"]}),
    ]:
        first = client.post(url, body, format="json")
        assert first.status_code in (200, 201, 202), (url, first.json())
        refused = client.post(url, body, format="json")
        assert refused.status_code == 429, url
        assert refused.json()["error"]["code"] == "throttled" and int(refused["Retry-After"]) > 0
    assert all(client.get("/api/v1/combinations/").status_code == 200 for _ in range(3))
