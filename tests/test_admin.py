"""The admin lists what the archive holds, grants membership, and resolves a claimed INSPIRE id."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from hepstore.errors import InvalidSubmission
from hepstore.models import Analysis, Collaboration
from hepstore.services import Publication, ingest_paths
from reinterpret import jobs
from tests.conftest import write_bundle

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client):
    admin = User.objects.create_superuser("root", password="pw")
    client.force_login(admin)
    return client


def test_every_archive_list_shows_its_rows(staff, bundle):
    root, _, _ = bundle
    member = User.objects.create_user("alice")
    _, version = ingest_paths(
        [root], Publication(title="Stop search", collaboration="ATLAS", inspire_id=7)
    )
    Collaboration.objects.get(name="ATLAS").members.add(member)
    jobs.submit(version.likelihoods.get(), "scan", {})
    expected = {
        "hepstore/collaboration": ["ATLAS", "alice"],
        "hepstore/analysis": ["Stop search"],
        "hepstore/analysisversion": ["Stop search"],
        "hepstore/likelihood": ["RegionA"],
        "reinterpret/job": ["scan", "queued"],
        "reinterpret/cachedresult": [],
    }
    for model, words in expected.items():
        page = staff.get(f"/admin/{model}/")
        assert page.status_code == 200, model
        text = page.content.decode()
        assert all(w in text for w in words), (model, words)
    analysis = Analysis.objects.get()
    assert staff.get(f"/admin/hepstore/analysis/{analysis.pk}/change/").status_code == 200


def test_an_inspire_id_claimed_by_the_wrong_collaboration_is_reassigned_in_the_admin(staff, bundle):
    root, ws, ps = bundle
    wrong = Publication(title="Stop search", collaboration="CMS", inspire_id=1234)
    _, version = ingest_paths([root], wrong)
    atlas = Collaboration.objects.create(name="ATLAS")
    alice = User.objects.create_user("alice")
    atlas.members.add(alice)
    right = Publication(title="Stop search", collaboration="ATLAS", inspire_id=1234)
    ps["patches"].pop()
    write_bundle(root, ws, ps)
    with pytest.raises(InvalidSubmission, match="reassign"):
        ingest_paths([root], right, user=alice)

    analysis = Analysis.objects.get()
    form = {
        "title": analysis.title,
        "collaboration": atlas.pk,
        "inspire_id": 1234,
        "abstract": "",
        "arxiv_id": "",
        "doi": "",
        "year": "",
        "keywords": "[]",
        "versions-TOTAL_FORMS": "1",
        "versions-INITIAL_FORMS": "1",
        "versions-MIN_NUM_FORMS": "0",
        "versions-MAX_NUM_FORMS": "1000",
        "versions-0-id": version.pk,
        "versions-0-analysis": analysis.pk,
        "versions-0-note": "",
    }
    response = staff.post(f"/admin/hepstore/analysis/{analysis.pk}/change/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    analysis.refresh_from_db()
    assert analysis.collaboration == atlas

    _, v2 = ingest_paths([root], right, user=alice)
    assert v2.analysis_id == analysis.pk and v2.number == 2
