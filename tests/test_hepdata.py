"""HEPData's own submission format: submission.yaml with HistFactory additional resources,
likelihood archives of every type HEPData accepts, and HEPData's record archive (a zip)."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import zipfile
from pathlib import Path

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from hepstore import patching
from hepstore.models import Analysis
from hepstore.services import Publication, ingest_paths, validate_paths
from tests.shared_data import require_shared

FIRST = """\
---
comment: A search for new physics (built by the test suite)
record_ids:
- {{type: inspire, id: 1765529}}
additional_resources:
- {{location: "https://example.org/code", description: "Analysis code"}}
- {{location: "{location}", description: "Full likelihoods (pyhf JSON)", type: "{kind}"}}
"""
TABLE = """\
---
name: "Table 1"
description: "Observed and expected yields in the signal regions"
keywords:
- {name: observables, values: [N]}
data_file: table1.yaml
"""


def write_archive(path: Path, members: dict[str, bytes]) -> Path:
    name = path.name.lower()
    if name.endswith(".zip"):
        with zipfile.ZipFile(path, "w") as zf:
            for member, data in members.items():
                zf.writestr(member, data)
        return path
    mode = {".tar.xz": "w:xz", ".tar": "w", ".tgz": "w:gz", ".tar.gz": "w:gz"}
    suffix = next(s for s in mode if name.endswith(s))
    extra = {"preset": 1} if suffix == ".tar.xz" else {}
    with tarfile.open(path, mode[suffix], **extra) as tf:
        for member, data in members.items():
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def hepdata_submission(
    folder: Path, members: dict[str, bytes], location="Likelihoods.tar.xz", kind="HistFactory"
) -> Path:
    """A HEPData submission folder: submission.yaml (first document with the likelihood
    resource, then one table), the table's data file and the likelihood archive."""
    folder.mkdir(parents=True, exist_ok=True)
    write_archive(folder / location, members)
    (folder / "submission.yaml").write_text(FIRST.format(location=location, kind=kind) + TABLE)
    (folder / "table1.yaml").write_text("independent_variables: []\ndependent_variables: []\n")
    return folder


def example_members(example_docs, region="SRcombined") -> dict[str, bytes]:
    ws, ps = example_docs
    return {
        f"{region}/BkgOnly.json": json.dumps(ws, indent=1).encode(),
        f"{region}/patchset.json": json.dumps(ps, indent=1).encode(),
    }


@pytest.mark.parametrize("location", ["L.tar.gz", "L.tgz", "L.tar", "L.tar.xz", "L.zip"])
def test_every_archive_type_hepdata_accepts_is_read(tmp_path, example_docs, location):
    folder = hepdata_submission(tmp_path / "sub", example_members(example_docs), location)
    report, regions = validate_paths([folder])
    assert report.valid, report.problems
    assert [r.name for r in regions] == ["SRcombined"]
    assert len(regions[0].patchset["patches"]) == len(example_docs[1]["patches"])


def test_the_resource_type_is_case_insensitive_and_other_resources_are_ignored(
    tmp_path, example_docs
):
    folder = hepdata_submission(tmp_path / "sub", example_members(example_docs), kind="histfactory")
    report, regions = validate_paths([folder / "submission.yaml"])
    assert report.valid, report.problems
    assert len(regions) == 1


def test_a_single_json_resource_is_a_workspace(tmp_path, example_docs):
    folder = tmp_path / "sub"
    folder.mkdir()
    ws, ps = example_docs
    full = patching.apply(ws, ps["patches"][0]["patch"])
    (folder / "SR1lbb.json").write_text(json.dumps(full))
    (folder / "submission.yaml").write_text(
        FIRST.format(location="SR1lbb.json", kind="HistFactory") + TABLE
    )
    (folder / "table1.yaml").write_text("{}\n")
    report, regions = validate_paths([folder])
    assert report.valid, report.problems
    assert [r.name for r in regions] == ["SR1lbb"] and regions[0].patchset is None


def test_hepdata_record_archive_is_read(tmp_path, example_docs):
    """HEPData's download of a record: a zip holding the submission folder."""
    folder = hepdata_submission(tmp_path / "sub", example_members(example_docs), "L.tar.gz")
    record = tmp_path / "HEPData-ins1765529-v1-yaml.zip"
    with zipfile.ZipFile(record, "w") as zf:
        for f in sorted(folder.iterdir()):
            zf.write(f, f"HEPData-ins1765529-v1-yaml/{f.name}")
    report, regions = validate_paths([record])
    assert report.valid, report.problems
    assert [r.name for r in regions] == ["SRcombined"]
    assert (
        regions[0].workspace_file == "HEPData-ins1765529-v1-yaml/L.tar.gz/SRcombined/BkgOnly.json"
    )


def problem_at(report, pointer):
    matches = [p for p in report.errors if p.pointer == pointer]
    assert matches, [p.as_dict() for p in report.problems]
    return matches[0]


