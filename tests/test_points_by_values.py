"""Signal points addressed by their label values (m1=300&m2=0) and a point's patch alone."""

from __future__ import annotations

import json

import pytest
from rest_framework.test import APIClient

from hepstore.services import Publication, ingest_paths

pytestmark = pytest.mark.django_db


@pytest.fixture
def client():
    return APIClient()


@pytest.fixture
def lh(bundle):
    root, _, _ = bundle
    _, version = ingest_paths([root], Publication(title="Example", collaboration="ATLAS"))
    return version.likelihoods.get()


def names(response) -> list[str]:
    return [p["name"] for p in response.json()["results"]]


def test_the_grid_is_filtered_by_label_values(client, lh):
    url = f"/api/v1/likelihoods/{lh.pk}/signals/"
    assert names(client.get(url, {"m1": 300})) == ["C1N2_300_0", "C1N2_300_100", "C1N2_300_200"]
    assert names(client.get(url, {"m1": "400.0", "m2": 100})) == ["C1N2_400_100"]
    assert names(client.get(url, {"m1": 301})) == []
    assert client.get(url).json()["count"] == 18


def test_an_unknown_label_is_a_clear_400(client, lh):
    response = client.get(f"/api/v1/likelihoods/{lh.pk}/signals/", {"mass": 300})
    assert response.status_code == 400
    assert "m1, m2" in response.json()["error"]["message"]


def test_the_result_of_the_point_the_values_name(client, lh):
    by_values = client.get(f"/api/v1/likelihoods/{lh.pk}/signals/result", {"m1": 500, "m2": 100})
    assert by_values.status_code == 200, by_values.json()
    by_name = client.get(f"/api/v1/likelihoods/{lh.pk}/signals/C1N2_500_100/result").json()
    got = by_values.json()
    assert got["name"] == "C1N2_500_100"
    assert got["cls_obs"] == by_name["cls_obs"] and got["cls_exp"] == by_name["cls_exp"]


def test_ambiguous_values_list_the_candidates(client, lh):
    response = client.get(f"/api/v1/likelihoods/{lh.pk}/signals/result", {"m2": 200})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "ambiguous"
    assert [p["name"] for p in error["problems"]] == [f"C1N2_{m}_200" for m in range(300, 900, 100)]


def test_values_naming_no_point_give_the_nearest(client, lh):
    response = client.get(f"/api/v1/likelihoods/{lh.pk}/signals/result", {"m1": 510, "m2": 90})
    assert response.status_code == 404
    problems = response.json()["error"]["problems"]
    assert problems[0]["name"] == "C1N2_500_100"
    assert problems[0]["values"] == {"m1": 500, "m2": 100}


def test_no_values_at_all_is_a_400_naming_the_labels(client, lh):
    response = client.get(f"/api/v1/likelihoods/{lh.pk}/signals/result")
    assert response.status_code == 400 and "m1=" in response.json()["error"]["message"]


def test_a_points_patch_alone(client, lh, bundle):
    _, _, ps = bundle
    response = client.get(f"/api/v1/likelihoods/{lh.pk}/signals/C1N2_400_200/patch")
    data = b"".join(response.streaming_content)
    expected = next(p for p in ps["patches"] if p["metadata"]["name"] == "C1N2_400_200")
    assert json.loads(data) == expected["patch"]
    assert client.get(f"/api/v1/likelihoods/{lh.pk}/signals/nope/patch").status_code == 404
