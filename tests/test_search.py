"""Search behaviour, one suite for both engines: the embedded database backend always, and
Elasticsearch too when ELASTICSEARCH_URL points at a real cluster."""

from __future__ import annotations

import os

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from hepstore import search
from hepstore.search import SearchQuery
from hepstore.services import Publication, ingest_paths
from tests.shared_data import ANALYSES, SHARED

pytestmark = pytest.mark.django_db

BACKENDS = ["database"] + (["elasticsearch"] if os.environ.get("ELASTICSEARCH_URL") else [])

REAL = {
    "sbottom": Publication(
        title="Search for bottom-squark pair production with Higgs bosons in the final state",
        collaboration="ATLAS",
        year=2019,
        arxiv_id="1908.03122",
        inspire_id=1748602,
        abstract="Bottom squarks decay via the second-lightest neutralino to b-jets.",
    ),
    "staus": Publication(
        title="Search for direct stau production in events with two hadronic tau leptons",
        collaboration="ATLAS",
        year=2020,
        arxiv_id="1911.06660",
        inspire_id=1765529,
        abstract="Pair-produced tau sleptons decaying into hadronically decaying taus.",
    ),
    "1lbb": Publication(
        title="Search for electroweakinos in final states with one lepton and a Higgs boson",
        collaboration="ATLAS",
        year=2020,
        arxiv_id="1909.09226",
        inspire_id=1755298,
        abstract="Wh production where the Higgs boson decays to a pair of b-quarks.",
    ),
    "erjr": Publication(
        title="Search for chargino-neutralino production with three leptons (recursive jigsaw)",
        collaboration="ATLAS",
        year=2020,
        arxiv_id="1912.08479",
        inspire_id=1771533,
        abstract="Compressed electroweakino spectra with an emulated recursive jigsaw.",
    ),
}


@pytest.fixture(params=BACKENDS)
def engine(request, settings):
    if request.param == "database":
        settings.ELASTICSEARCH_URL = ""
    else:
        settings.ELASTICSEARCH_URL = os.environ["ELASTICSEARCH_URL"]
    return request.param


@pytest.fixture
def example(bundle, engine):
    root, _, _ = bundle
    _, version = ingest_paths(
        [root],
        Publication(
            title="Example search for charginos",
            collaboration="CMS",
            year=2024,
            abstract="A generated analysis with a <script> in its abstract.",
            keywords=("example",),
        ),
    )
    search.index_version(version.pk)  # on_commit does not fire inside the test transaction
    return version.likelihoods.get()


def find(**kw):
    return search.search(SearchQuery(**kw))


def test_free_text_finds_the_title_and_highlights_it(example):
    result = find(text="chargino")
    assert result.total == 1
    assert "<mark>" in result.hits[0]["highlights"]["title"]


def test_highlights_escape_html(example):
    result = find(text="generated")
    snippet = result.hits[0]["highlights"]["abstract"]
    assert "&lt;script&gt;" in snippet and "<script>" not in snippet


def test_channel_sample_and_modifier_names_are_searchable(example):
    for text in ("SR_meff", "wjets", "wjets_xsec", "staterror", "mu_SIG"):
        assert find(text=text).total == 1, text
    assert find(text="nonexistent_channel").total == 0


def test_filters_and_facets(example):
    result = find()
    assert dict(result.facets["collaboration"]) == {"CMS": 1}
    assert dict(result.facets["modifier_type"])["histosys"] == 1
    assert dict(result.facets["label"]) == {"m1": 1, "m2": 1}
    assert find(collaboration="ATLAS").total == 0
    assert find(year=2024).total == 1 and find(year=2023).total == 0
    assert find(modifier_type="shapesys").total == 0
    assert find(npars_min=5, npars_max=50).total == 1 and find(npars_min=51).total == 0


def test_label_ranges_overlap_the_signal_grid(example):
    assert find(label="m1", label_min=700, label_max=900).total == 1  # grid m1 300..800
    assert find(label="m1", label_min=850).total == 0
    assert find(label="m2", label_max=-1).total == 0


def test_search_api_and_bad_queries(example):
    client = APIClient()
    body = client.get("/api/v1/search/", {"q": "SR_meff", "collaboration": "CMS"}).json()
    assert body["total"] == 1 and body["hits"][0]["likelihood"] == example.pk
    assert {"value": "CMS", "count": 1} in body["facets"]["collaboration"]
    bad = client.get("/api/v1/search/", {"label_min": "x"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "bad_query"
    assert client.get("/api/v1/search/", {"label_min": "5"}).status_code == 400


def test_search_page_shows_facets_and_highlights(client, example):
    page = client.get("/search", {"q": "wjets"}).content.decode()
    assert "<mark>wjets</mark>" in page and "CMS" in page and f"/likelihoods/{example.pk}/" in page


def test_reindex_rebuilds_from_the_database(example):
    from hepstore.models import SearchDocument

    SearchDocument.objects.all().delete()
    assert find(text="chargino").total == 0
    call_command("reindex")
    assert find(text="chargino").total == 1


@pytest.mark.slow
def test_real_likelihoods_are_found_by_what_is_inside_them(engine):
    if not SHARED.exists():
        pytest.skip("shared likelihood data not available")
    for name in ANALYSES:
        folder = SHARED / name
        _, version = ingest_paths([folder / "BkgOnly.json", folder / "patchset.json"], REAL[name])
        search.index_version(version.pk)

    def titles(**kw):
        return {h["title"].split(" ")[2] for h in find(**kw).hits}

    assert find().total == 4
    assert titles(text="SR_meff") == {"bottom-squark"}  # a channel name (sbottom)
    # Titles/abstracts of sbottom and 1lbb; staus through its samples Higgs_Staus, Boson_Staus.
    assert titles(text="Higgs boson") == {"bottom-squark", "electroweakinos", "direct"}
    assert titles(text="recursive jigsaw") == {"chargino-neutralino"}
    assert titles(text="sleptons") == {"direct"}  # staus abstract
    assert find(text="shapesys").total == 1  # a modifier type only erjr has
    assert titles(label="m1", label_min=700, label_max=2000) == {"electroweakinos"}
    assert titles(label="msb", label_min=1500) == {"bottom-squark"}
    assert dict(find().facets["year"]) == {2020: 3, 2019: 1}
