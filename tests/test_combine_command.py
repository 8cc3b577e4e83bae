"""`manage.py combine` as a real subprocess: exit codes, clashes with pointers, and a combined
workspace + patchset that `validate` accepts and `cls` evaluates."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command

from hepstore import examples
from tests.test_combine import region
from tests.test_commands import manage


def write_members(tmp_path):
    paths = {}
    for tag, ws in (("A", region()), ("B", region("_B", 1.3))):
        (tmp_path / f"{tag}.json").write_text(json.dumps(ws))
        (tmp_path / f"{tag}_ps.json").write_text(json.dumps(examples.patchset(ws)))
        paths[tag] = tmp_path / f"{tag}.json", tmp_path / f"{tag}_ps.json"
    return paths


def test_clashing_channels_exit_1_with_the_pointer(tmp_path):
    a = tmp_path / "a.json"
    a.write_text(json.dumps(region()))
    out = manage("combine", f"A={a}", f"B={a}", "-o", tmp_path / "c.json", env_dir=tmp_path)
    assert out.returncode == 1, out.stderr
    assert "B#/channels/0/name" in out.stderr and "--rename B:SR_meff=" in out.stderr
    assert "Traceback" not in out.stderr and not (tmp_path / "c.json").exists()


def test_unusable_arguments_exit_2(tmp_path, capsys):
    a = tmp_path / "a.json"
    a.write_text(json.dumps(region()))
    for args, said in (
        ([a, tmp_path / "nope.json"], "cannot read"),
        ([a, a, "--label", "nonsense"], "TAG:LABEL=NAME"),
        ([a, a, "--rename", "x"], "[TAG:]OLD=NEW"),
        ([a, a, "--patchset", "Z=x.json"], "no member is tagged 'Z'"),
    ):
        with pytest.raises(SystemExit) as info:
            call_command("combine", *map(str, args))
        assert info.value.code == 2
        assert said in capsys.readouterr().err


def test_combined_workspace_and_patchset_validate_and_evaluate(tmp_path):
    paths = write_members(tmp_path)
    combined, patchset = tmp_path / "combined.json", tmp_path / "combined_ps.json"
    out = manage(
        "combine",
        f"A={paths['A'][0]}",
        f"B={paths['B'][0]}",
        "--decorrelate",
        "lumi",
        "--patchset",
        f"A={paths['A'][1]}",
        "--patchset",
        f"B={paths['B'][1]}",
        "--output",
        combined,
        "--patchset-output",
        patchset,
        env_dir=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    ws = json.loads(combined.read_text())
    assert len(ws["channels"]) == 4 and ws["measurements"][0]["config"]["poi"] == "mu_SIG"
    ps = json.loads(patchset.read_text())
    first = ps["patches"][0]["metadata"]
    assert first["members"] == {"A": first["name"], "B": first["name"]}
    valid = manage("validate", combined, patchset, "--format", "json", env_dir=tmp_path)
    assert valid.returncode == 0, valid.stdout
    name = first["name"]
    cls = manage(
        "cls",
        combined,
        "--patchset",
        patchset,
        "--patch",
        name,
        "--format",
        "json",
        env_dir=tmp_path,
    )
    assert cls.returncode == 0, cls.stderr
    (result,) = json.loads(cls.stdout)["results"]
    assert result["patch"] == name and result["converged"]
    assert 0 <= result["cls_obs"] <= 1


def test_documents_that_are_not_workspaces_are_refused_with_pointers(tmp_path, capsys):
    a = tmp_path / "a.json"
    a.write_text(json.dumps(region()))
    b = tmp_path / "b.json"
    b.write_text(json.dumps({"channels": "no"}))
    with pytest.raises(SystemExit) as info:
        call_command("combine", str(a), str(b), "--patchset", f"m1={b}")
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert "m2#/channels: not a valid workspace" in err and "not a valid patchset" in err


def test_check_reports_json_without_writing(tmp_path, capsys):
    paths = write_members(tmp_path)
    call_command("combine", str(paths["A"][0]), str(paths["B"][0]), "--check", "--format", "json")
    body = json.loads(capsys.readouterr().out)
    assert body["valid"] is True and body["summary"]["members"] == ["m1", "m2"]
    assert "lumi" in body["summary"]["shared_parameters"]
