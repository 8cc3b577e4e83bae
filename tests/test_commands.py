"""The command-line contracts of DESIGN.md, run as real subprocesses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def manage(*args, env_dir) -> subprocess.CompletedProcess:
    import os

    env = {**os.environ, "HEPSTORE_DATA_DIR": str(env_dir)}
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )


def test_validate_exit_codes_and_json(bundle, tmp_path):
    root, ws, ps = bundle
    ok = manage("validate", root, "--format", "json", env_dir=tmp_path)
    assert ok.returncode == 0, ok.stderr
    body = json.loads(ok.stdout)
    assert body["valid"] is True and set(body) == {"valid", "problems", "summary"}
    ps["metadata"]["digests"]["sha256"] = "a" * 64
    (root / "RegionA" / "patchset.json").write_text(json.dumps(ps))
    bad = manage("validate", root, "--format", "json", env_dir=tmp_path)
    assert bad.returncode == 1
    problem = json.loads(bad.stdout)["problems"][0]
    assert set(problem) == {"file", "pointer", "severity", "message"}
    unusable = manage("validate", tmp_path / "does-not-exist", env_dir=tmp_path)
    assert unusable.returncode == 2 and "Traceback" not in unusable.stderr
    text = manage("validate", root, env_dir=tmp_path)
    assert "INVALID" in text.stdout and "digest" in text.stdout


def test_cls_json_contract_for_a_patchset(bundle, tmp_path):
    root, _, ps = bundle
    names = [p["metadata"]["name"] for p in ps["patches"][:3]]
    args = [
        "cls",
        root / "RegionA" / "BkgOnly.json",
        "--patchset",
        root / "RegionA" / "patchset.json",
        "--upper-limit",
        "--format",
        "json",
    ]
    for name in names:
        args += ["--patch", name]
    out = manage(*args, env_dir=tmp_path)
    assert out.returncode == 0, out.stderr
    body = json.loads(out.stdout)
    assert set(body) == {"results", "settings"}
    assert [r["patch"] for r in body["results"]] == names
    for r in body["results"]:
        assert {
            "patch",
            "values",
            "cls_obs",
            "cls_exp",
            "mu_hat",
            "twice_nll",
            "mu_up_obs",
            "mu_up_exp",
            "converged",
        } <= set(r)
        assert len(r["cls_exp"]) == 5 and len(r["mu_up_exp"]) == 5
        assert r["cls_exp"] == sorted(r["cls_exp"])
    assert body["settings"]["interpolation"] == {"normsys": "code4", "histosys": "code4p"}


def test_cls_on_every_patch_without_upper_limits(bundle, tmp_path):
    root, _, ps = bundle
    out = manage(
        "cls",
        root / "RegionA" / "BkgOnly.json",
        "--patchset",
        root / "RegionA" / "patchset.json",
        "--format",
        "json",
        env_dir=tmp_path,
    )
    results = json.loads(out.stdout)["results"]
    assert len(results) == len(ps["patches"])
    assert all("mu_up_obs" not in r for r in results)


def test_cls_reports_user_mistakes_without_traceback(bundle, tmp_path):
    root, _, _ = bundle
    out = manage(
        "cls",
        root / "RegionA" / "BkgOnly.json",
        "--patchset",
        root / "RegionA" / "patchset.json",
        "--patch",
        "nope",
        env_dir=tmp_path,
    )
    assert out.returncode != 0 and "no patch named 'nope'" in out.stderr
    assert "Traceback" not in out.stderr
    # A background-only workspace has no POI modifier: a clear message, not a crash.
    out = manage("cls", root / "RegionA" / "BkgOnly.json", env_dir=tmp_path)
    assert out.returncode != 0 and "parameter of interest" in out.stderr


@pytest.mark.slow
def test_cls_matches_pyhf_reference_on_a_real_patch(tmp_path):
    from tests.shared_data import load, require_shared

    folder = require_shared("sbottom")
    ref = next(p for p in load("sbottom", "pyhf_reference.json")["patches"] if p.get("cls_obs"))
    out = manage(
        "cls",
        folder / "BkgOnly.json",
        "--patchset",
        folder / "patchset.json",
        "--patch",
        ref["name"],
        "--format",
        "json",
        env_dir=tmp_path,
    )
    (result,) = json.loads(out.stdout)["results"]
    assert result["cls_obs"] == pytest.approx(ref["cls_obs"], rel=5e-3, abs=2e-4)
