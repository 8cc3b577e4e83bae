"""A scan over a real patchset whose worker is first stopped (SIGTERM) and then killed
(SIGKILL) mid-scan: the stopped worker exits cleanly and re-queues the job at once, the killed
one's job is re-queued when its heartbeat goes stale, and the job finishes with every point
exactly once. Real processes, a real SQLite file."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.shared_data import require_shared

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [
    pytest.mark.slow,
    # It reads the embedded SQLite file directly while the worker runs in another process.
    pytest.mark.skipif(bool(os.environ.get("DATABASE_URL")), reason="needs the SQLite default"),
]


def run(env, *args, **kw):
    return subprocess.run(
        [sys.executable, "manage.py", *map(str, args)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        **kw,
    )


def job_row(db: Path, job_id: int):
    with sqlite3.connect(db, timeout=30) as conn:
        return conn.execute(
            "SELECT state, progress_done, progress_total, attempts "
            "FROM reinterpret_job WHERE id = ?",
            (job_id,),
        ).fetchone()


def start_worker(env) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "manage.py", "worker"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wait_part_way(db: Path, job_id: int, at_least: int) -> None:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        state, done, total, _ = job_row(db, job_id)
        if state == "running" and at_least <= done < total - 16:
            return
        time.sleep(0.05)
    pytest.fail(f"the scan never got part-way: {job_row(db, job_id)}")


def test_stopped_and_killed_workers_mid_scan_lose_and_duplicate_no_point(tmp_path):
    folder = require_shared("1lbb")
    env = {
        **os.environ,
        "HEPSTORE_DATA_DIR": str(tmp_path),
        "REINTERPRET_SCAN_CHUNK": "8",
        "REINTERPRET_STALE_SECONDS": "2",
    }
    db = tmp_path / "hepstore.sqlite3"
    run(env, "migrate", "-v0")
    run(
        env,
        "ingest",
        folder / "BkgOnly.json",
        folder / "patchset.json",
        "--title",
        "1Lbb",
        "--collaboration",
        "ATLAS",
    )
    # 64 of the 125 points (eight chunks) keep the test short; the whole grid adds nothing.
    with sqlite3.connect(db) as conn:
        chosen = [
            r[0]
            for r in conn.execute('SELECT name FROM hepstore_signalpoint ORDER BY "index" LIMIT 64')
        ]
    body = {"points": chosen}
    created = run(
        env,
        "shell",
        "-c",
        (
            "from rest_framework.test import APIClient;"
            f"r = APIClient().post('/api/v1/likelihoods/1/scan', {body!r}, format='json');"
            "print(r.json()['id'])"
        ),
    )
    job_id = int(created.stdout.strip().splitlines()[-1])

    # A worker told to stop (SIGTERM) mid-scan exits cleanly and puts the job back at once.
    first = start_worker(env)
    try:
        wait_part_way(db, job_id, at_least=8)
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=60) == 0
    finally:
        if first.poll() is None:
            first.kill()
    state, done_at_stop, total, _ = job_row(db, job_id)
    assert state == "queued" and done_at_stop < total  # not after the stale timeout

    # A worker killed mid-scan: its job is re-queued once its heartbeat is stale.
    second = start_worker(env)
    try:
        wait_part_way(db, job_id, at_least=done_at_stop + 8)
        os.kill(second.pid, signal.SIGKILL)
        second.wait()
    finally:
        if second.poll() is None:
            second.kill()
    state, done_at_kill, total, _ = job_row(db, job_id)
    assert state == "running" and done_at_kill < total

    time.sleep(2.5)  # its heartbeat goes stale
    run(env, "worker", "--once", timeout=600)
    # What matters: finished, every point exactly once. (Not the number of attempts: on a
    # loaded machine a slow heartbeat can legitimately make the job be claimed once more.)
    state, done, total, _ = job_row(db, job_id)
    assert (state, done, total) == ("succeeded", 64, 64)
    with sqlite3.connect(db) as conn:
        names = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM reinterpret_scanpointresult WHERE job_id = ?", (job_id,)
            )
        ]
        result = json.loads(
            conn.execute("SELECT result FROM reinterpret_job WHERE id = ?", (job_id,)).fetchone()[0]
        )
    assert sorted(names) == sorted(chosen)  # every point exactly once
    assert [p["patch"] for p in result["points"]] == chosen
    assert result["contour"]["curves"]["observed"]
