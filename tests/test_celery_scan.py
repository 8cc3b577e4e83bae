"""Scans fanned out over Celery workers (real Redis, two real worker processes, a real
database shared with them): a whole grid uses both workers and gives the database queue's
numbers; a worker killed mid-scan loses nothing and duplicates nothing; a chunk lost from the
queue is sent again once the scan has stalled and someone looks at it, and so is a queued job
whose messages are all gone (never those of a job whose messages wait).

Each run uses its own Redis key prefix and queue name, and its own database (a SQLite file, or
a PostgreSQL database created and dropped here when DATABASE_URL points at PostgreSQL)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from contextlib import closing
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.shared_data import require_shared

ROOT = Path(__file__).resolve().parent.parent
REDIS_URL = os.environ.get("HEPSTORE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
pytestmark = [pytest.mark.celery, pytest.mark.database]


def redis_client():
    redis = pytest.importorskip("redis")
    if not REDIS_URL:  # .ci/services found no Redis and could not start one
        pytest.skip("no Redis for the Celery tests")
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError:
        pytest.skip(f"no Redis at {REDIS_URL}")
    return client


class Database:
    """The test's own database: queries from this process, a URL for the subprocesses."""

    def __init__(self, tmp_path: Path):
        base = os.environ.get("DATABASE_URL", "")
        self.name = f"hepstore_celery_{uuid.uuid4().hex[:12]}"
        if base.startswith(("postgres://", "postgresql://")):
            import psycopg

            parts = urlsplit(base)
            self.admin = urlunsplit(parts._replace(path="/postgres"))
            self.url = urlunsplit(parts._replace(path=f"/{self.name}"))
            with psycopg.connect(self.admin, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{self.name}"')
            self.kind = "postgres"
        else:
            self.path = tmp_path / "hepstore.sqlite3"
            self.url = f"sqlite:///{self.path}"
            self.kind = "sqlite"

    def rows(self, sql: str, *params):
        if self.kind == "sqlite":
            with closing(sqlite3.connect(self.path, timeout=30)) as conn:
                return conn.execute(sql, params).fetchall()
        import psycopg

        with psycopg.connect(self.url) as conn:
            return conn.execute(sql.replace("?", "%s"), params).fetchall()

    def drop(self) -> None:
        if self.kind == "postgres":
            import psycopg

            with psycopg.connect(self.admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


@pytest.fixture
def portal(tmp_path):
    """Environment of a portal on Celery: its own database, data dir, Redis prefix, queue."""
    client = redis_client()
    db = Database(tmp_path)
    run_id = uuid.uuid4().hex[:12]
    env = {
        **os.environ,
        "HEPSTORE_DATA_DIR": str(tmp_path),
        "DATABASE_URL": db.url,
        "SECRET_KEY": "celery-test-" + run_id * 5,
        "REDIS_URL": REDIS_URL,
        "CELERY_KEY_PREFIX": f"hepstore-test-{run_id}:",
        "CELERY_QUEUE": f"hepstore-test-{run_id}",
        # A killed worker's chunk comes back after this; chunks here take a few seconds.
        "CELERY_VISIBILITY_TIMEOUT": "20",
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    manage(env, "migrate", "-v0")
    # The fitter's compiled kernel loaded (compiled, where its on-disk cache is cold) once here:
    # otherwise every worker's first chunk compiles it, tens of seconds on a loaded machine,
    # longer than the visibility timeout, and the chunk is delivered again to the other worker.
    subprocess.run(
        [sys.executable, "-c", "from reinterpret.fitter import kernel; kernel.warm_up()"],
        cwd=ROOT, env=env, check=True, timeout=600,
    )  # fmt: skip
    state = {"env": env, "db": db, "workers": [], "run_id": run_id}
    try:
        yield state
    finally:
        for proc, _ in state["workers"]:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc, _ in state["workers"]:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        db.drop()
        for key in client.scan_iter(match=f"hepstore-test-{run_id}:*"):
            client.delete(key)


def manage(env, *args, timeout=600):
    return subprocess.run(
        [sys.executable, "manage.py", *map(str, args)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=timeout,
    )


def start_workers(portal, *names: str) -> list[str]:
    """Start one Celery worker (one pool process, prefetch 1) per name; wait until ready."""
    hostnames = []
    for name in names:
        hostname = f"{name}-{portal['run_id']}@localhost"
        log_path = Path(portal["env"]["HEPSTORE_DATA_DIR"]) / f"{name}.log"
        with open(log_path, "w") as log:  # the worker keeps its own copy of the descriptor
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "hepstore",
                    "worker",
                    "-n",
                    hostname,
                    "--concurrency",
                    "1",
                    "--prefetch-multiplier",
                    "1",
                    "--without-gossip",
                    "--without-mingle",
                    "--without-heartbeat",
                    "--loglevel",
                    "INFO",
                ],
                cwd=ROOT,
                env=portal["env"],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: a kill takes its pool too
            )
        portal["workers"].append((proc, log_path))
        hostnames.append(hostname)
    deadline = time.monotonic() + 120
    for proc, log in portal["workers"]:
        while "ready." not in log.read_text():
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "a Celery worker did not start"
            time.sleep(0.2)
    return hostnames


def submit_scan(env, likelihood: int, body: dict) -> tuple[int, str]:
    """The new (anonymous) job's id and the token that shows it to its owner."""
    out = manage(
        env,
        "shell",
        "-c",
        "from rest_framework.test import APIClient;"
        f"r = APIClient().post('/api/v1/likelihoods/{likelihood}/scan', {body!r}, format='json');"
        "print(r.json()['id'], r.json()['token'])",
    )
    job_id, token = out.stdout.strip().splitlines()[-1].split()
    return int(job_id), token


def job_detail(env, job: tuple[int, str]) -> dict:
    job_id, token = job
    out = manage(
        env,
        "shell",
        "-c",
        "import json; from rest_framework.test import APIClient;"
        f"r = APIClient().get('/api/v1/jobs/{job_id}', HTTP_X_JOB_TOKEN={token!r});"
        "print(json.dumps(r.json()))",
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def wait_finished(db: Database, job_id: int, timeout: float = 600) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        (state,) = db.rows("SELECT state FROM reinterpret_job WHERE id = ?", job_id)[0]
        if state in ("succeeded", "failed", "cancelled"):
            return state
        time.sleep(0.2)
    pytest.fail(f"job {job_id} did not finish: {db.rows('SELECT * FROM reinterpret_job')}")


def stored_points(db: Database, job_id: int) -> list[tuple[str, str]]:
    return db.rows("SELECT name, worker FROM reinterpret_scanpointresult WHERE job_id = ?", job_id)


def test_a_whole_grid_scan_uses_both_workers_and_matches_the_database_queue(portal):
    env, db = portal["env"], portal["db"]
    env["REINTERPRET_SCAN_CHUNK"] = "2"
    manage(env, "examples")
    workers = start_workers(portal, "w1", "w2")
    job = submit_scan(env, 1, {})
    job_id = job[0]
    assert wait_finished(db, job_id) == "succeeded"
    detail = job_detail(env, job)
    assert detail["workers"] == sorted(workers)
    points = stored_points(db, job_id)
    total = detail["progress"]["total"]
    assert total == 18 and detail["progress"]["done"] == 18
    assert len(points) == len({name for name, _ in points}) == 18

    # The same scan on the database queue (no Redis) gives the same numbers.
    local = {k: v for k, v in env.items() if k != "REDIS_URL"}
    reference_job = submit_scan(local, 1, {})
    manage(local, "worker", "--once")
    reference = job_detail(local, reference_job)
    assert reference["state"] == "succeeded"
    ours, theirs = detail["result"], reference["result"]
    assert [p["patch"] for p in ours["points"]] == [p["patch"] for p in theirs["points"]]
    for a, b in zip(ours["points"], theirs["points"], strict=True):
        assert a["cls_obs"] == pytest.approx(b["cls_obs"], rel=1e-9, abs=1e-12)
        assert a["cls_exp"] == pytest.approx(b["cls_exp"], rel=1e-9, abs=1e-12)
        assert a["mu_hat"] == pytest.approx(b["mu_hat"], rel=1e-9, abs=1e-12)
    assert ours["contour"] == theirs["contour"]
    # The example's search indexing after its ingestion went through the queue as well.
    (indexed,) = db.rows("SELECT COUNT(*) FROM hepstore_searchdocument")[0]
    assert indexed == 1


def test_a_worker_killed_mid_scan_loses_and_duplicates_no_point(portal):
    folder = require_shared("1lbb")
    env, db = portal["env"], portal["db"]
    env["REINTERPRET_SCAN_CHUNK"] = "3"
    manage(
        env,
        "ingest",
        folder / "BkgOnly.json",
        folder / "patchset.json",
        "--title",
        "1Lbb",
        "--collaboration",
        "ATLAS",
    )
    names = [n for (n,) in db.rows('SELECT name FROM hepstore_signalpoint ORDER BY "index"')]
    chosen = names[:30]  # ten chunks
    victim, survivor = start_workers(portal, "victim", "survivor")
    victim_log = portal["workers"][0][1]
    job = submit_scan(env, 1, {"points": chosen})
    job_id = job[0]
    # Killed mid-chunk: after it has stored a chunk, while it holds a chunk it has received
    # (logged once the broker records the message as unacknowledged) and not stored. Redis's
    # transport has a window between popping a message and recording it; a kill there loses
    # that message, which is not what this test is about.
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        received = sum(
            "Task reinterpret.scan_chunk[" in line and line.rstrip().endswith("received")
            for line in victim_log.read_text().splitlines()
        )
        points = stored_points(db, job_id)  # read after the log: a chunk stored since shows
        by_victim = sum(w == victim for _, w in points)
        if by_victim > 0 and received > by_victim // 3 and len(points) <= len(chosen) - 6:
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"the victim never held a chunk part-way: {stored_points(db, job_id)}")
    proc, _ = portal["workers"][0]
    os.killpg(proc.pid, signal.SIGKILL)  # the worker and its pool process, mid-chunk
    proc.wait()
    done_at_kill = len(stored_points(db, job_id))
    assert done_at_kill < len(chosen)

    assert wait_finished(db, job_id) == "succeeded"
    points = stored_points(db, job_id)
    assert sorted(n for n, _ in points) == sorted(chosen)  # every point exactly once
    detail = job_detail(env, job)
    assert detail["progress"] == {"done": 30, "total": 30}
    assert [p["patch"] for p in detail["result"]["points"]] == chosen
    assert detail["workers"] == sorted([victim, survivor])


def test_a_chunk_lost_from_the_queue_is_sent_again_when_the_stalled_scan_is_looked_at(portal):
    env, db = portal["env"], portal["db"]
    env["REINTERPRET_SCAN_CHUNK"] = "2"
    manage(env, "examples")
    job = submit_scan(env, 1, {})  # no worker yet: the chunks wait on the queue
    job_id = job[0]
    queue = f"{env['CELERY_KEY_PREFIX']}{env['CELERY_QUEUE']}"
    client = redis_client()
    lost = json.loads(client.lpop(queue))  # the last message sent: a chunk of two points
    assert lost["headers"]["task"] == "reinterpret.scan_chunk"
    start_workers(portal, "w1")
    deadline = time.monotonic() + 300
    while len(stored_points(db, job_id)) < 16:
        assert time.monotonic() < deadline, stored_points(db, job_id)
        time.sleep(0.2)
    assert db.rows("SELECT state FROM reinterpret_job WHERE id = ?", job_id)[0][0] == "running"

    # Once it has stored nothing for 20 s (visibility) + 3 sweeps of 2 s, a look at it sends
    # the lost chunk again, and the scan completes.
    detail = job_detail(env, job)
    assert detail["state"] == "running" and detail["progress"]["done"] == 16
    deadline = time.monotonic() + 300
    while detail["state"] == "running":
        assert time.monotonic() < deadline, detail
        time.sleep(2)
        detail = job_detail(env, job)
    assert detail["state"] == "succeeded"
    points = stored_points(db, job_id)
    assert len(points) == len({name for name, _ in points}) == 18
    assert detail["progress"] == {"done": 18, "total": 18}
    log = Path(env["HEPSTORE_DATA_DIR"]) / "w1.log"
    assert log.read_text().count("Task reinterpret.scan_chunk[") >= 2 * 9  # received, done


def _messages_of(client, queue: str, job_id: int) -> list[bytes]:
    out = []
    for raw in client.lrange(queue, 0, -1):
        headers = json.loads(raw)["headers"]
        if headers["task"] == "reinterpret.scan_chunk" and headers["argsrepr"].startswith(
            f"({job_id},"
        ):
            out.append(raw)
    return out


def test_a_queued_job_whose_messages_are_gone_is_sent_again_when_looked_at(portal):
    env, db = portal["env"], portal["db"]
    env["REINTERPRET_SCAN_CHUNK"] = "2"
    manage(env, "examples")
    kept, lost = submit_scan(env, 1, {}), submit_scan(env, 1, {})  # no worker yet
    queue = f"{env['CELERY_KEY_PREFIX']}{env['CELERY_QUEUE']}"
    client = redis_client()
    assert len(_messages_of(client, queue, kept[0])) == 9
    for raw in _messages_of(client, queue, lost[0]):  # as a Redis restart would lose them
        client.lrem(queue, 1, raw)
    assert _messages_of(client, queue, lost[0]) == []
    # Looked at once queued for longer than the stall limit (20 s + 3 sweeps of 2 s): the job
    # without messages is sent again, the one whose messages wait is not.
    time.sleep(27)
    for job in (kept, lost):
        assert job_detail(env, job)["state"] == "queued"
    assert len(_messages_of(client, queue, kept[0])) == 9
    assert len(_messages_of(client, queue, lost[0])) == 9
    job_detail(env, lost)  # checked once per stall limit: nothing sent twice
    assert len(_messages_of(client, queue, lost[0])) == 9

    start_workers(portal, "w1")
    for job in (kept, lost):
        assert wait_finished(db, job[0]) == "succeeded"
        points = stored_points(db, job[0])
        assert len(points) == len({name for name, _ in points}) == 18
