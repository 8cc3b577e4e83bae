"""Shared fixtures: an isolated data directory per test and the generated example bundle."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from hepstore import examples


def pytest_sessionfinish(session, exitstatus):
    """Django removes the SQLite test database file but not its write-ahead log files."""
    from django.conf import settings

    if not settings.configured:
        return
    db = settings.DATABASES["default"]
    name = str(db.get("TEST", {}).get("NAME") or "")
    if db["ENGINE"].endswith("sqlite3") and name and not Path(name).exists():
        for suffix in ("-wal", "-shm"):
            Path(name + suffix).unlink(missing_ok=True)


@pytest.fixture(autouse=True)
def isolated_blobs(tmp_path, settings):
    settings.HEPSTORE_BLOB_DIR = tmp_path / "blobs"
    settings.DATA_DIR = tmp_path
    # In-process tests serve static files from the source folders; the production path
    # (collectstatic, hashed and compressed names) is tested against gunicorn.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    # The file cache (request-rate counters) of the test's own, not the data directory's: that
    # one is shared by every process of a run (.ci/test runs two), and a test clearing it
    # would reset another's counters.
    cache = settings.CACHES["default"]
    if cache["BACKEND"].endswith("FileBasedCache"):
        settings.CACHES = {
            **settings.CACHES,
            "default": {**cache, "LOCATION": str(tmp_path / "cache")},
        }
    return settings.HEPSTORE_BLOB_DIR


@pytest.fixture(autouse=True)
def fresh_throttles(isolated_blobs):
    """Request-rate counters (in Django's cache) start from zero in every test. Never with
    REDIS_URL set: the cache would then be that Redis, and clearing it flushes the whole
    database (the Celery tests use HEPSTORE_TEST_REDIS_URL, with keys of their own)."""
    from django.conf import settings
    from django.core.cache import cache

    if "redis" in settings.CACHES["default"]["BACKEND"].lower():
        pytest.exit("unset REDIS_URL to run the tests: clearing their cache would flush it")
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def example_docs():
    # Deep copies: the generated workspace shares module-level dicts (examples.LUMI) that a
    # test mutating its documents would otherwise change for every later test.
    ws = copy.deepcopy(examples.background_workspace())
    return ws, copy.deepcopy(examples.patchset(ws))


def write_bundle(directory: Path, workspace, patchset=None, region="RegionA") -> Path:
    target = directory / region
    target.mkdir(parents=True, exist_ok=True)
    (target / "BkgOnly.json").write_text(json.dumps(workspace))
    if patchset is not None:
        (target / "patchset.json").write_text(json.dumps(patchset))
    return directory


@pytest.fixture
def bundle(tmp_path, example_docs):
    """A valid example submission directory and its documents (deep copies to mutate)."""
    ws, ps = example_docs
    root = write_bundle(tmp_path / "bundle", ws, ps)
    return root, copy.deepcopy(ws), copy.deepcopy(ps)


# Fixtures through which a test reaches the database (pytest-django's), and the marker of
# tests whose subprocesses use it.
_DATABASE_FIXTURES = {
    "db",
    "transactional_db",
    "live_server",
    "django_db_reset_sequences",
    "django_db_serialized_rollback",
    "admin_client",
    "admin_user",
    "django_user_model",
}


def pytest_addoption(parser):
    parser.addoption(
        "--database-tests-only",
        action="store_true",
        help="run only the tests that use a database (the second, PostgreSQL, pass of "
        ".ci/test: the others do not depend on which database is configured)",
    )


# Tests that take tens of seconds to minutes. They run first (in collection order otherwise),
# so that where the suite runs in several processes (.ci/test: pytest-xdist, --dist loadfile,
# which hands out whole files in the order of their first test) the files that hold them are
# spread over the processes first and none is left to run alone at the end.
_LONG_MARKERS = ("slow", "celery")


def pytest_collection_modifyitems(config, items):
    items.sort(key=lambda item: not any(item.get_closest_marker(m) for m in _LONG_MARKERS))
    if not config.getoption("--database-tests-only"):
        return
    keep, drop = [], []
    for item in items:
        uses = (
            item.get_closest_marker("django_db") is not None
            or item.get_closest_marker("database") is not None
            or bool(_DATABASE_FIXTURES & set(getattr(item, "fixturenames", ())))
        )
        (keep if uses else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