def test_a_missing_resource_is_reported_at_its_key_and_line(tmp_path, example_docs):
    folder = hepdata_submission(tmp_path / "sub", example_members(example_docs))
    (folder / "Likelihoods.tar.xz").rename(folder / "Other.tar.xz")
    report, regions = validate_paths([folder])
    assert not report.valid and regions == []
    problem = problem_at(report, "/0/additional_resources/1/location")
    assert problem.file == "submission.yaml"
    assert problem.message.startswith("line 7: ") and "Likelihoods.tar.xz" in problem.message


@pytest.mark.parametrize(
    ("location", "words"),
    [
        ("../outside.tar.gz", "not in the submission"),
        ("https://example.org/L.tar.gz", "is a link"),
        ("Likelihoods.rar", "neither an archive"),
    ],
)
def test_resources_outside_the_submission_or_of_unknown_type_are_errors(tmp_path, location, words):
    folder = tmp_path / "sub"
    folder.mkdir()
    (tmp_path / "outside.tar.gz").write_bytes(b"")
    (folder / "submission.yaml").write_text(FIRST.format(location=location, kind="HistFactory"))
    report, _ = validate_paths([folder])
    assert words in problem_at(report, "/0/additional_resources/1/location").message


def test_a_resource_without_a_workspace_is_an_error_of_the_submission(tmp_path, example_docs):
    folder = hepdata_submission(tmp_path / "sub", {"README.txt": b"no likelihood here"})
    report, _ = validate_paths([folder])
    problem = problem_at(report, "/0/additional_resources/1/location")
    assert "no background-only workspace" in problem.message


def test_a_broken_document_in_the_archive_names_the_member(tmp_path, example_docs):
    members = example_members(example_docs)
    members["SRcombined/BkgOnly.json"] = b'{"channels": [}'
    report, _ = validate_paths([hepdata_submission(tmp_path / "sub", members)])
    assert any(
        p.file == "Likelihoods.tar.xz/SRcombined/BkgOnly.json" and "line 1" in p.message
        for p in report.errors
    ), report.problems


def test_no_histfactory_resource_is_an_error(tmp_path):
    folder = tmp_path / "sub"
    folder.mkdir()
    (folder / "submission.yaml").write_text(FIRST.format(location="plot.png", kind="image"))
    report, _ = validate_paths([folder])
    assert "type: HistFactory" in problem_at(report, "/0/additional_resources").message


def test_yaml_syntax_errors_give_the_line(tmp_path):
    folder = tmp_path / "sub"
    folder.mkdir()
    (folder / "submission.yaml").write_text("comment: x\nadditional_resources: [\n- a: b\n")
    report, _ = validate_paths([folder])
    assert report.errors[0].file == "submission.yaml"
    assert report.errors[0].message.startswith("line ")


def test_a_missing_table_data_file_is_a_warning_with_its_line(tmp_path, example_docs):
    folder = hepdata_submission(tmp_path / "sub", example_members(example_docs))
    (folder / "table1.yaml").unlink()
    report, _ = validate_paths([folder])
    assert report.valid
    warning = next(p for p in report.problems if p.pointer == "/1/data_file")
    assert warning.message.startswith("line 13: ")  # lines count from the file start


def test_two_resources_give_distinct_region_names(tmp_path, example_docs):
    folder = hepdata_submission(tmp_path / "sub", example_members(example_docs, "SR"), "A.tgz")
    write_archive(folder / "B.zip", example_members(example_docs, "SR"))
    (folder / "submission.yaml").write_text(
        FIRST.format(location="A.tgz", kind="HistFactory")
        + '- {location: "B.zip", description: "second", type: HistFactory}\n'
    )
    report, regions = validate_paths([folder])
    assert report.valid, report.problems
    assert sorted(r.name for r in regions) == ["A-SR", "B-SR"]


def staus_submission(tmp_path: Path) -> Path:
    staus = require_shared("staus")
    members = {
        "Region-combined/BkgOnly.json": (staus / "BkgOnly.json").read_bytes(),
        "Region-combined/patchset.json": (staus / "patchset.json").read_bytes(),
    }
    return hepdata_submission(tmp_path / "staus", members)


