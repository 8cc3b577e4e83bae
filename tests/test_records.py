"""Records addressed by INSPIRE id, links to the publication elsewhere, and citations."""

from __future__ import annotations

import pytest
from django.test import Client

from hepstore import citations
from hepstore.models import Analysis
from hepstore.services import Publication, ingest_paths
from tests.conftest import write_bundle

pytestmark = pytest.mark.django_db
PUB = Publication(
    title="Search for direct stau production {with} two taus",
    collaboration="ATLAS",
    inspire_id=1765529,
    arxiv_id="1911.06660",
    doi="10.1103/PhysRevD.101.032009",
    year=2020,
)


@pytest.fixture
def two_versions(bundle):
    root, ws, ps = bundle
    ingest_paths([root], PUB, note="first")
    ps["patches"].pop()  # an identical resubmission would be refused (409)
    write_bundle(root, ws, ps)
    ingest_paths([root], PUB, note="second")
    return Analysis.objects.get(inspire_id=1765529)


def test_the_record_page_resolves_the_inspire_id_with_links_and_citations(client, two_versions):
    page = client.get("/record/ins1765529")
    assert page.status_code == 200
    html = page.content.decode()
    for url in (
        "https://inspirehep.net/literature/1765529",
        "https://www.hepdata.net/record/ins1765529",
        "https://arxiv.org/abs/1911.06660",
        "https://doi.org/10.1103/PhysRevD.101.032009",
    ):
        assert f'href="{url}"' in html
    assert "@misc{hepstore:ins1765529:v1," in html and "@misc{hepstore:ins1765529:v2," in html
    only_first = client.get("/record/ins1765529?version=1").content.decode()
    assert "hepstore:ins1765529:v1" in only_first and "hepstore:ins1765529:v2" not in only_first
    assert client.get("/record/ins1765529?version=9").status_code == 404
    assert client.get("/record/ins42").status_code == 404


def test_the_analysis_page_links_out_too(client, two_versions):
    html = client.get(f"/analyses/{two_versions.pk}/").content.decode()
    assert 'href="https://inspirehep.net/literature/1765529"' in html
    assert "http://testserver/record/ins1765529" in html


def test_the_record_api_gives_a_version_with_its_citation(client: Client, two_versions):
    latest = client.get("/api/v1/records/ins1765529").json()
    assert latest["id"] == two_versions.pk and latest["versions"] == [1, 2]
    assert latest["version"]["number"] == 2 and latest["version"]["note"] == "second"
    assert latest["links"]["record"] == "http://testserver/record/ins1765529"
    first = client.get("/api/v1/records/ins1765529", {"version": 1}).json()
    assert first["version"]["note"] == "first"
    assert first["citation"]["bibtex"].startswith("@misc{hepstore:ins1765529:v1,")
    assert "http://testserver/record/ins1765529?version=1" in first["citation"]["text"]
    missing = client.get("/api/v1/records/ins1765529", {"version": 7})
    assert missing.status_code == 404 and "versions: 1, 2" in missing.json()["error"]["message"]
    assert client.get("/api/v1/records/ins1765529", {"version": "x"}).status_code == 400
    assert client.get("/api/v1/records/ins1").status_code == 404


def test_bibtex_is_one_balanced_entry_with_the_identifiers(two_versions):
    version = two_versions.versions.get(number=1)
    entry = citations.bibtex(two_versions, version, "https://portal/record/ins1765529?version=1")
    assert entry.count("{") == entry.count("}")
    for field in (
        "eprint = {1911.06660}",
        "archivePrefix = {arXiv}",
        "doi = {10.1103/PhysRevD.101.032009}",
        "year = {2020}",
        "collaboration = {ATLAS}",
        "title = {{Search for direct stau production {with} two taus}}",
    ):
        assert field in entry
    line = citations.citation_line(two_versions, version, "https://portal/x")
    assert line.startswith("ATLAS Collaboration, \u201cSearch for direct stau")
    assert "arXiv:1911.06660" in line and "likelihoods version 1" in line


def test_unbalanced_braces_in_a_title_cannot_break_the_entry(two_versions):
    two_versions.title = "A title with a stray } brace"
    entry = citations.bibtex(two_versions, two_versions.versions.first(), "u")
    assert entry.count("{") == entry.count("}")
