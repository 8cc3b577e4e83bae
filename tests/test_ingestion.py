"""Ingestion is all or nothing, deduplicates blobs and versions resubmissions."""

from __future__ import annotations

import json

import jsonpatch
import pytest
from django.contrib.auth.models import User
from django.core.management import call_command

from hepstore import blobs, services
from hepstore.errors import AlreadyStored, PermissionDenied
from hepstore.jsonio import canonical_bytes
from hepstore.models import Analysis, AnalysisVersion, Blob, Likelihood, SignalPoint
from hepstore.services import Publication, ingest_paths
from tests.conftest import write_bundle

pytestmark = pytest.mark.django_db
PUB = Publication(
    title="Search for things",
    collaboration="ATLAS",
    inspire_id=1234567,
    arxiv_id="2101.00001",
    keywords=("susy",),
    year=2021,
)


def stored_files(blob_dir):
    return sorted(p for p in blob_dir.rglob("*.json")) if blob_dir.exists() else []


def test_valid_submission_is_stored_with_its_signal_points(bundle, isolated_blobs):
    root, _, ps = bundle
    report, version = ingest_paths([root], PUB)
    assert report.valid and version.number == 1
    lh = Likelihood.objects.get()
    assert lh.region == "RegionA" and lh.labels == ["m1", "m2"]
    assert lh.signals.count() == len(ps["patches"])
    # The background and the patchset (canonical and as published), each point's patch.
    assert len(stored_files(isolated_blobs)) == 4 + len(ps["patches"])
    assert blobs.read_json(lh.patchset_id) == ps
    point = lh.signals.get(name=ps["patches"][3]["metadata"]["name"])
    assert blobs.read_json(point.patch_id) == ps["patches"][3]["patch"]


def test_invalid_submission_stores_nothing(bundle, isolated_blobs, tmp_path):
    root, ws, ps = bundle
    ps["metadata"]["digests"]["sha256"] = "0" * 64
    (root / "RegionA" / "patchset.json").write_text(json.dumps(ps))
    report, version = ingest_paths([root], PUB)
    assert version is None and not report.valid
    assert Analysis.objects.count() == 0 and Blob.objects.count() == 0
    assert stored_files(isolated_blobs) == []


def test_failure_part_way_leaves_no_rows_and_no_files(bundle, isolated_blobs, monkeypatch):
    root, _, _ = bundle

    def explode(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(SignalPoint.objects, "bulk_create", explode)
    with pytest.raises(RuntimeError):
        ingest_paths([root], PUB)
    assert Analysis.objects.count() == 0 and Likelihood.objects.count() == 0
    assert Blob.objects.count() == 0
    assert stored_files(isolated_blobs) == []


def test_changed_resubmission_becomes_the_next_version_and_blobs_are_deduplicated(
    bundle, isolated_blobs
):
    root, ws, ps = bundle
    ingest_paths([root], PUB)
    ps["patches"].pop()
    write_bundle(root, ws, ps)
    _, v2 = ingest_paths([root], PUB)
    assert v2.number == 2 and Analysis.objects.count() == 1
    assert AnalysisVersion.objects.count() == 2
    # One background and two patchsets, each canonical and as published, and the points'
    # patches stored once.
    stored = 2 * 3 + len(ps["patches"]) + 1
    assert Blob.objects.count() == stored and len(stored_files(isolated_blobs)) == stored


def test_identical_resubmission_names_the_existing_version_and_stores_nothing(
    bundle, isolated_blobs
):
    root, _, _ = bundle
    ingest_paths([root], PUB)
    before = stored_files(isolated_blobs)
    with pytest.raises(AlreadyStored) as caught:
        ingest_paths([root], PUB)
    assert caught.value.status == 409
    analysis = Analysis.objects.get()
    assert f"version 1 of analysis {analysis.pk}" in caught.value.message
    assert AnalysisVersion.objects.count() == 1
    assert stored_files(isolated_blobs) == before


def test_only_members_may_submit_for_a_collaboration(bundle):
    root, _, _ = bundle
    outsider = User.objects.create_user("outsider")
    with pytest.raises(PermissionDenied):
        ingest_paths([root], PUB, user=outsider)
    assert Analysis.objects.count() == 0


def test_patched_workspace_equals_jsonpatch_applied_to_background(bundle):
    root, ws, ps = bundle
    _, version = ingest_paths([root], PUB)
    lh = version.likelihoods.get()
    for patch in ps["patches"]:
        ours = services.patched_workspace(lh, patch["metadata"]["name"])
        theirs = jsonpatch.apply_patch(ws, patch["patch"])
        assert canonical_bytes(ours) == canonical_bytes(theirs)


def test_ingest_command_and_its_clear_refusal(bundle, tmp_path, capsys):
    root, _, _ = bundle
    call_command(
        "ingest", str(root), "--title", "T", "--collaboration", "CMS", "--keywords", "a", "b"
    )
    assert Analysis.objects.get().keywords == ["a", "b"]
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "BkgOnly.json").write_text("{")
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="nothing was stored"):
        call_command("ingest", str(tmp_path / "broken"), "--title", "T2", "--collaboration", "CMS")
    assert Analysis.objects.count() == 1
