"""Safe defaults and operability: settings parsing, the secret key, `check --deploy`, the
Content-Security-Policy, plain error pages, /healthz and the log format."""

from __future__ import annotations

import json
import logging
import os
import secrets
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from rest_framework.test import APIClient

from hepstore import config
from hepstore.logs import ContextFilter, JsonFormatter, TextFormatter, log_context
from hepstore.services import Publication, ingest_paths
from reinterpret.jobs import Worker

ROOT = Path(__file__).resolve().parent.parent


def manage(tmp_path, *args, **env):
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DEBUG", "SECRET_KEY", "REDIS_URL", "DATABASE_URL"}
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**base, "HEPSTORE_DATA_DIR": str(tmp_path), **env},
        capture_output=True,
        text=True,
    )


@pytest.mark.parametrize(
    "name, value",
    [
        ("DEBUG", "maybe"),
        ("HEPSTORE_HTTPS", "sure"),
        ("REINTERPRET_SCAN_CHUNK", "many"),
        ("LOG_FORMAT", "xml"),
    ],
)
def test_an_unparsable_setting_stops_start_up_naming_the_variable(tmp_path, name, value):
    run = manage(tmp_path, "check", **{name: value})
    assert run.returncode != 0
    assert name in run.stderr and repr(value) in run.stderr
    assert "Traceback" not in run.stderr


@pytest.mark.parametrize(
    "name, value",
    [("DATABASE_URL", "mysqlx://user:hunter2@db/x"), ("REDIS_URL", "hunter2@localhost:6379")],
)
def test_an_unusable_url_stops_start_up_without_repeating_it(tmp_path, name, value):
    run = manage(tmp_path, "check", **{name: value})
    assert run.returncode != 0 and name in run.stderr
    assert "hunter2" not in run.stderr and "Traceback" not in run.stderr


def test_boolean_settings_read_the_usual_spellings(monkeypatch):
    for raw, expected in [("true", True), ("On", True), ("1", True), ("no", False), ("", True)]:
        monkeypatch.setenv("SOME_FLAG", raw)
        assert config.env_bool("SOME_FLAG", True) is expected
    monkeypatch.setenv("SOME_FLAG", "maybe")
    with pytest.raises(ImproperlyConfigured, match="SOME_FLAG"):
        config.env_bool("SOME_FLAG", False)


def test_the_secret_key_is_generated_once_per_data_dir_with_mode_0600(tmp_path, monkeypatch):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    first = config.secret_key(tmp_path / "a")
    assert config.secret_key(tmp_path / "a") == first and len(first) >= 50
    assert stat.S_IMODE((tmp_path / "a" / "secret_key").stat().st_mode) == 0o600
    assert config.secret_key(tmp_path / "b") != first
    monkeypatch.setenv("SECRET_KEY", "k" * 60)
    assert config.secret_key(tmp_path / "a") == "k" * 60


def test_debug_is_off_by_default_and_no_key_is_in_the_settings(tmp_path):
    run = manage(
        tmp_path,
        "shell",
        "-c",
        "from django.conf import settings; print(settings.DEBUG, settings.SECRET_KEY)",
    )
    debug, key = run.stdout.splitlines()[-1].split()
    assert debug == "False"
    assert key == (tmp_path / "secret_key").read_text()
    assert key not in (ROOT / "hepstore" / "settings.py").read_text()


def test_check_deploy_is_clean_with_production_settings_and_warns_without_https(tmp_path):
    production = {
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "portal.example.org",
        "CSRF_TRUSTED_ORIGINS": "https://portal.example.org",
    }
    clean = manage(
        tmp_path,
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        HEPSTORE_HTTPS="true",
        **production,
    )
    assert clean.returncode == 0, clean.stderr
    assert "no issues" in clean.stdout
    plain = manage(tmp_path, "check", "--deploy", "--fail-level", "WARNING", **production)
    assert plain.returncode != 0 and "SECURE_HSTS_SECONDS" in plain.stderr


def test_https_mode_trusts_the_proxy_and_redirects(tmp_path):
    run = manage(
        tmp_path,
        "shell",
        "-c",
        "from django.conf import settings as s; import json; print(json.dumps([s.SECURE_PROXY_SSL_"
        "HEADER, s.SECURE_SSL_REDIRECT, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, "
        "s.SECURE_HSTS_SECONDS, s.CSRF_TRUSTED_ORIGINS]))",
        HEPSTORE_HTTPS="true",
        CSRF_TRUSTED_ORIGINS="https://a.example,https://b.example",
    )
    header, redirect, session, csrf, hsts, origins = json.loads(run.stdout.splitlines()[-1])
    assert header == ["HTTP_X_FORWARDED_PROTO", "https"] and redirect and session and csrf
    assert hsts >= 31536000 and origins == ["https://a.example", "https://b.example"]


