"""Submissions in every layout real archives use, and archives that must be refused."""

from __future__ import annotations

import io
import json
import tarfile
import zipfile

import pytest

from hepstore.bundles import parse_point_name
from hepstore.errors import TooLarge, UnusableInput
from hepstore.services import validate_paths
from tests.shared_data import ANALYSES, require_shared


def make_tar(path, members: dict[str, bytes], **extra):
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for name, kind in extra.items():
            info = tarfile.TarInfo(name)
            info.type = kind
            info.linkname = "/etc/passwd"
            tf.addfile(info)
    return path


def docs_bytes(example_docs):
    ws, ps = example_docs
    return json.dumps(ws).encode(), json.dumps(ps).encode()


def test_tarball_with_one_directory_per_region(tmp_path, example_docs):
    ws, ps = docs_bytes(example_docs)
    archive = make_tar(
        tmp_path / "s.tar.gz",
        {"A/BkgOnly.json": ws, "A/patchset.json": ps, "B/BkgOnly.json": ws, "B/patchset.json": ps},
    )
    report, regions = validate_paths([archive])
    assert report.valid, report.problems
    assert sorted(r.name for r in regions) == ["A", "B"]


def test_zip_archive(tmp_path, example_docs):
    ws, ps = docs_bytes(example_docs)
    archive = tmp_path / "s.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("RegionA/BkgOnly.json", ws)
        zf.writestr("RegionA/patchset.json", ps)
    report, regions = validate_paths([archive])
    assert report.valid and regions[0].name == "RegionA"


def test_per_point_patch_files_become_a_patchset(tmp_path, example_docs):
    ws, ps = example_docs
    folder = tmp_path / "RegionA"
    folder.mkdir()
    (folder / "BkgOnly.json").write_text(json.dumps(ws))
    for i, patch in enumerate(ps["patches"][:6]):
        sep = "_" if i % 2 else "."
        name = patch["metadata"]["name"]
        (folder / f"patch{sep}{name}.json").write_text(json.dumps(patch["patch"]))
    report, regions = validate_paths([tmp_path])
    assert report.valid, report.problems
    built = regions[0].patchset
    assert len(built["patches"]) == 6
    assert built["metadata"]["labels"] == ["p1", "p2"]
    by_name = {p["metadata"]["name"]: p["metadata"]["values"] for p in built["patches"]}
    assert by_name["C1N2_300_0"] == [300, 0]


def test_point_names_parse_into_values():
    assert parse_point_name("ERJR_100p0_20p0") == [100.0, 20.0]
    assert parse_point_name("sbottom_1000_131_1") == [1000, 131, 1]
    assert parse_point_name("C1N2_Wh_hbb_700_250") == [700, 250]
    assert parse_point_name("signal") == []


def test_submission_yaml_names_the_files(tmp_path, example_docs):
    ws, ps = example_docs
    (tmp_path / "bkg.json").write_text(json.dumps(ws))
    (tmp_path / "sig.json").write_text(json.dumps(ps))
    base = "https://scikit-hep.org/pyhf/schemas/1.0.0/"
    (tmp_path / "submission.yaml").write_text(
        "---\ncomment: an analysis\n---\nname: Table 1\nlikelihoods:\n"
        f"  - name: SRcombined\n    workspace:\n      data_file: bkg.json\n"
        f"      data_schema: {base}workspace.json\n    patchset:\n      data_file: sig.json\n"
        f"      data_schema: {base}patchset.json\n"
    )
    report, regions = validate_paths([tmp_path / "submission.yaml"])
    assert report.valid, report.problems
    assert regions[0].name == "SRcombined" and regions[0].patchset is not None


def test_submission_yaml_with_unknown_schema_and_missing_file(tmp_path):
    (tmp_path / "submission.yaml").write_text(
        "likelihoods:\n  - workspace:\n      data_file: nothere.json\n"
        "      data_schema: https://scikit-hep.org/pyhf/schemas/1.0.0/workspace.json\n"
        "  - workspace:\n      data_file: bkg.json\n      data_schema: https://x/other.json\n"
    )
    report, _ = validate_paths([tmp_path / "submission.yaml"])
    pointers = {p.pointer for p in report.errors}
    assert "/0/likelihoods/0/workspace/data_file" in pointers
    assert "/0/likelihoods/1/workspace/data_schema" in pointers


