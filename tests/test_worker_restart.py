"""A scan over the largest real patchset, with the worker killed mid-scan and restarted: the
job finishes with every point exactly once. Real processes, a real SQLite file."""

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


def test_killed_worker_mid_scan_is_resumed_without_lost_or_duplicated_points(tmp_path):
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
    created = run(
        env,
        "shell",
        "-c",
        (
            "from rest_framework.test import APIClient;"
            "r = APIClient().post('/api/v1/likelihoods/1/scan', {}, format='json');"
            "print(r.json()['id'])"
        ),
    )
    job_id = int(created.stdout.strip().splitlines()[-1])

    worker = subprocess.Popen(
        [sys.executable, "manage.py", "worker"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            state, done, total, _ = job_row(db, job_id)
            if state == "running" and 8 <= done < total - 16:
                break
            time.sleep(0.05)
        else:
            pytest.fail(f"the scan never got part-way: {job_row(db, job_id)}")
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait()
    finally:
        if worker.poll() is None:
            worker.kill()
    state, done_at_kill, total, _ = job_row(db, job_id)
    assert state == "running" and done_at_kill < total

    time.sleep(2.5)  # its heartbeat goes stale
    run(env, "worker", "--once", timeout=600)
    # What matters: finished, every point exactly once. (Not the number of attempts: on a
    # loaded machine a slow heartbeat can legitimately make the job be claimed once more.)
    state, done, total, _ = job_row(db, job_id)
    assert (state, done, total) == ("succeeded", 125, 125)
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
    assert len(names) == len(set(names)) == 125
    assert len(result["points"]) == 125
    assert result["contour"]["curves"]["observed"]
