"""A user's mistake never answers 500: each case here once did, and now gets a 4xx in the
API's error envelope (pages: a plain error page) saying what was wrong."""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.test import APIClient

from hepstore.services import Publication, ingest_paths

pytestmark = pytest.mark.django_db

HUGE = "9" * 20


@pytest.fixture
def client():
    return APIClient()


@pytest.fixture
def lh(bundle):
    root, _, _ = bundle
    _, version = ingest_paths([root], Publication(title="Example", collaboration="ATLAS"))
    return version.likelihoods.get()


def error_of(response, status: int) -> dict:
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] and error["message"]
    return error


def test_the_page_of_an_unknown_signal_point_is_a_plain_404(lh):
    response = Client().get(f"/likelihoods/{lh.pk}/signals/no_such_point/")
    assert response.status_code == 404
    assert b"no_such_point" in response.content


@pytest.mark.parametrize("value", ["abc", "1.5", HUGE, "-" + HUGE])
def test_a_job_filter_that_is_not_an_id_is_a_400_naming_the_parameter(client, value):
    error = error_of(client.get("/api/v1/jobs/", {"likelihood": value}), 400)
    assert "likelihood" in error["message"]
    assert error["problems"][0]["parameter"] == "likelihood"


@pytest.mark.parametrize(
    ("name", "value"),
    [("year", HUGE), ("npars_min", "-" + HUGE), ("npars_max", HUGE), ("page", HUGE)],
)
def test_out_of_range_search_numbers_are_400_in_the_api_and_on_the_page(lh, client, name, value):
    error = error_of(client.get("/api/v1/search/", {name: value}), 400)
    assert name in error["message"]
    page = Client().get("/search", {name: value})
    assert page.status_code == 400 and name.encode() in page.content


def test_a_json_body_nested_100000_levels_is_a_400(client, lh):
    body = "[" * 100_000 + "]" * 100_000
    response = client.post(
        f"/api/v1/likelihoods/{lh.pk}/reinterpret", body, content_type="application/json"
    )
    assert "nested" in error_of(response, 400)["message"]


def test_custom_yields_that_would_overflow_are_refused(client, lh):
    response = client.post(
        f"/api/v1/likelihoods/{lh.pk}/reinterpret",
        {"signal": {"SR_meff": [1e308, 1.0, 1.0]}},
        format="json",
    )
    error = error_of(response, 400)
    assert error["problems"][0]["pointer"] == "/signal/SR_meff/0"


def test_inverted_poi_bounds_in_a_raw_patch_are_refused(client, lh):
    patch = [
        {"op": "replace", "path": "/measurements/0/config/parameters/0/bounds", "value": [[5, -5]]}
    ]
    response = client.post(
        f"/api/v1/likelihoods/{lh.pk}/reinterpret", {"patch": patch}, format="json"
    )
    error = error_of(response, 400)
    assert any("bounds" in p["pointer"] for p in error["problems"]), error


def test_a_custom_shapesys_of_the_wrong_length_is_refused(client, lh):
    modifier = {"name": "my_shape", "type": "shapesys", "data": [0.1, 0.2]}
    response = client.post(
        f"/api/v1/likelihoods/{lh.pk}/reinterpret",
        {"signal": {"SR_meff": [1.0, 2.0, 3.0]}, "modifiers": [modifier]},
        format="json",
    )
    error = error_of(response, 400)
    assert any("shapesys" in p["message"] for p in error["problems"]), error


def test_a_json_body_over_the_size_limit_is_a_413(client, lh, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = '{"signal": {"SR_meff": [' + ", ".join(["1.0"] * 1000) + "]}}"
    response = client.post(
        f"/api/v1/likelihoods/{lh.pk}/reinterpret", body, content_type="application/json"
    )
    assert error_of(response, 413)["code"] == "too_large"


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/nothing-here",
        "/api/v1/jobs/1/nope",
        "/api/v1/x/",
        "/api/v1/likelihoods/%0A/signals/a%0Ab/workspace/",
        "/api/v1/likelihoods/" + HUGE + "/",
        "/api/v1/jobs/-1",
    ],
)
def test_unknown_api_paths_answer_the_json_envelope(client, path):
    assert error_of(client.get(path), 404)["code"] == "not_found"


def test_a_job_url_with_a_trailing_slash_works(client, lh):
    job = client.post(f"/api/v1/likelihoods/{lh.pk}/scan", {}, format="json").json()
    token = {"HTTP_X_JOB_TOKEN": job["token"]}
    assert client.get(f"/api/v1/jobs/{job['id']}/", **token).json()["id"] == job["id"]
    assert client.get("/api/v1/jobs", **token).status_code == 200


def test_a_submission_with_an_out_of_range_inspire_id_is_a_400(client, example_docs):
    from django.contrib.auth.models import User
    from django.core.files.uploadedfile import SimpleUploadedFile

    client.force_authenticate(User.objects.create_user("sam", is_superuser=True))
    response = client.post(
        "/api/v1/submissions",
        {
            "title": "T",
            "collaboration": "ATLAS",
            "inspire_id": HUGE,
            "year": HUGE,
            "file": SimpleUploadedFile("ws.json", b"{}"),
        },
    )
    error = error_of(response, 400)
    assert {p["pointer"] for p in error["problems"]} == {"/inspire_id", "/year"}


def test_a_raw_patch_adding_overflowing_yields_is_refused(client, lh):
    sample = {
        "name": "huge",
        "data": [1e308, 1.0, 1.0],
        "modifiers": [{"name": "mu_SIG", "type": "normfactor", "data": None}],
    }
    patch = [{"op": "add", "path": "/channels/0/samples/-", "value": sample}]
    response = client.post(
        f"/api/v1/likelihoods/{lh.pk}/reinterpret", {"patch": patch}, format="json"
    )
    error = error_of(response, 400)
    assert any(p["pointer"].endswith("/data/0") for p in error["problems"]), error
