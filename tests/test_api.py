"""The REST API: listing, downloads, validation and submission uploads, the error envelope."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile

import jsonpatch
import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from hepstore.jsonio import canonical_bytes
from hepstore.models import Analysis, Collaboration, Likelihood
from hepstore.services import Publication, ingest_paths

pytestmark = pytest.mark.django_db


@pytest.fixture
def client():
    return APIClient()


@pytest.fixture
def stored(bundle):
    root, ws, ps = bundle
    _, version = ingest_paths(
        [root], Publication(title="Example", collaboration="ATLAS", year=2024)
    )
    return version.likelihoods.get(), ws, ps


def tarball(ws, ps) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, doc in (("R/BkgOnly.json", ws), ("R/patchset.json", ps)):
            data = json.dumps(doc).encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_analysis_list_and_detail(client, stored, django_assert_max_num_queries):
    lh, _, _ = stored
    with django_assert_max_num_queries(5):
        body = client.get("/api/v1/analyses/").json()
    assert body["count"] == 1 and body["results"][0]["collaboration"] == "ATLAS"
    detail = client.get(f"/api/v1/analyses/{lh.version.analysis_id}/").json()
    assert detail["versions"][0]["likelihoods"][0]["region"] == "RegionA"


def test_likelihood_detail_and_downloads(client, stored):
    lh, ws, ps = stored
    body = client.get(f"/api/v1/likelihoods/{lh.pk}/").json()
    assert body["summary"]["signal_points"] == 18
    bkg = client.get(f"/api/v1/likelihoods/{lh.pk}/background-only")
    data = b"".join(bkg.streaming_content)
    assert json.loads(data) == ws
    assert bkg["X-Content-SHA256"] == hashlib.sha256(data).hexdigest()
    patchset = client.get(f"/api/v1/likelihoods/{lh.pk}/patchset")
    assert json.loads(b"".join(patchset.streaming_content)) == ps


def test_patched_workspace_download_round_trips_byte_for_byte(client, stored):
    lh, ws, ps = stored
    patch = ps["patches"][7]
    name = patch["metadata"]["name"]
    response = client.get(f"/api/v1/likelihoods/{lh.pk}/signals/{name}/workspace")
    assert response.status_code == 200
    assert response["X-Background-Digest"] == lh.background_digest
    expected = canonical_bytes(jsonpatch.apply_patch(ws, patch["patch"]))
    assert canonical_bytes(json.loads(response.content)) == expected


def test_region_archive_is_in_the_one_directory_per_region_layout(client, stored):
    lh, ws, _ = stored
    data = client.get(f"/api/v1/likelihoods/{lh.pk}/archive").content
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        assert sorted(tf.getnames()) == ["RegionA/BkgOnly.json", "RegionA/patchset.json"]
        assert json.load(tf.extractfile("RegionA/BkgOnly.json")) == ws


def test_signals_are_paginated(client, stored):
    lh, _, _ = stored
    body = client.get(f"/api/v1/likelihoods/{lh.pk}/signals/").json()
    assert body["count"] == 18 and body["results"][0]["values"] == [300, 0]


def test_unknown_things_use_the_error_envelope(client, stored):
    lh, _, _ = stored
    body = client.get("/api/v1/likelihoods/999/").json()
    assert body["error"]["code"] == "not_found"
    body = client.get(f"/api/v1/likelihoods/{lh.pk}/signals/nope/workspace").json()
    assert body["error"]["code"] == "not_found" and "nope" in body["error"]["message"]


def test_validate_upload_reports_problems(client, example_docs):
    ws, ps = example_docs
    ps["metadata"]["digests"]["sha256"] = "f" * 64
    upload = SimpleUploadedFile("s.tar.gz", tarball(ws, ps))
    body = client.post("/api/v1/validate", {"file": upload}, format="multipart").json()
    assert body["valid"] is False
    assert body["problems"][0]["pointer"] == "/metadata/digests/sha256"


def test_upload_over_the_limit_is_refused_before_reading(client, settings, example_docs):
    settings.HEPSTORE_MAX_UPLOAD_BYTES = 100
    ws, ps = example_docs
    upload = SimpleUploadedFile("s.tar.gz", tarball(ws, ps))
    response = client.post("/api/v1/validate", {"file": upload}, format="multipart")
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_large"


def test_submission_needs_a_token_of_a_collaboration_member(client, example_docs):
    ws, ps = example_docs
    user = User.objects.create_user("alice")
    token = Token.objects.create(user=user)
    form = {"title": "New search", "collaboration": "ATLAS"}
    anonymous = client.post(
        "/api/v1/submissions", {**form, "file": SimpleUploadedFile("s.tgz", tarball(ws, ps))}
    )
    assert anonymous.status_code == 401
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    outsider = client.post(
        "/api/v1/submissions", {**form, "file": SimpleUploadedFile("s.tgz", tarball(ws, ps))}
    )
    assert outsider.status_code == 403 and outsider.json()["error"]["code"] == "permission_denied"
    # The refused attempt left no rows behind, not even the collaboration it named.
    assert not Collaboration.objects.filter(name="ATLAS").exists()
    Collaboration.objects.create(name="ATLAS").members.add(user)
    created = client.post(
        "/api/v1/submissions", {**form, "file": SimpleUploadedFile("s.tgz", tarball(ws, ps))}
    )
    assert created.status_code == 201, created.content
    assert created.json()["version"] == 1
    assert Analysis.objects.get().title == "New search"


def test_invalid_submission_returns_the_report_and_stores_nothing(client, example_docs):
    ws, ps = example_docs
    user = User.objects.create_user("bob", is_superuser=True)
    client.force_authenticate(user)
    ws["channels"][0]["samples"][0]["data"].append(3.0)
    response = client.post(
        "/api/v1/submissions",
        {
            "title": "Broken",
            "collaboration": "ATLAS",
            "file": SimpleUploadedFile("s.tgz", tarball(ws, ps)),
        },
    )
    assert response.status_code == 422
    assert response.json()["error"]["problems"]
    assert Likelihood.objects.count() == 0


def test_openapi_schema_and_docs_are_served(client):
    schema = client.get("/api/v1/schema/", HTTP_ACCEPT="application/json").json()
    # Paths are served with and without the trailing slash; the schema lists one form.
    assert "/api/v1/likelihoods/{id}/signals/{name}/workspace/" in schema["paths"]
    assert "/api/v1/submissions/" in schema["paths"]
    assert client.get("/api/v1/docs/").status_code == 200
