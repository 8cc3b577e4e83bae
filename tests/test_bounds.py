"""Bounded resources: oversized and non-JSON input is refused before it is read, the number
of validations at once is capped, anonymous uploads may be held to a smaller limit."""

from __future__ import annotations

import gzip
import io
import json
import tarfile

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from hepstore import jsonio, scratch, uploads
from hepstore.bundles import unpack
from hepstore.errors import TooLarge
from tests.shared_data import require_shared

pytestmark = pytest.mark.django_db


class CountingFile(io.FileIO):
    """A file that counts the bytes read from it."""

    total = 0

    def read(self, size=-1):
        data = super().read(size)
        CountingFile.total += len(data)
        return data


@pytest.fixture
def counted(monkeypatch):
    CountingFile.total = 0
    monkeypatch.setattr(jsonio, "open", lambda path, mode: CountingFile(path, "r"), raising=False)
    return CountingFile


def test_a_file_that_does_not_start_like_json_is_refused_from_its_first_bytes(tmp_path, counted):
    path = tmp_path / "BkgOnly.json"
    with open(path, "wb") as f:
        f.write(b"PK\x03\x04 this is a zip, not JSON")
        f.truncate(200 * 2**20)  # sparse: 200 MB that a full read would have to go through
    with pytest.raises(jsonio.JSONProblem, match="not JSON.*starts with 'PK"):
        jsonio.load_path(path)
    assert counted.total <= jsonio.SNIFF_BYTES


def test_a_file_of_blank_space_is_refused_without_reading_the_rest(tmp_path, counted):
    path = tmp_path / "BkgOnly.json"
    path.write_bytes(b" " * (4 * jsonio.SNIFF_BYTES))
    with pytest.raises(jsonio.JSONProblem, match="blank space"):
        jsonio.load_path(path)
    assert counted.total == jsonio.SNIFF_BYTES


def test_a_json_file_above_the_limit_is_refused_from_its_size(tmp_path, counted):
    path = tmp_path / "patchset.json"
    path.write_bytes(b"[" + b"0," * 1000 + b"0]")
    with pytest.raises(TooLarge, match="at most"):
        jsonio.load_path(path, max_bytes=1000)
    assert counted.total == 0


def test_the_largest_real_likelihood_is_within_the_default_limit(settings):
    path = require_shared("1lbb", "patchset.json")
    doc = jsonio.load_path(path, settings.HEPSTORE_MAX_JSON_BYTES)
    assert len(doc["patches"]) == 125


def test_an_archive_member_above_the_json_limit_is_refused_from_its_header(tmp_path, settings):
    """The member's header declares 2 MB but the archive ends right after the header: the
    refusal cannot have come from unpacking the member."""
    settings.HEPSTORE_MAX_JSON_BYTES = 2**20
    info = tarfile.TarInfo("region/BkgOnly.json")
    info.size = 2 * 2**20
    archive = tmp_path / "bomb.tar.gz"
    archive.write_bytes(gzip.compress(info.tobuf(format=tarfile.GNU_FORMAT)))
    dest = tmp_path / "out"
    with pytest.raises(TooLarge, match="BkgOnly.json is 2.0 MB"):
        unpack(archive, dest)
    assert not any(p.is_file() for p in dest.rglob("*"))


def bomb(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_validate_endpoint_refuses_oversized_json_and_leaves_no_scratch(settings):
    settings.HEPSTORE_MAX_JSON_BYTES = 2**20
    body = bomb({"BkgOnly.json": b" " * (3 * 2**20)})
    upload = SimpleUploadedFile("bomb.tar.gz", body, content_type="application/gzip")
    response = APIClient().post("/api/v1/validate", {"file": upload}, format="multipart")
    assert response.status_code == 413
    assert "BkgOnly.json is 3.0 MB" in response.json()["error"]["message"]
    assert [p.name for p in scratch.root().iterdir() if p.name.startswith("work-")] == []


def test_blank_json_members_are_reported_per_file_not_read_whole(settings):
    body = bomb({f"r{i}/BkgOnly.json": b" " * (2 * jsonio.SNIFF_BYTES) for i in range(3)})
    upload = SimpleUploadedFile("bomb.tar.gz", body, content_type="application/gzip")
    response = APIClient().post("/api/v1/validate", {"file": upload}, format="multipart")
    assert response.status_code == 200
    report = response.json()
    assert not report["valid"]
    assert sorted(p["file"] for p in report["problems"]) == [f"r{i}/BkgOnly.json" for i in range(3)]
    assert all("blank space" in p["message"] for p in report["problems"])


def test_anonymous_uploads_may_have_a_smaller_limit_than_authenticated_ones(settings):
    settings.HEPSTORE_ANONYMOUS_MAX_UPLOAD_BYTES = 2**20
    data = json.dumps({"padding": "x" * (2 * 2**20)}).encode()

    def post(client):
        upload = SimpleUploadedFile("BkgOnly.json", data, content_type="application/json")
        return client.post("/api/v1/validate", {"file": upload}, format="multipart")

    anonymous = post(APIClient())
    assert anonymous.status_code == 413
    assert "without logging in is 1 MB" in anonymous.json()["error"]["message"]
    member = APIClient()
    member.force_authenticate(User.objects.create_user("member"))
    assert post(member).status_code == 200  # read and reported on (not a workspace)


def test_validations_beyond_the_concurrency_cap_get_503_with_retry_after(settings):
    settings.HEPSTORE_MAX_CONCURRENT_VALIDATIONS = 1
    settings.HEPSTORE_VALIDATION_WAIT_SECONDS = 0
    upload = SimpleUploadedFile("BkgOnly.json", b"{}", content_type="application/json")
    with uploads.validation_slot():  # another upload is being validated
        response = APIClient().post("/api/v1/validate", {"file": upload}, format="multipart")
    assert response.status_code == 503
    assert response["Retry-After"] == "1"
    assert response.json()["error"]["code"] == "busy"
    upload.seek(0)
    response = APIClient().post("/api/v1/validate", {"file": upload}, format="multipart")
    assert response.status_code == 200
