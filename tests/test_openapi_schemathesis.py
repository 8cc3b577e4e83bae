"""The OpenAPI schema is true: schemathesis (every check) against a live server.

The server is a real process (`manage.py serve`, with its job worker) on a free port of
127.0.0.1 with its own data directory holding the generated example likelihood, a second
region and a stored combination of the two; schemathesis
runs with a time budget and a fixed seed, authenticated as a staff user (whose jobs it may
then read and cancel). Any server error, undocumented status, content type or header, or
response that does not match its schema fails the test with schemathesis's report.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from hepstore import examples
from tests.conftest import write_bundle
from tests.test_combine import region

ROOT = Path(__file__).resolve().parent.parent
SCHEMATHESIS = shutil.which("schemathesis", path=str(Path(sys.executable).parent)) or shutil.which(
    "schemathesis"
)
TIME_BUDGET_SECONDS = int(os.environ.get("HEPSTORE_SCHEMATHESIS_SECONDS", "120"))

pytestmark = pytest.mark.skipif(SCHEMATHESIS is None, reason="schemathesis is not installed")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def manage(env: dict, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def live_portal(tmp_path):
    env = {
        **os.environ,
        "HEPSTORE_DATA_DIR": str(tmp_path / "data"),
        "DEBUG": "false",
        "LOG_LEVEL": "WARNING",
        # The fuzzer is one client sending thousands of requests: rates and per-client caps
        # would answer most of them 429 and leave the endpoints untested.
        "REINTERPRET_MAX_QUEUED_PER_CLIENT": "100000",
        "REINTERPRET_MAX_QUEUED_JOBS": "100000",
        **{
            f"HEPSTORE_THROTTLE_{scope}_{kind}": ""
            for scope in ("VALIDATE", "REINTERPRET", "SCAN", "SUBMISSIONS")
            for kind in ("ANON", "USER")
        },
    }
    env.pop("DATABASE_URL", None)
    manage(env, "migrate", "-v0")
    manage(env, "examples")
    # A second region (the example's channels renamed, 1.3 times the background) and a stored
    # combination of both, so that the combination endpoints answer more than 404.
    second = region("_B", 1.3)
    bundle = write_bundle(tmp_path / "second", second, examples.patchset(second), "RegionB")
    manage(env, "ingest", str(bundle), "--title", "Second region", "--collaboration", "EXAMPLE")
    manage(
        env,
        "shell",
        "-c",
        "from hepstore.models import Likelihood; "
        "from reinterpret import combination_services as cs; "
        "a, b = Likelihood.objects.order_by('pk')[:2]; "
        "cs.create({'name': 'both regions', 'members': "
        "[{'likelihood': a.pk, 'tag': 'A'}, {'likelihood': b.pk, 'tag': 'B'}]})",
    )
    token = manage(
        env,
        "shell",
        "-c",
        "from django.contrib.auth.models import User; "
        "from rest_framework.authtoken.models import Token; "
        "u = User.objects.create_user('fuzzer', is_staff=True, is_superuser=True); "
        "print(Token.objects.create(user=u).key)",
    ).split()[-1]
    port = free_port()
    log = open(tmp_path / "server.log", "w")  # noqa: SIM115 - closed below
    server = subprocess.Popen(
        [sys.executable, "manage.py", "serve", f"127.0.0.1:{port}"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(f"{base}/api/v1/schema/", timeout=5).raise_for_status()
                break
            except requests.RequestException:
                assert server.poll() is None, (tmp_path / "server.log").read_text()
                assert time.monotonic() < deadline, "the server did not come up"
                time.sleep(0.3)
        yield base, token, tmp_path / "server.log"
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


@pytest.mark.slow
def test_schemathesis_finds_no_server_error_and_no_schema_violation(live_portal, tmp_path):
    base, token, server_log = live_portal
    command = [
        SCHEMATHESIS,
        "--no-color",
        "--config-file",
        str(ROOT / "tests" / "schemathesis.toml"),
        "run",
        f"{base}/api/v1/schema/",
        "--checks",
        "all",
        "--max-time",
        str(TIME_BUDGET_SECONDS),
        "--max-examples",
        "25",
        "--seed",
        "20261126",
        "--workers",
        "1",
        "--request-timeout",
        "60",
        "--header",
        f"Authorization: Token {token}",
        "--warnings",
        "off",
    ]
    done = subprocess.run(
        command,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=TIME_BUDGET_SECONDS + 300,
    )
    report = done.stdout[-20000:] + done.stderr[-5000:]
    log = server_log.read_text()
    first = log.find("Traceback")
    assert first < 0, f"the server logged an error:\n{log[max(0, first - 300) : first + 6000]}"
    assert done.returncode == 0, report
