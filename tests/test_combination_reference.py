"""`manage.py combine` + `manage.py cls` against pyhf's `Workspace.combine` + `infer.hypotest`
for two real likelihoods (regions B and C of the ATLAS sbottom search), with `lumi` correlated
and decorrelated. The pyhf numbers were computed once by benchmarks/combination_reference.py
and are stored in tests/data/combination_reference.json; the likelihoods themselves are read
from ../shared/likelihoods (skipped when absent).

Bar (the fitter's): |dCLs| <= 2e-4 or <= 0.5 % relative, upper limits 0.5 %.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from django.core.management import call_command

from hepstore.patching import apply
from tests.shared_data import require_shared

DATA = Path(__file__).parent / "data" / "combination_reference.json"
if not DATA.exists():
    pytest.skip(
        f"{DATA} not computed (benchmarks/combination_reference.py)", allow_module_level=True
    )
REFERENCE = json.loads(DATA.read_text(encoding="utf-8"))


def close(a, b, rel=5e-3, abs_=2e-4):
    return abs(a - b) <= abs_ or abs(a - b) <= rel * abs(b)


@pytest.fixture(scope="module")
def combined(tmp_path_factory):
    """Per policy: the combined workspace and patchset written by `manage.py combine`."""
    out = {}
    folders = {tag: require_shared(folder) for tag, folder in REFERENCE["members"].items()}
    for policy, config in REFERENCE["policies"].items():
        target = tmp_path_factory.mktemp(policy)
        args = [f"{tag}={folder / 'BkgOnly.json'}" for tag, folder in folders.items()]
        args += [f"--patchset={tag}={folder / 'patchset.json'}" for tag, folder in folders.items()]
        for tag, renames in REFERENCE["channel_renames"].items():
            args += [f"--rename={tag}:{old}={new}" for old, new in renames.items()]
        args += [f"--decorrelate={name}" for name in config["decorrelate"]]
        workspace, patchset = target / "combined.json", target / "patchset.json"
        call_command(
            "combine",
            *args,
            output=str(workspace),
            patchset_output=str(patchset),
            stderr=io.StringIO(),
        )
        out[policy] = workspace, patchset
    return out


def evaluate(workspace, patchset, names) -> dict:
    stdout = io.StringIO()
    args = [str(workspace), "--patchset", str(patchset), "--upper-limit", "--format", "json"]
    for name in names:
        args += ["--patch", name]
    call_command("cls", *args, stdout=stdout)
    return {r["patch"]: r for r in json.loads(stdout.getvalue())["results"]}


@pytest.mark.parametrize("policy", sorted(REFERENCE["policies"]))
def test_combined_model_has_pyhfs_channels_parameters_and_provenance(combined, policy):
    workspace_file, patchset_file = combined[policy]
    workspace = json.loads(workspace_file.read_text())
    patches = {p["metadata"]["name"]: p for p in json.loads(patchset_file.read_text())["patches"]}
    for ref in REFERENCE["results"][policy]:
        patch = patches[ref["name"]]
        assert patch["metadata"]["members"] == ref["members"], ref["name"]
        point = apply(workspace, patch["patch"])
        assert sorted(c["name"] for c in point["channels"]) == ref["channels"]
        names = {m["name"] for c in point["channels"] for s in c["samples"] for m in s["modifiers"]}
        assert sorted(names) == ref["parameters"], ref["name"]


@pytest.mark.parametrize("policy", sorted(REFERENCE["policies"]))
def test_cls_and_limits_agree_with_pyhf(combined, policy):
    refs = REFERENCE["results"][policy]
    results = evaluate(*combined[policy], [r["name"] for r in refs])
    for ref in refs:
        got = results[ref["name"]]
        assert got["converged"], (ref["name"], got["warnings"])
        pairs = [(got["cls_obs"], ref["cls_obs"])] + list(
            zip(got["cls_exp"], ref["cls_exp"], strict=True)
        )
        assert all(close(a, b) for a, b in pairs), (ref["name"], pairs)
        if "mu_up_obs" in ref:
            assert close(got["mu_up_obs"], ref["mu_up_obs"], abs_=0), ref["name"]
            for a, b in zip(got["mu_up_exp"], ref["mu_up_exp"], strict=True):
                assert close(a, b, abs_=0), (ref["name"], got["mu_up_exp"], ref["mu_up_exp"])


def test_decorrelating_lumi_changes_the_numbers():
    """The two policies are different likelihoods: the reference itself must show it, or
    the decorrelated comparison would test nothing new."""
    corr = {r["name"]: r for r in REFERENCE["results"]["lumi_correlated"]}
    decorr = {r["name"]: r for r in REFERENCE["results"]["lumi_decorrelated"]}
    assert "lumi" in corr["sbottom_1300_1150_60"]["parameters"]
    assert {"lumi_B", "lumi_C"} <= set(decorr["sbottom_1300_1150_60"]["parameters"])
    assert any(corr[n]["cls_obs"] != decorr[n]["cls_obs"] for n in corr)
