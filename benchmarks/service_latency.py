"""Latency of the reinterpretation service against a running server on loopback.

Starts `manage.py serve` (embedded worker) on a scratch data directory, ingests the largest
real likelihood of ../shared/likelihoods, then measures with plain HTTP requests:
  - a point result on first request (computed) and then from the cache (median of 20),
  - a synchronous custom-signal fit (median of 5, each with different yields),
  - a full scan of every signal point through the job API (submit -> succeeded).

    python benchmarks/service_latency.py [--port 8765]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

from _common import ROOT, SHARED


def request(method: str, url: str, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    t0 = time.perf_counter()
    with urllib.request.urlopen(req, timeout=600) as response:
        payload = json.loads(response.read())
    return time.perf_counter() - t0, payload


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    folders = [p for p in SHARED.iterdir() if (p / "BkgOnly.json").exists()]
    largest = max(folders, key=lambda p: sum(f.stat().st_size for f in p.glob("*.json")))
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "HEPSTORE_DATA_DIR": tmp}
        manage = [sys.executable, "manage.py"]
        subprocess.run([*manage, "migrate", "-v0"], cwd=ROOT, env=env, check=True)
        subprocess.run(
            [
                *manage,
                "ingest",
                str(largest / "BkgOnly.json"),
                str(largest / "patchset.json"),
                "--title",
                largest.name,
                "--collaboration",
                "ATLAS",
            ],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
        )
        server = subprocess.Popen(
            [*manage, "serve", f"127.0.0.1:{args.port}"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{args.port}/api/v1"
        try:
            for _ in range(100):
                try:
                    request("GET", f"{base}/likelihoods/1/")
                    break
                except OSError:
                    time.sleep(0.2)
            _, lh = request("GET", f"{base}/likelihoods/1/")
            _, signals = request("GET", f"{base}/likelihoods/1/signals/")
            name = signals["results"][0]["name"]
            first, _ = request("GET", f"{base}/likelihoods/1/signals/{name}/result")
            cached = [
                request("GET", f"{base}/likelihoods/1/signals/{name}/result")[0] for _ in range(20)
            ]
            channel = next(iter(lh["summary"]["channel_bins"]))
            nbins = lh["summary"]["channel_bins"][channel]
            custom = []
            for i in range(5):
                body = {"signal": {channel: [1.0 + i + 0.5 * b for b in range(nbins)]}}
                seconds, payload = request("POST", f"{base}/likelihoods/1/reinterpret", body)
                assert "cls_obs" in payload, payload
                custom.append(seconds)
            t0 = time.perf_counter()
            _, job = request("POST", f"{base}/likelihoods/1/scan", {})
            while job["state"] not in ("succeeded", "failed", "cancelled"):
                time.sleep(0.2)
                _, job = request("GET", f"{base}/jobs/{job['id']}")
            scan_seconds = time.perf_counter() - t0
        finally:
            server.terminate()
            server.wait()
    n = job["progress"]["total"]
    print(
        f"likelihood: {largest.name} ({n} signal points, {lh['summary']['parameters']} "
        f"parameters, {lh['summary']['bins']} bins)"
    )
    print(f"point result, first request (computed, with upper limits): {first * 1000:.0f} ms")
    print(
        f"point result, cached: median {statistics.median(cached) * 1000:.1f} ms, "
        f"max {max(cached) * 1000:.1f} ms (20 requests)"
    )
    print(
        f"custom signal, synchronous fit: median {statistics.median(custom) * 1000:.0f} ms "
        f"(5 requests)"
    )
    print(
        f"full scan through the job API: {scan_seconds:.1f} s for {n} points, state "
        f"{job['state']}, contour curves: "
        f"{ {k: len(v) for k, v in job['result']['contour']['curves'].items()} }"
    )


if __name__ == "__main__":
    main()