def test_individual_files(tmp_path, example_docs):
    ws, ps = example_docs
    (tmp_path / "BkgOnly.json").write_text(json.dumps(ws))
    (tmp_path / "patchset.json").write_text(json.dumps(ps))
    report, regions = validate_paths([tmp_path / "BkgOnly.json", tmp_path / "patchset.json"])
    assert report.valid and len(regions) == 1


@pytest.mark.parametrize("member", ["../evil.json", "/abs/evil.json"])
def test_archive_members_escaping_the_directory_are_refused(tmp_path, member):
    archive = make_tar(tmp_path / "bad.tar.gz", {member: b"{}"})
    with pytest.raises(UnusableInput, match="escape|absolute"):
        validate_paths([archive])


def test_links_and_devices_in_archives_are_refused(tmp_path):
    archive = make_tar(tmp_path / "link.tgz", {}, **{"BkgOnly.json": tarfile.SYMTYPE})
    with pytest.raises(UnusableInput, match="link"):
        validate_paths([archive])
    archive = make_tar(tmp_path / "dev.tgz", {}, **{"dev": tarfile.CHRTYPE})
    with pytest.raises(UnusableInput, match="device"):
        validate_paths([archive])


def test_archive_larger_than_the_unpacked_limit_is_refused(tmp_path, settings):
    settings.HEPSTORE_MAX_UNPACKED_BYTES = 1000
    archive = make_tar(tmp_path / "big.tgz", {"BkgOnly.json": b" " * 5000})
    with pytest.raises(TooLarge):
        validate_paths([archive])


def test_garbage_archive_is_unusable(tmp_path):
    (tmp_path / "x.tar.gz").write_bytes(b"not an archive at all")
    with pytest.raises(UnusableInput, match="not a readable archive"):
        validate_paths([tmp_path / "x.tar.gz"])


@pytest.mark.slow
@pytest.mark.parametrize("analysis", ANALYSES)
def test_real_published_likelihoods_validate(analysis):
    folder = require_shared(analysis)
    report, regions = validate_paths([folder / "BkgOnly.json", folder / "patchset.json"])
    assert report.valid, report.errors[:5]
    assert regions[0].summary["signal_points"] > 50


def test_real_likelihood_in_its_original_per_point_layout(tmp_path):
    folder = require_shared("erjr")
    ps = json.loads((folder / "patchset.json").read_text())
    region = tmp_path / "erjr"
    region.mkdir()
    (region / "BkgOnly.json").write_bytes((folder / "BkgOnly.json").read_bytes())
    for patch in ps["patches"]:
        (region / f"patch.{patch['metadata']['name']}.json").write_text(json.dumps(patch["patch"]))
    report, regions = validate_paths([tmp_path])
    assert report.valid, report.errors[:5]
    values = {
        p["metadata"]["name"]: p["metadata"]["values"] for p in regions[0].patchset["patches"]
    }
    assert values["ERJR_100p0_20p0"] == [100.0, 20.0]


def test_patch_application_agrees_with_jsonpatch_for_every_operation():
    import jsonpatch

    from hepstore import patching

    doc = {"a": [1, 2, {"b": "c"}], "d": {"e": 1}}
    cases = [
        [{"op": "add", "path": "/a/1", "value": 9}],
        [{"op": "add", "path": "/a/-", "value": {"x": 1}}],
        [{"op": "add", "path": "/d/f", "value": [1]}],
        [{"op": "remove", "path": "/a/0"}, {"op": "remove", "path": "/d/e"}],
        [{"op": "replace", "path": "/a/2/b", "value": "z"}],
        [{"op": "move", "from": "/a/0", "path": "/d/g"}],
        [{"op": "copy", "from": "/d", "path": "/a/0"}],
        [{"op": "test", "path": "/d/e", "value": 1}],
    ]
    for ops in cases:
        assert patching.apply(doc, ops) == jsonpatch.apply_patch(doc, ops), ops
    assert doc == {"a": [1, 2, {"b": "c"}], "d": {"e": 1}}  # the input is never modified
    for bad in (
        [{"op": "remove", "path": "/a/7"}],
        [{"op": "replace", "path": "/d/nope", "value": 1}],
        [{"op": "add", "path": "/a/01", "value": 1}],
        [{"op": "test", "path": "/d/e", "value": 2}],
    ):
        with pytest.raises(patching.PatchError) as info:
            patching.apply(doc, bad)
        assert info.value.index == 0