@pytest.mark.django_db
def _redis_url() -> str | None:
    url = os.environ.get("HEPSTORE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    try:
        import redis

        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except Exception:  # no Redis here: that variant is skipped
        return None
    return url


@pytest.mark.parametrize("backend", ["files", "redis"])
def test_every_process_of_the_portal_shares_one_cache(tmp_path, backend):
    """Request-rate counters and fit details live in Django's cache: what one process puts
    there (a web worker counting a client's requests) another one sees, with files in the
    data directory by default and in Redis with REDIS_URL."""
    env = {}
    if backend == "redis":
        url = _redis_url()
        if url is None:
            pytest.skip("no Redis")
        env = {"REDIS_URL": url, "CELERY_KEY_PREFIX": f"hepstore-test-{secrets.token_hex(6)}:"}
    key = f"probe-{secrets.token_hex(6)}"
    outputs = []
    for code in (f"cache.set({key!r}, 42, 60)", f"print(cache.get({key!r}))"):  # two processes
        run = manage(tmp_path, "shell", "-c", "from django.core.cache import cache; " + code, **env)
        assert run.returncode == 0, run.stderr
        outputs.append(run.stdout.strip().splitlines())
    assert outputs[1][-1] == "42"
    if backend == "files":
        assert list((tmp_path / "cache").iterdir())
    else:
        import redis

        client = redis.Redis.from_url(env["REDIS_URL"])
        stored = list(client.scan_iter(match=f"{env['CELERY_KEY_PREFIX']}cache*"))
        assert stored
        client.delete(*stored)


def test_foreign_hosts_and_unknown_pages_get_plain_answers(client):
    foreign = client.get("/", HTTP_HOST="evil.example")
    assert foreign.status_code == 400
    missing = client.get("/no/such/page")
    assert missing.status_code == 404
    for response in (foreign, missing):
        body = response.content.decode()
        assert "Traceback" not in body and "settings" not in body.lower()


@pytest.mark.django_db
def test_pages_and_served_svgs_carry_a_content_security_policy(bundle):
    root, _, _ = bundle
    _, version = ingest_paths([root], Publication(title="Example", collaboration="ATLAS"))
    lh = version.likelihoods.get()
    api = APIClient()
    page = api.get(f"/likelihoods/{lh.pk}/")
    assert "script-src 'self'" in page["Content-Security-Policy"]
    job = api.post(f"/api/v1/likelihoods/{lh.pk}/scan", {}, format="json").json()
    Worker().run_until_idle()
    # The job is anonymous: its token (returned at creation) shows it to its owner.
    svg = api.get(f"/api/v1/jobs/{job['id']}/contour.svg", HTTP_X_JOB_TOKEN=job["token"])
    assert svg["Content-Type"] == "image/svg+xml"
    assert svg["Content-Security-Policy"].startswith("default-src 'none'")


@pytest.mark.django_db
def test_healthz_is_200_when_every_part_works(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["failed"] == []
    assert body["checks"]["queue"]["backend"] == "database"


@pytest.mark.django_db
def test_healthz_names_the_blob_store_when_it_cannot_be_written(client, settings, tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    settings.HEPSTORE_BLOB_DIR = blocker / "blobs"
    response = client.get("/healthz")
    assert response.status_code == 503 and response.json()["failed"] == ["blobs"]


@pytest.mark.django_db
def test_healthz_names_the_broker_when_redis_is_unreachable(client, settings):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings.REDIS_URL = f"redis://:hunter2@127.0.0.1:{port}/0"
    response = client.get("/healthz")
    assert response.status_code == 503 and response.json()["failed"] == ["queue"]
    assert "hunter2" not in response.content.decode()


def _record(message: str) -> logging.LogRecord:
    record = logging.LogRecord("reinterpret.jobs", logging.INFO, __file__, 1, message, (), None)
    ContextFilter().filter(record)
    return record


def test_log_lines_carry_time_level_logger_and_the_job_and_worker():
    with log_context(job=42, worker="w1@host"):
        line = JsonFormatter().format(_record("chunk done"))
        text = TextFormatter().format(_record("chunk done"))
    data = json.loads(line)
    assert data["level"] == "INFO" and data["logger"] == "reinterpret.jobs"
    assert data["job"] == "42" and data["worker"] == "w1@host" and data["message"] == "chunk done"
    assert data["time"].endswith("+00:00")
    assert " INFO reinterpret.jobs [job=42 worker=w1@host] chunk done" in text
    assert "job" not in json.loads(JsonFormatter().format(_record("outside")))


def test_json_logs_put_a_traceback_in_the_same_line():
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    line = JsonFormatter().format(record)
    assert "\n" not in line and "ValueError: boom" in json.loads(line)["exception"]
