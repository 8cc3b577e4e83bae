"""The production path end to end: `collectstatic`, `gunicorn hepstore.wsgi` with DEBUG off and
a separate `manage.py worker`, driven by headless Chromium: every page renders with its CSS
and JS under the Content-Security-Policy; foreign hosts, unknown pages and static files are
answered as in production."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian's chromium is not installed"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def manage(env, *args):
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )


@pytest.fixture(scope="module")
def production(tmp_path_factory):
    """A portal on gunicorn with production-like settings, the example ingested, a worker."""
    data = tmp_path_factory.mktemp("production")
    port = free_port()
    env = {
        **os.environ,
        "HEPSTORE_DATA_DIR": str(data),
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1",
        "REINTERPRET_STALE_SECONDS": "60",
    }
    # The web stack is under test here, on its embedded database (SQLite in the data dir).
    for name in ("REDIS_URL", "DATABASE_URL", "DJANGO_SETTINGS_MODULE"):
        env.pop(name, None)
    manage(env, "migrate", "-v0")
    manage(env, "collectstatic", "--noinput", "-v0")
    manage(env, "examples")
    web = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "hepstore.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "2",
            "--access-logfile",
            "-",
            "--no-control-socket",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    worker = subprocess.Popen(
        [sys.executable, "manage.py", "worker"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(url + "/healthz", timeout=10)
                break
            except requests.RequestException:
                if web.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"gunicorn did not start: {web.stderr.read()}")
                time.sleep(0.2)
        yield url
    finally:
        for proc in (web, worker):
            proc.terminate()
        for proc in (web, worker):
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    assert worker.returncode == 0, "the worker did not exit cleanly on SIGTERM"


@pytest.fixture
def page():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--no-first-run",
            ],
        )
        page = browser.new_page()
        page.problems = []
        page.on(
            "console",
            lambda m: (
                m.type == "error"
                # Chromium asks every site for /favicon.ico; the portal has none.
                and not m.location.get("url", "").endswith("/favicon.ico")
                and page.problems.append(f"{m.text} {m.location}")
            ),
        )
        page.on("pageerror", lambda e: page.problems.append(str(e)))
        page.on(
            "response",
            lambda r: r.status >= 400 and page.problems.append(f"{r.status} {r.url}"),
        )
        try:
            yield page
        finally:
            browser.close()


def test_every_page_renders_with_its_css_and_js_under_gunicorn(production, page):
    page.goto(production + "/")
    # portal.css applied: the header's dark background, from a hashed, compressed file.
    assert page.eval_on_selector("header", "e => getComputedStyle(e).backgroundColor") == (
        "rgb(20, 33, 61)"
    )
    css = page.eval_on_selector("link[rel=stylesheet]", "e => e.href")
    assert "/static/css/portal." in css and css.endswith(".css") and "portal.css" not in css
    page.get_by_role("link", name="Example search").first.click()
    page.wait_for_url("**/analyses/*/")
    page.locator("a[href*='/likelihoods/']").first.click()
    page.wait_for_url("**/likelihoods/*/")
    # reinterpret.js runs: a whole-grid scan through the separate worker colours the grid.
    page.get_by_role("button", name="Compute CLs for this slice").click()
    page.wait_for_selector("#exclusion-plot", timeout=120000)
    deadline = time.monotonic() + 60
    # Polled from Python: the pages' CSP forbids the string evaluation wait_for_function uses.
    while not page.locator("#exclusion-plot").evaluate("e => e.complete && e.naturalWidth > 0"):
        assert time.monotonic() < deadline, "the exclusion plot did not load"
        page.wait_for_timeout(250)
    first = page.locator("#signal-grid tbody tr").first
    assert first.locator("td.cls").inner_text() not in ("", "–")
    for path in ("/search?q=example", "/validate"):
        page.goto(production + path)
        assert page.eval_on_selector("body", "e => getComputedStyle(e).margin") == "0px"
    page.goto(production + "/api/v1/docs/")
    page.wait_for_selector(".swagger-ui .info", timeout=30000)
    assert "HEP likelihood portal API" in page.inner_text(".swagger-ui .info")
    assert page.problems == []


def test_production_answers_without_debug_information(production):
    page = requests.get(production + "/")
    assert page.status_code == 200
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Frame-Options"] == "DENY"
    foreign = requests.get(production + "/", headers={"Host": "evil.example"})
    assert foreign.status_code == 400
    missing = requests.get(production + "/no/such/page")
    assert missing.status_code == 404
    api_missing = requests.get(production + "/api/v1/analyses/999999/")
    assert api_missing.status_code == 404
    for response in (foreign, missing, api_missing):
        assert "Traceback" not in response.text and "SECRET_KEY" not in response.text
        assert "settings" not in response.text.lower()
    # A hashed static file: compressed, cached for ever.
    css = requests.get(production + "/", timeout=10).text.split('href="/static/css/')[1]
    css_url = production + "/static/css/" + css.split('"')[0]
    static = requests.get(css_url, headers={"Accept-Encoding": "gzip"})
    assert static.status_code == 200 and static.headers["Content-Encoding"] == "gzip"
    assert "immutable" in static.headers["Cache-Control"]
    health = requests.get(production + "/healthz")
    assert health.status_code == 200 and health.json()["status"] == "ok"


def test_manage_py_serve_is_the_one_command_portal_with_its_static_files(tmp_path):
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "DATABASE_URL"}},
        "HEPSTORE_DATA_DIR": str(tmp_path),
        "DEBUG": "false",
    }
    manage(env, "migrate", "-v0")
    serve = subprocess.Popen(
        [sys.executable, "manage.py", "serve", f"127.0.0.1:{port}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                page = requests.get(url + "/", timeout=10)
                break
            except requests.RequestException:
                assert serve.poll() is None and time.monotonic() < deadline, "serve did not start"
                time.sleep(0.2)
        assert page.status_code == 200
        css = page.text.split('href="/static/css/')[1].split('"')[0]
        assert requests.get(f"{url}/static/css/{css}", timeout=10).status_code == 200
        assert requests.get(url + "/healthz", timeout=10).json()["status"] == "ok"
    finally:
        serve.terminate()
        output = serve.communicate(timeout=60)[0]
    assert serve.returncode == 0, output
    assert "gthread" in output and "job worker" in output  # gunicorn + the embedded worker