@pytest.mark.django_db
def test_staus_as_hepdata_submission_validates_and_ingests(tmp_path, capsys):
    folder = staus_submission(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        call_command("validate", str(folder))
    assert exit_.value.code == 0, capsys.readouterr()
    assert "57 signal points" in capsys.readouterr().out
    publication = Publication(title="Staus", collaboration="ATLAS", inspire_id=1765529)
    report, version = ingest_paths([folder], publication)
    assert version is not None, report.problems
    likelihood = version.likelihoods.get()
    assert likelihood.region == "Region-combined" and likelihood.signals.count() == 57
    assert Analysis.objects.get(inspire_id=1765529).versions.count() == 1
    # Downloads are the files as published: their checksum is the published file's.
    staus = require_shared("staus")
    client = APIClient()
    for path, file in (("background-only", "BkgOnly.json"), ("patchset", "patchset.json")):
        response = client.get(f"/api/v1/likelihoods/{likelihood.pk}/{path}")
        published = hashlib.sha256((staus / file).read_bytes()).hexdigest()
        assert response["X-Content-SHA256"] == published
        assert hashlib.sha256(b"".join(response.streaming_content)).hexdigest() == published
    # The record is addressed by its INSPIRE id.
    assert client.get("/record/ins1765529").status_code == 200
    record = client.get("/api/v1/records/ins1765529").json()
    assert record["version"]["likelihoods"][0]["region"] == "Region-combined"


@pytest.mark.django_db
def test_broken_staus_submission_is_rejected_naming_file_and_key(tmp_path, capsys):
    folder = staus_submission(tmp_path)
    text = (folder / "submission.yaml").read_text()
    (folder / "submission.yaml").write_text(text.replace("Likelihoods.tar.xz", "Likelihood.tar.xz"))
    with pytest.raises(SystemExit) as exit_:
        call_command("validate", str(folder), "--format", "json")
    assert exit_.value.code == 1
    (problem,) = json.loads(capsys.readouterr().out)["problems"]
    assert problem["file"] == "submission.yaml"
    assert problem["pointer"] == "/0/additional_resources/1/location"
    assert "'Likelihood.tar.xz' is not in the submission" in problem["message"]


@pytest.mark.django_db
def test_the_validate_api_reads_an_uploaded_hepdata_record_archive(tmp_path, example_docs):
    from django.core.files.uploadedfile import SimpleUploadedFile

    folder = hepdata_submission(tmp_path / "sub", example_members(example_docs))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for f in sorted(folder.iterdir()):
            zf.write(f, f"HEPData-ins1-v1-yaml/{f.name}")
    upload = SimpleUploadedFile("HEPData-ins1-v1-yaml.zip", buffer.getvalue())
    report = APIClient().post("/api/v1/validate", {"file": upload}).json()
    assert report["valid"], report["problems"]
    assert report["summary"]["region_count"] == 1


@pytest.mark.django_db
def test_the_validate_api_reads_submission_yaml_uploaded_beside_its_archive(tmp_path, example_docs):
    from django.core.files.uploadedfile import SimpleUploadedFile

    folder = hepdata_submission(tmp_path / "sub", example_members(example_docs))
    (folder / "submission.yaml").write_text(
        (folder / "submission.yaml").read_text().replace("Likelihoods.tar.xz", "Missing.tar.xz")
    )
    files = [SimpleUploadedFile(f.name, f.read_bytes()) for f in sorted(folder.iterdir())]
    report = APIClient().post("/api/v1/validate", {"file": files}).json()
    assert not report["valid"]
    (problem,) = report["problems"]
    assert problem["file"] == "submission.yaml"
    assert problem["pointer"] == "/0/additional_resources/1/location"


def test_workspace_and_patchset_given_as_two_json_resources_pair_up(tmp_path, example_docs):
    ws, ps = example_docs
    folder = tmp_path / "sub"
    folder.mkdir()
    (folder / "BkgOnly.json").write_text(json.dumps(ws))
    (folder / "patchset.json").write_text(json.dumps(ps))
    (folder / "submission.yaml").write_text(
        FIRST.format(location="BkgOnly.json", kind="HistFactory")
        + '- {location: "patchset.json", description: "signals", type: HistFactory}\n'
    )
    report, regions = validate_paths([folder])
    assert report.valid, report.problems
    (region,) = regions
    assert region.name == "BkgOnly" and len(region.patchset["patches"]) == len(ps["patches"])


def test_a_lone_patchset_resource_is_an_error_at_its_location(tmp_path, example_docs):
    ws, ps = example_docs
    folder = tmp_path / "sub"
    (folder / "signals").mkdir(parents=True)
    (folder / "BkgOnly.json").write_text(json.dumps(ws))
    (folder / "signals" / "patchset.json").write_text(json.dumps(ps))
    (folder / "submission.yaml").write_text(
        FIRST.format(location="BkgOnly.json", kind="HistFactory")
        + '- {location: "signals/patchset.json", type: HistFactory}\n'
    )
    report, _ = validate_paths([folder])
    problem = problem_at(report, "/0/additional_resources/2/location")
    assert problem.message.startswith("line 8: ") and "beside one" in problem.message


@pytest.mark.django_db
def test_the_inspire_id_in_record_ids_files_the_submission(tmp_path, example_docs):
    folder = hepdata_submission(tmp_path / "sub", example_members(example_docs))
    _, version = ingest_paths([folder], Publication(title="T", collaboration="ATLAS"))
    assert version.analysis.inspire_id == 1765529
    report, none = ingest_paths(
        [folder], Publication(title="T", collaboration="ATLAS", inspire_id=42)
    )
    assert none is None and Analysis.objects.get().versions.count() == 1
    problem = problem_at(report, "/0/record_ids")
    assert "1765529" in problem.message and "42" in problem.message
