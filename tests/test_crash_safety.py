"""Crash safety of storage: a killed ingestion leaves nothing once fsck --repair or the next
ingestion has run; indexing after commit is durable; a failed write leaves nothing partial."""

from __future__ import annotations

import errno
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.core.management import call_command

from hepstore import blobs, examples, fsck, scratch
from hepstore.errors import StorageFailure
from hepstore.models import AnalysisVersion, Blob, Likelihood, SearchDocument
from hepstore.services import Publication, ingest_paths
from tests.conftest import write_bundle

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.django_db
PUB = Publication(title="Search for things", collaboration="ATLAS", year=2021)


def stored_files(blob_dir: Path) -> list[Path]:
    return sorted(p for p in blob_dir.rglob("*") if p.is_file()) if blob_dir.exists() else []


def big_patchset(ws: dict, points: int) -> dict:
    """A patchset of many distinct points, so that writing its blobs takes a while."""
    ps = examples.patchset(ws)
    ps["patches"] = [
        {
            "metadata": {"name": f"P_{i}", "values": [1000 + i, 1 + i % 7]},
            "patch": examples.signal_patch(300.0 + i * 0.37, float(i % 7)),
        }
        for i in range(points)
    ]
    return ps


def run(env, *args, check=True):
    return subprocess.run(
        [sys.executable, "manage.py", *map(str, args)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=check,
    )


@pytest.mark.slow
@pytest.mark.skipif(bool(os.environ.get("DATABASE_URL")), reason="reads the SQLite file")
def test_sigkilled_ingestion_leaves_exactly_the_referenced_blobs_after_fsck_repair(tmp_path):
    data = tmp_path / "data"
    env = {**os.environ, "HEPSTORE_DATA_DIR": str(data), "LOG_LEVEL": "WARNING"}
    env.pop("DATABASE_URL", None)
    db, blob_dir = data / "hepstore.sqlite3", data / "blobs"
    ws = examples.background_workspace()
    first = write_bundle(tmp_path / "first", ws, examples.patchset(ws))
    second = write_bundle(tmp_path / "second", ws, big_patchset(ws, 1500))
    run(env, "migrate", "-v0")
    run(env, "ingest", first, "--title", "First", "--collaboration", "ATLAS")

    victim = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "ingest",
            second,
            "--title",
            "Second",
            "--collaboration",
            "X",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    journal = None
    deadline = time.monotonic() + 120
    while victim.poll() is None and time.monotonic() < deadline:
        journals = list((data / "tmp").glob("ingest-*.journal"))
        if journals and len(journals[0].read_text().splitlines()) >= 20:
            journal = journals[0]
            break
        time.sleep(0.01)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert journal is not None, "the ingestion ended before it was seen writing blobs"

    with sqlite3.connect(db) as conn:
        referenced = {row[0] for row in conn.execute("SELECT sha256 FROM hepstore_blob")}
        assert conn.execute("SELECT count(*) FROM hepstore_analysisversion").fetchone() == (1,)
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    leftovers = [p for p in stored_files(blob_dir) if p.name[:64] not in referenced]
    assert leftovers, "the kill should have left blobs of the uncommitted ingestion"

    listing = run(env, "fsck", check=False)
    assert listing.returncode == 1 and "orphan blob (found)" in listing.stdout

    run(env, "fsck", "--repair")
    named = {p.name.removesuffix(".json") for p in stored_files(blob_dir)}
    assert named == referenced
    assert not list(blob_dir.rglob(".incoming-*"))
    assert [p.name for p in (data / "tmp").iterdir() if p.name != "requests"] == ["storage.lock"]
    assert not list((data / "tmp" / "requests").iterdir())


@pytest.mark.skipif(bool(os.environ.get("DATABASE_URL")), reason="uses the SQLite default")
def test_two_identical_ingestions_at_once_store_one_version_and_name_it_to_the_other(tmp_path):
    data = tmp_path / "data"
    env = {**os.environ, "HEPSTORE_DATA_DIR": str(data), "LOG_LEVEL": "WARNING"}
    env.pop("DATABASE_URL", None)
    ws = examples.background_workspace()
    bundle = write_bundle(tmp_path / "b", ws, examples.patchset(ws))
    run(env, "migrate", "-v0")
    command = [sys.executable, "manage.py", "ingest", str(bundle), "--title", "T"]
    procs = [
        subprocess.Popen(
            [*command, "--collaboration", "ATLAS"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outcomes = sorted((p.wait(timeout=300), p.stderr.read()) for p in procs)
    assert [code for code, _ in outcomes] == [0, 1], outcomes
    assert "identical to version 1" in outcomes[1][1]
    assert "locked" not in outcomes[1][1]
    with sqlite3.connect(data / "hepstore.sqlite3") as conn:
        assert conn.execute("SELECT count(*) FROM hepstore_analysisversion").fetchone() == (1,)


def abandon_ingestion(blob_dir: Path) -> list[Path]:
    """What a process killed while writing blobs leaves: a journal, blobs, a temp file."""
    writer = blobs.BlobWriter().__enter__()
    writer.put_json({"orphan": 1})
    writer.put_json({"orphan": 2})
    incoming = blobs.blob_path(writer.created[0].name[:64]).parent / ".incoming-x"
    incoming.write_bytes(b"{")
    writer._journal.close()
    writer._lock.release()  # the process is gone; the journal stays behind
    return [*writer.created, incoming]


@pytest.fixture
def ingest(django_capture_on_commit_callbacks):
    """ingest_paths, with what it does after its transaction commits run at once (the test
    itself holds a transaction, so nothing would otherwise commit)."""

    def run_ingestion(root):
        with django_capture_on_commit_callbacks(execute=True):
            return ingest_paths([root], PUB)

    return run_ingestion


def test_the_next_ingestion_removes_what_a_killed_one_left(bundle, isolated_blobs, ingest):
    root, _, _ = bundle
    left = abandon_ingestion(isolated_blobs)
    assert all(p.exists() for p in left) and scratch.journal_paths()
    ingest(root)
    assert not any(p.exists() for p in left)
    assert scratch.journal_paths() == []
    assert {p.name[:64] for p in stored_files(isolated_blobs)} == set(
        Blob.objects.values_list("sha256", flat=True)
    )


def test_fsck_reports_corrupt_and_missing_blobs_and_leaves_them(bundle, isolated_blobs, ingest):
    root, _, _ = bundle
    _, version = ingest(root)
    lh = version.likelihoods.get()
    blobs.blob_path(lh.background_id).write_bytes(b'{"tampered": true}')
    blobs.blob_path(lh.patchset_id).unlink()
    report = fsck.check(repair=True)
    assert report.corrupt_blobs == [lh.background_id]
    assert report.missing_blobs == [lh.patchset_id]
    assert not report.clean
    assert blobs.blob_path(lh.background_id).exists()


def test_a_version_committed_but_not_indexed_is_indexed_by_the_next_run(bundle, ingest):
    root, ws, ps = bundle
    _, v1 = ingest(root)
    # A crash between commit and indexing: the mark set in the transaction is still there.
    SearchDocument.objects.all().delete()
    AnalysisVersion.objects.filter(pk=v1.pk).update(search_pending=True)
    ps["patches"].pop()
    write_bundle(root, ws, ps)
    _, v2 = ingest(root)
    assert SearchDocument.objects.count() == 2
    assert not AnalysisVersion.objects.filter(search_pending=True).exists()


def test_fsck_repair_indexes_versions_missing_from_search(bundle, ingest):
    root, _, _ = bundle
    _, version = ingest(root)
    SearchDocument.objects.all().delete()
    report = fsck.check(repair=False)
    assert report.unindexed_versions == [version.pk] and not report.clean
    call_command("fsck", "--repair")
    assert SearchDocument.objects.filter(likelihood__version=version).count() == 1


@pytest.mark.parametrize(
    ("code", "status", "words"),
    [(errno.ENOSPC, 507, "disk is full"), (errno.EROFS, 503, "not writable")],
)
def test_a_full_or_read_only_disk_mid_ingestion_is_a_clear_error_and_nothing_is_stored(
    bundle, isolated_blobs, monkeypatch, code, status, words
):
    root, _, ps = bundle
    real_replace = os.replace
    calls = {"n": 0}

    def replace(src, dst):
        calls["n"] += 1
        if calls["n"] > 5:  # the sixth blob finds the disk full
            raise OSError(code, os.strerror(code))
        return real_replace(src, dst)

    monkeypatch.setattr(blobs.os, "replace", replace)
    with pytest.raises(StorageFailure) as caught:
        ingest_paths([root], PUB)
    assert caught.value.status == status
    assert words in caught.value.message and "nothing was stored" in caught.value.message
    assert not Likelihood.objects.exists() and not Blob.objects.exists()
    assert stored_files(isolated_blobs) == []
    assert scratch.journal_paths() == []


def test_identical_submission_through_the_api_is_a_409_naming_the_version(bundle):
    from django.contrib.auth.models import User
    from django.core.files.uploadedfile import SimpleUploadedFile
    from rest_framework.test import APIClient

    _, ws, ps = bundle
    client = APIClient()
    client.force_authenticate(User.objects.create_superuser("admin"))

    def submit():
        files = [
            SimpleUploadedFile("BkgOnly.json", json.dumps(ws).encode()),
            SimpleUploadedFile("patchset.json", json.dumps(ps).encode()),
        ]
        return client.post(
            "/api/v1/submissions",
            {"file": files, "title": PUB.title, "collaboration": "ATLAS"},
            format="multipart",
        )

    assert submit().status_code == 201
    again = submit()
    assert again.status_code == 409
    error = again.json()["error"]
    analysis = AnalysisVersion.objects.get().analysis_id
    assert error["code"] == "already_stored"
    assert f"version 1 of analysis {analysis}" in error["message"]


def test_request_upload_files_are_swept_only_once_their_request_is_gone(settings, tmp_path):
    from hepstore.uploads import LockedTemporaryFileUploadHandler

    requests = scratch.root() / scratch.REQUESTS
    requests.mkdir(parents=True)
    settings.FILE_UPLOAD_TEMP_DIR = str(requests)
    handler = LockedTemporaryFileUploadHandler()
    handler.new_file("file", "bundle.tar.gz", "application/gzip", 10, None)
    live = Path(handler.file.temporary_file_path())
    dead = requests / "tmpabc.upload.gz"  # left by a server killed mid-request
    dead.write_bytes(b"partial")
    past = time.time() - 60
    for path in (live, dead):
        os.utime(path, (past, past))
    assert scratch.stale_entries() == [dead]
    blobs.sweep(wait=0)
    assert live.exists() and not dead.exists()
    handler.file.close()  # the request ends: Django removes its file
    assert not live.exists()
