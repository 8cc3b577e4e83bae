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


@pytest.mark.slow
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
    assert "the point could not be evaluated" in out.stderr


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


def _strict_json(text: str):
    """Parse as JSON proper: a bare NaN/Infinity token is an error, not a float."""

    def refuse(token):
        raise ValueError(f"not JSON: {token}")

    return json.loads(text, parse_constant=refuse)


def test_cls_isolates_the_empty_patch_of_a_published_patchset(tmp_path):
    from tests.shared_data import require_shared

    folder = require_shared("3l-offshell-simplified")
    out = manage(
        "cls",
        folder / "BkgOnly.json",
        "--patchset",
        folder / "patchset.json",
        "--format",
        "json",
        env_dir=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    results = _strict_json(out.stdout)["results"]
    assert len(results) == 91
    failed = [r for r in results if r["error"] is not None]
    assert [r["patch"] for r in failed] == ["3Lconfig_MLL_v2p2_CRs_C1N2_WZ_150_50_3L_2L7"]
    assert "parameter of interest 'mu_Sig'" in failed[0]["error"]
    assert failed[0]["cls_obs"] is None and failed[0]["cls_exp"] == [None] * 5
    computed = [r for r in results if r["error"] is None]
    assert len(computed) == 90 and all(0.0 <= r["cls_obs"] <= 1.0 for r in computed)
    assert "1 of 91 points could not be evaluated" in out.stderr


def test_cls_table_and_json_show_a_limit_above_the_poi_bound(bundle, tmp_path):
    root, ws, ps = bundle
    # A signal so small that CLs stays above 0.05 up to the POI's upper bound of 10.
    ps["patches"][0]["patch"][0]["value"]["data"] = [0.01, 0.01, 0.01]
    (root / "RegionA" / "patchset.json").write_text(json.dumps(ps))
    name = ps["patches"][0]["metadata"]["name"]
    args = [
        "cls",
        root / "RegionA" / "BkgOnly.json",
        "--patchset",
        root / "RegionA" / "patchset.json",
    ]
    args += ["--patch", name, "--upper-limit"]
    out = manage(*args, "--format", "json", env_dir=tmp_path)
    (r,) = _strict_json(out.stdout)["results"]
    assert r["mu_up_obs"] is None and r["limit_above_poi_bound"] is True
    assert r["limit_above_poi_bound_exp"] == [True] * 5 and r["poi_upper_bound"] == 10.0
    assert r["converged"] is True and r["limits_converged"] is True
    assert "above the upper bound of the POI (10)" in r["null_reasons"]["mu_up_obs"]
    table = manage(*args, env_dir=tmp_path)
    row = table.stdout.splitlines()[1]
    assert row.count("> 10") == 2 and "NOT CONVERGED" not in row


def test_cls_json_never_prints_a_nan_token(bundle, monkeypatch, capsys):
    """Whatever the fits give, the JSON has null and a reason: a NaN from the engine becomes
    null at the result's construction, and the dump itself refuses NaN as a last guard."""
    from django.core.management import call_command

    from reinterpret import services
    from reinterpret.fitter import PointResult

    root, _, ps = bundle

    def nan_results(workspaces, options, measurement, codes):
        return [
            PointResult(
                index=i,
                cls_obs=float("nan"),
                cls_exp=(float("nan"), 0.1, 0.2, float("inf"), 0.4),
                mu_hat=1.0,
                mu_hat_error=0.5,
                twice_nll=float("nan"),
                q_obs=float("nan"),
                q_asimov=1.0,
                converged=False,
                warnings=("fixed-POI fit did not converge (likelihood not finite)",),
            )
            for i in range(len(workspaces))
        ]

    monkeypatch.setattr(services, "evaluate_points", nan_results)
    name = ps["patches"][0]["metadata"]["name"]
    call_command(
        "cls",
        str(root / "RegionA" / "BkgOnly.json"),
        "--patchset",
        str(root / "RegionA" / "patchset.json"),
        "--patch",
        name,
        "--format",
        "json",
    )
    (r,) = _strict_json(capsys.readouterr().out)["results"]
    assert r["cls_obs"] is None and r["twice_nll"] is None
    assert r["cls_exp"] == [None, 0.1, 0.2, None, 0.4]
    assert set(r["null_reasons"]) == {"cls_obs", "cls_exp[0]", "cls_exp[3]", "twice_nll"}
    assert all("not a finite number" in why for why in r["null_reasons"].values())
