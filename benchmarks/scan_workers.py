"""A whole real grid scanned through Celery with 1 and then 2 worker processes, in one run.

Each worker is its own `celery -A hepstore worker --concurrency 1 --prefetch-multiplier 1`
process (as the README recommends per core) on a real Redis, with a scratch data directory
and SQLite database (or --database-url). For each worker count it submits a scan of every
point, waits for it, and reads the workers' JSON logs for the time each chunk spent
evaluating. It prints wall time, speed-up, the per-chunk overhead (worker time per chunk that
is not evaluation: broker round trip, reading patches, storing results, idle at the end) and,
from those, what N workers would take for a 10,000-point grid of the same model.

    python benchmarks/scan_workers.py [--analysis sbottom] [--chunk 16] [--workers 1 2]
                                      [--redis redis://127.0.0.1:6379/0]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from _common import ROOT, SHARED, single_threaded


def start_workers(env: dict, count: int, tag: str, logs: Path) -> list[tuple]:
    workers = []
    for i in range(count):
        log_path = logs / f"{tag}-{i}.log"
        with open(log_path, "w") as log:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "hepstore",
                    "worker",
                    "-n",
                    f"{tag}-{i}@%h",
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
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        workers.append((proc, log_path))
    for proc, log_path in workers:
        while "ready." not in log_path.read_text():
            if proc.poll() is not None:
                sys.exit(f"a worker did not start:\n{log_path.read_text()}")
            time.sleep(0.1)
    return workers


def stop_workers(workers: list[tuple]) -> None:
    for proc, _ in workers:
        os.killpg(proc.pid, signal.SIGTERM)
    for proc, _ in workers:
        proc.wait(timeout=60)


def chunk_times(workers: list[tuple], job_id: int) -> list[tuple[float, float]]:
    """(evaluation seconds, whole chunk task seconds) per chunk of the job, from the logs."""
    out = []
    for _, log_path in workers:
        for line in log_path.read_text().splitlines():
            if not line.startswith("{"):
                continue
            record = json.loads(line)
            message = record.get("message", "")
            if record.get("job") == str(job_id) and "evaluated in" in message:
                evaluated = float(message.split("evaluated in ")[1].split(" s")[0])
                whole = float(message.split("chunk ")[-1].split(" s")[0])
                out.append((evaluated, whole))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--analysis", default="sbottom")
    parser.add_argument("--chunk", type=int, default=16, help="REINTERPRET_SCAN_CHUNK")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--redis", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--database-url", default="", help="default: SQLite in a scratch dir")
    parser.add_argument("--grid", type=int, default=10_000, help="points of the projected grid")
    args = parser.parse_args()
    single_threaded()
    folder = SHARED / args.analysis
    if not (folder / "BkgOnly.json").exists():
        sys.exit(f"{folder} not found (../shared/likelihoods is needed)")

    tmp = Path(tempfile.mkdtemp(prefix="scan-workers-"))
    run_id = uuid.uuid4().hex[:10]
    env = {
        **os.environ,
        "HEPSTORE_DATA_DIR": str(tmp),
        "REDIS_URL": args.redis,
        "CELERY_KEY_PREFIX": f"bench-{run_id}:",
        "CELERY_QUEUE": f"bench-{run_id}",
        "REINTERPRET_SCAN_CHUNK": str(args.chunk),
        "LOG_FORMAT": "json",
        "DEBUG": "false",
    }
    env.pop("DATABASE_URL", None)
    if args.database_url:
        env["DATABASE_URL"] = args.database_url
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    subprocess.run(
        [
            *manage,
            "ingest",
            str(folder / "BkgOnly.json"),
            str(folder / "patchset.json"),
            "--title",
            args.analysis,
            "--collaboration",
            "ATLAS",
        ],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    os.environ.update(env)
    os.environ["DJANGO_SETTINGS_MODULE"] = "hepstore.settings"
    import django

    django.setup()
    from hepstore.models import Likelihood
    from reinterpret import jobs
    from reinterpret.models import Job, JobKind

    likelihood = Likelihood.objects.get()
    points = likelihood.signals.count()
    print(
        f"{args.analysis}: {points} points, chunks of <= {args.chunk}, Redis {args.redis}, "
        f"database {env.get('DATABASE_URL', 'SQLite')}, {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.2f} at start"
    )
    rows = []
    tables = {}
    for count in args.workers:
        workers = start_workers(env, count, f"w{count}-{run_id}", tmp)
        try:
            t0 = time.perf_counter()
            job = jobs.submit(likelihood, JobKind.SCAN, {})
            while True:
                job.refresh_from_db()
                if job.is_terminal:
                    break
                time.sleep(0.05)
            wall = time.perf_counter() - t0
        finally:
            stop_workers(workers)
        if job.state != "succeeded":
            sys.exit(f"the scan with {count} worker(s) ended {job.state}: {job.error}")
        times = chunk_times(workers, job.pk)
        evaluating = sum(e for e, _ in times)
        in_task = sum(w for _, w in times)
        overhead = (count * wall - evaluating) / len(times)
        rows.append(
            (
                count,
                wall,
                len(times),
                evaluating,
                in_task,
                overhead,
                jobs.workers_of(Job.objects.get(pk=job.pk)),
            )
        )
        tables[count] = job.result["points"]

    base = rows[0][1]
    print(
        f"\n{'workers':>7} {'wall s':>8} {'speed-up':>8} {'chunks':>6} {'eval s':>8} "
        f"{'task s':>8} {'overhead/chunk s':>16}  workers that ran chunks"
    )
    for count, wall, chunks, evaluating, in_task, overhead, names in rows:
        print(
            f"{count:>7} {wall:8.2f} {base / wall:8.2f} {chunks:>6} {evaluating:8.2f} "
            f"{in_task:8.2f} {overhead:16.3f}  {len(names)}"
        )
    first = next(iter(tables.values()))
    for count, table in tables.items():
        worst = max(abs(a["cls_obs"] - b["cls_obs"]) for a, b in zip(first, table, strict=True))
        print(f"max |CLs_obs difference| {args.workers[0]} vs {count} worker(s): {worst:.2e}")

    # Projection: a grid of the same model, chunks of the same size, one core per worker.
    count, wall, chunks, evaluating, in_task, overhead, _ = rows[0]
    per_point = evaluating / points
    per_chunk = args.chunk * per_point + overhead
    total_chunks = math.ceil(args.grid / args.chunk)
    print(
        f"\nprojection for {args.grid} points ({total_chunks} chunks of {args.chunk}): "
        f"{per_point * 1000:.1f} ms evaluation per point and {overhead:.3f} s overhead per "
        f"chunk, measured with {count} worker(s)"
    )
    print(f"{'N workers':>9} {'minutes':>8} {'speed-up':>8}")
    serial = total_chunks * per_chunk
    for n in (1, 2, 4, 8, 16, 32, 64, 128):
        t = math.ceil(total_chunks / n) * per_chunk
        print(f"{n:>9} {t / 60:8.1f} {serial / t:8.1f}")
    print(
        "(assumes a core per worker and a database that keeps up; the assemble step and "
        "the submission are not included)"
    )


if __name__ == "__main__":
    main()
