"""Peak memory of the server under concurrent decompression bombs sent to POST /api/v1/validate.

Starts `manage.py serve --no-worker` on a free loopback port with a scratch data directory,
builds three ~1 MB .tar.gz files that unpack to ~1,000 MB each, sends them at the same time
as anonymous uploads, and prints each answer and the server's resident memory: before,
peak (VmHWM of the largest of the server's processes: `serve` runs gunicorn, whose
worker child serves the requests) and the sampled timeline's maximum.

    python benchmarks/upload_bombs.py [--mb 1000]

The bombs:
  one-member    BkgOnly.json: 1,000 MB of spaces (the issue's case)
  json-looking  ten r<i>/BkgOnly.json of '{"channels": ' + 100 MB of spaces each: under the
                per-file limit and starting like JSON, so each is read and parsed (the worst
                case the limits allow)
  side-file     a small BkgOnly.json beside a 1,000 MB notes.txt of spaces
"""

from __future__ import annotations

import argparse
import io
import os
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path

import requests
from _common import ROOT


class Filler(io.RawIOBase):
    """size bytes: head, then spaces; generated as read, never held whole."""

    def __init__(self, size: int, head: bytes = b""):
        self.left = size
        self.head = head

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = min(len(buffer), self.left)
        if n <= 0:
            return 0
        chunk = self.head[:n]
        self.head = self.head[n:]
        buffer[:n] = chunk + b" " * (n - len(chunk))
        self.left -= n
        return n


def build(path: Path, members: list[tuple[str, int, bytes]]) -> Path:
    with tarfile.open(path, "w:gz", compresslevel=9) as tf:
        for name, size, head in members:
            info = tarfile.TarInfo(name)
            info.size = size
            tf.addfile(info, io.BufferedReader(Filler(size, head), 1 << 20))
    return path


def bombs(folder: Path, mb: int) -> dict[str, Path]:
    total = mb * 10**6
    small = b'{"channels": [], "observations": [], "measurements": [], "version": "1.0.0"}'
    tenth = total // 10
    head = b'{"channels": '
    return {
        "one-member": build(folder / "one.tar.gz", [("BkgOnly.json", total, b"")]),
        "json-looking": build(
            folder / "looking.tar.gz",
            [(f"r{i}/BkgOnly.json", tenth, head) for i in range(10)],
        ),
        "side-file": build(
            folder / "side.tar.gz",
            [("BkgOnly.json", len(small), small), ("notes.txt", total - len(small), b"")],
        ),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def status_kb(pid: int, key: str) -> int:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:  # the process has ended
        return 0
    for line in text.splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def tree(pid: int) -> list[int]:
    """pid and its descendants (`serve` runs gunicorn: requests are served in a child)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                todo += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
    return out


def tree_kb(pid: int, key: str) -> int:
    """The largest value of key over the server's processes (each is one address space)."""
    return max(status_kb(p, key) for p in tree(pid))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=1000, help="unpacked size of each bomb")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        files = bombs(tmp, args.mb)
        print(f"built {len(files)} bombs in {time.perf_counter() - t0:.1f} s:")
        for name, path in files.items():
            print(f"  {name:13} {path.stat().st_size / 2**20:6.2f} MB -> {args.mb} MB")
        data = tmp / "data"
        env = {**os.environ, "HEPSTORE_DATA_DIR": str(data), "LOG_LEVEL": "WARNING"}
        manage = [sys.executable, "manage.py"]
        subprocess.run([*manage, "migrate", "-v0"], cwd=ROOT, env=env, check=True)
        port = free_port()
        server = subprocess.Popen(
            [*manage, "serve", "--no-worker", f"127.0.0.1:{port}"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            for _ in range(300):
                try:
                    requests.get(f"{base}/api/v1/schema/", timeout=5)
                    break
                except requests.ConnectionError:
                    time.sleep(0.2)
            before = tree_kb(server.pid, "VmRSS") / 1024
            samples: list[float] = []
            done = threading.Event()

            def sample() -> None:
                while not done.is_set():
                    samples.append(tree_kb(server.pid, "VmRSS") / 1024)
                    time.sleep(0.05)

            answers: dict[str, str] = {}

            def send(name: str, path: Path) -> None:
                t = time.perf_counter()
                with open(path, "rb") as fh:
                    r = requests.post(
                        f"{base}/api/v1/validate",
                        files={"file": (path.name, fh, "application/gzip")},
                        timeout=600,
                    )
                body = r.json()
                if "error" in body:
                    what = f"{body['error']['code']}: {body['error']['message']}"
                else:
                    problems = body["problems"]
                    first = problems[0]["message"] if problems else ""
                    what = f"valid={body['valid']}, {len(problems)} problem(s); first: {first}"
                extra = (
                    f" Retry-After={r.headers['Retry-After']}" if "Retry-After" in r.headers else ""
                )
                answers[name] = (
                    f"{r.status_code}{extra} in {time.perf_counter() - t:.1f} s — {what}"
                )

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            threads = [threading.Thread(target=send, args=item) for item in files.items()]
            t0 = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = time.perf_counter() - t0
            done.set()
            sampler.join()
            peak = tree_kb(server.pid, "VmHWM") / 1024
        finally:
            server.terminate()
            server.wait(timeout=30)
        print(f"answers (all three sent at once, {wall:.1f} s wall):")
        for name in files:
            print(f"  {name:13} {answers.get(name, 'no answer')}")
        print(f"server RSS before: {before:.0f} MB")
        print(f"server RSS peak (VmHWM): {peak:.0f} MB; sampled max {max(samples):.0f} MB")
        print("under 1 GB" if peak < 1024 else "OVER 1 GB")


if __name__ == "__main__":
    main()
