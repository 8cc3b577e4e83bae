"""Lists of the API: typed filters (django-filter), paging with page_size up to a maximum,
and one envelope {"count", "next", "previous", "results"}."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from hepstore.services import Publication, ingest_paths

pytestmark = pytest.mark.django_db


@pytest.fixture
def client():
    return APIClient()


@pytest.fixture
def three(tmp_path, example_docs):
    from tests.conftest import write_bundle

    ws, ps = example_docs
    made = []
    for i, (collaboration, inspire) in enumerate([("ATLAS", 1001), ("CMS", 1002), ("ATLAS", None)]):
        root = write_bundle(tmp_path / f"b{i}", ws, ps)
        _, version = ingest_paths(
            [root],
            Publication(
                title=f"Search {i}", collaboration=collaboration, inspire_id=inspire, year=2020 + i
            ),
        )
        made.append(version.analysis_id)
    return made


def titles(response) -> list[str]:
    assert response.status_code == 200, response.content
    return sorted(a["title"] for a in response.json()["results"])


def test_analyses_filter_by_collaboration_inspire_id_and_year(client, three):
    assert titles(client.get("/api/v1/analyses/?collaboration=atlas")) == ["Search 0", "Search 2"]
    assert titles(client.get("/api/v1/analyses/?inspire_id=1002")) == ["Search 1"]
    assert titles(client.get("/api/v1/analyses/?year=2022")) == ["Search 2"]
    assert titles(client.get("/api/v1/analyses/?collaboration=LHCb")) == []


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("inspire_id=abc", "inspire_id"),
        ("inspire_id=" + "9" * 20, "inspire_id"),
        ("year=-1", "year"),
        ("page_size=abc", "page_size"),
        ("page_size=0", "page_size"),
        ("page=abc", "page"),
    ],
)
def test_a_bad_filter_or_page_value_is_a_400_naming_it(client, three, query, parameter):
    response = client.get(f"/api/v1/analyses/?{query}")
    assert response.status_code == 400
    error = response.json()["error"]
    assert parameter in error["message"] and error["problems"][0]["parameter"] == parameter


def test_page_size_is_honoured_up_to_the_maximum(client, three, settings):
    body = client.get("/api/v1/analyses/?page_size=1").json()
    assert body["count"] == 3 and len(body["results"]) == 1 and "page=2" in body["next"]
    settings.HEPSTORE_API_MAX_PAGE_SIZE = 2
    assert len(client.get("/api/v1/analyses/?page_size=1000").json()["results"]) == 2


def test_every_list_has_the_same_envelope(client, three):
    lh = client.get("/api/v1/likelihoods/").json()["results"][0]["id"]
    for url in ("/api/v1/analyses/", "/api/v1/likelihoods/", "/api/v1/jobs/"):
        assert set(client.get(url).json()) == {"count", "next", "previous", "results"}
    assert set(client.get(f"/api/v1/likelihoods/{lh}/signals/").json()) == {
        "count",
        "next",
        "previous",
        "results",
    }


@pytest.mark.parametrize(
    "query",
    [
        "/api/v1/analyses/?inspire_id=",
        "/api/v1/analyses/?year=2020&year=2021",
        "/api/v1/likelihoods/?page_size=&page=",
        "/api/v1/jobs/?kind=",
        "/api/v1/search/?npars_min=1&npars_min=",
        "/api/v1/search/?sort=",
    ],
)
def test_typed_parameters_given_empty_or_twice_are_400(client, query):
    response = client.get(query)
    assert response.status_code == 400
    assert response.json()["error"]["problems"][0]["parameter"] in query


def test_the_analysis_list_page_uses_the_same_filters(three):
    from django.test import Client

    page = Client()
    body = page.get("/", {"collaboration": "cms"}).content.decode()
    assert "Search 1" in body and "Search 0" not in body
    assert "Search 0" in page.get("/", {"q": "atlas"}).content.decode()
    refused = page.get("/", {"year": "99999999999999999999"})
    assert refused.status_code == 400 and b"year" in refused.content


def test_list_filters_do_not_apply_to_one_objects_url(client, three):
    analysis = three[0]
    assert client.get(f"/api/v1/analyses/{analysis}/?year=abc").status_code == 200
