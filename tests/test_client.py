"""The theorists' client (client/) against a live server in a subprocess: the README's
worked example runs as written, and its result agrees with `manage.py cls` on the point."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "client"))

from hepstore_client import Portal, PortalError  # noqa: E402


def manage(env, *args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *map(str, args)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """A portal serving the generated example analysis on a free loopback port."""
    data = tmp_path_factory.mktemp("live")
    env = {**os.environ, "HEPSTORE_DATA_DIR": str(data), "DEBUG": "false"}
    env.pop("DATABASE_URL", None)  # the server's own SQLite file, nobody else's database
    for args in (("migrate", "-v0"), ("examples",)):
        done = manage(env, *args)
        assert done.returncode == 0, done.stderr
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "manage.py", "serve", f"127.0.0.1:{port}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if requests.get(f"{url}/api/v1/analyses/", timeout=5).ok:
                    break
            except requests.ConnectionError:
                pass
            assert server.poll() is None, server.stderr.read()
            assert time.monotonic() < deadline, "the server did not start within 90 s"
            time.sleep(0.3)
        yield url, env, data
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()


def readme_example() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"<!-- client-example -->\n```python\n(.*?)```", text, re.DOTALL)
    assert match, "README has no client example"
    return match.group(1)


def test_the_readme_example_runs_and_agrees_with_manage_py_cls(live):
    url, env, data = live
    run_env = {**env, "PORTAL_URL": url, "PYTHONPATH": str(ROOT / "client")}
    done = subprocess.run(
        [sys.executable, "-c", readme_example()],
        cwd=data,  # not the repository: the client must not need the portal's code
        env=run_env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    printed = re.search(r"^(\S+): CLs_obs = (\S+), CLs_exp = (\[.*\])$", done.stdout, re.MULTILINE)
    assert printed, done.stdout
    name, cls_obs, cls_exp = printed.group(1), float(printed.group(2)), json.loads(printed.group(3))
    assert name == "C1N2_500_100"
    assert "observed contour:" in done.stdout and "job " in done.stderr  # the progress bar
    region = data / "examples" / "RegionA"
    cls = manage(
        env,
        "cls",
        region / "BkgOnly.json",
        "--patchset",
        region / "patchset.json",
        "--patch",
        name,
        "--format",
        "json",
    )
    assert cls.returncode == 0, cls.stderr
    (reference,) = json.loads(cls.stdout)["results"]
    assert cls_obs == pytest.approx(reference["cls_obs"], rel=1e-9, abs=1e-12)
    assert cls_exp == pytest.approx(reference["cls_exp"], rel=1e-9, abs=1e-12)


def test_points_by_values_downloads_and_errors(live):
    url, _, _ = live
    portal = Portal(url)
    analysis = portal.analyses()[0]
    lh = portal.analysis(analysis["id"])["versions"][0]["likelihoods"][0]["id"]
    assert [p["name"] for p in portal.signals(lh, m1=300)] == [
        "C1N2_300_0",
        "C1N2_300_100",
        "C1N2_300_200",
    ]
    assert len(portal.signals(lh)) == 18  # every page followed
    workspace = portal.workspace(lh, m1=300, m2=100)
    assert workspace == portal.workspace(lh, "C1N2_300_100")
    patch = portal.patch(lh, "C1N2_300_100")
    assert patch and patch[0]["op"] == "add"
    with pytest.raises(PortalError) as ambiguous:
        portal.result(lh, m2=0)
    assert ambiguous.value.status == 400 and ambiguous.value.code == "ambiguous"
    assert len(ambiguous.value.problems) == 6
    with pytest.raises(PortalError) as missing:
        portal.record(999999)
    assert missing.value.status == 404


def build_wheel(source: Path, out: Path, *parts: str) -> Path:
    """A wheel built by pip from a copy of the given parts of source (the build leaves
    build/ and *.egg-info behind, which must not land in the working tree)."""
    tree = out / "src"
    tree.mkdir(parents=True)
    for part in parts:
        if (source / part).is_dir():
            ignore = shutil.ignore_patterns("__pycache__")
            shutil.copytree(source / part, tree / part, ignore=ignore)
        else:
            shutil.copy(source / part, tree / part)
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
    done = subprocess.run(
        [*command, "-q", "-w", str(out), str(tree)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    (wheel,) = out.glob("*.whl")
    return wheel


def requirements(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as zf:
        metadata = zf.read(next(n for n in zf.namelist() if n.endswith("METADATA"))).decode()
    return [
        line.split(":", 1)[1].strip()
        for line in metadata.splitlines()
        if line.startswith("Requires-Dist:")
    ]


def test_the_client_installs_with_pip_depending_only_on_requests(tmp_path):
    wheel = build_wheel(ROOT / "client", tmp_path, "pyproject.toml", "README.md", "hepstore_client")
    assert wheel.name.startswith("hepstore_client-0.1.0")
    assert requirements(wheel) == ["requests>=2.25"]


def test_the_portal_installs_with_pip_and_its_fitter_needs_no_django(tmp_path):
    parts = ("pyproject.toml", "README.md", "requirements.txt", "hepstore", "reinterpret")
    wheel = build_wheel(ROOT, tmp_path, *parts)
    assert {"numpy>=1.26", "scipy>=1.11"} <= set(requirements(wheel))
    target = tmp_path / "site"
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        assert "reinterpret/fitter/__init__.py" in names and "hepstore/settings.py" in names
        assert not any(n.startswith(("tests/", "benchmarks/")) for n in names)
        zf.extractall(target)
    check = (
        "import sys, reinterpret.fitter as f; "
        "assert 'django' not in sys.modules, 'the fitter imported Django'; "
        "print(f.__file__)"
    )
    done = subprocess.run(
        [sys.executable, "-c", check],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(target)},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith(str(target))
