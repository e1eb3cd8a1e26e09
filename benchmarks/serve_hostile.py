"""`ossy serve` under hostile input, measured from outside: how long big or malicious requests
take to be answered, how much they hold up a small request sent meanwhile (GET /api/version),
what they cost in server memory, and whether the engine still generates afterwards.

The server is the real command (`python -m ossy serve`) in a subprocess with a fresh OSSY_HOME
and the bundled nano model. `--baseline DIR` runs a second ossy source tree (for example a
`git worktree` of an older commit) the same way, alternating with this one, so the two are
compared on the same machine in the same run. For each attack: its status and time to the
answer; the worst /api/version latency while it ran (polled every 20 ms from another thread);
the server's peak RSS (VmHWM) after it. Then the inputs that once ended the engine thread
(keep_alive "100000000h", 1e10, "inf"), each followed by a real generation.

Reproduce (about two minutes on 2 cores; the baseline needs its own worktree):
    .venv/bin/python benchmarks/serve_hostile.py
    git worktree add /tmp/ossy-before 244cf99
    .venv/bin/python benchmarks/serve_hostile.py --baseline /tmp/ossy-before --rounds 2
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
HI = [{"role": "user", "content": "Hi"}]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def server(source: Path):
    """`python -m ossy serve` from `source` (a checkout), a fresh home, nano created."""
    with tempfile.TemporaryDirectory(prefix="ossy-hostile-") as home:
        port = free_port()
        env = {**os.environ, "OSSY_HOME": home, "OSSY_HOST": f"127.0.0.1:{port}", "PYTHONPATH": str(source)}
        env.pop("OSSY_MODELS", None)
        subprocess.run([sys.executable, "-m", "ossy", "list"], env=env, cwd=source, check=True, capture_output=True)
        proc = subprocess.Popen([sys.executable, "-m", "ossy", "serve"], env=env, cwd=source,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                with contextlib.suppress(httpx.TransportError):
                    if httpx.get(url + "/api/version", timeout=1).status_code == 200:
                        break
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"ossy serve from {source} did not start")
                time.sleep(0.1)
            generate(url)  # load nano
            yield url, proc
        finally:
            proc.kill()
            proc.wait()


def rss_peak(proc) -> float:
    """GB: the server's peak resident memory so far."""
    for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1e6
    return float("nan")


def generate(url: str) -> str:
    try:
        r = httpx.post(url + "/api/generate", timeout=30, json={
            "model": "nano", "prompt": "Hi", "stream": False, "options": {"num_predict": 4}})
    except httpx.TimeoutException:
        return "no answer in 30 s"
    return f"{r.status_code} ({r.json().get('eval_count', '-')} tokens)" if r.status_code == 200 else str(r.status_code)


def attack(url: str, proc, name: str, body: bytes) -> dict:
    """Send `body` to /api/chat; meanwhile poll /api/version; what happened."""
    latencies: list[float] = []
    done = threading.Event()

    def poll():
        with httpx.Client(timeout=300) as client:
            while not done.is_set():
                start = time.perf_counter()
                with contextlib.suppress(httpx.HTTPError):  # a timeout is a latency too
                    client.get(url + "/api/version")
                latencies.append(time.perf_counter() - start)
                time.sleep(0.02)

    poller = threading.Thread(target=poll)
    poller.start()
    start = time.perf_counter()
    try:
        r = httpx.post(url + "/api/chat", content=body, headers={"Content-Type": "application/json"}, timeout=300)
        status = str(r.status_code)
    except httpx.HTTPError as e:
        status = type(e).__name__
    took = time.perf_counter() - start
    done.set()
    poller.join()
    return {"attack": name, "status": status, "answer_s": took, "version_worst_s": max(latencies, default=0.0),
            "rss_peak_gb": rss_peak(proc)}


def bodies() -> list[tuple[str, bytes]]:
    big = "word " * (10 << 20)  # 50 MB of text in one message
    mid = "word " * (3 << 20)  # 15 MB: under ossy's 16 MiB limit
    many = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"message {i} " * 10} for i in range(90_001)]
    return [
        ("50 MB message", json.dumps({"model": "nano", "messages": [{"role": "user", "content": big}]}).encode()),
        ("15 MB message", json.dumps({"model": "nano", "messages": [{"role": "user", "content": mid}]}).encode()),
        ("90k messages", json.dumps({"model": "nano", "messages": many, "stream": False,
                                     "options": {"num_predict": 1}}).encode()),
    ]


def engine_death(url: str) -> list[dict]:
    rows = []
    for value in ("100000000h", 1e10, "inf"):
        try:
            status = httpx.post(url + "/api/chat", timeout=30, json={
                "model": "nano", "messages": HI, "stream": False, "keep_alive": value,
                "options": {"num_predict": 2}}).status_code
        except httpx.TimeoutException:
            status = "no answer in 30 s"
        rows.append({"keep_alive": value, "status": status, "then_generate": generate(url)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", type=Path, help="another ossy checkout to run the same way")
    parser.add_argument("--rounds", type=int, default=1, help="alternating rounds (best and median reported)")
    args = parser.parse_args()
    sources = [("ossy", ROOT)] + ([("baseline", args.baseline.resolve())] if args.baseline else [])
    results: dict = {}
    for _ in range(args.rounds):
        for label, source in sources:
            with server(source) as (url, proc):
                idle = statistics.median(_timed(url) for _ in range(20))
                rows = [attack(url, proc, name, body) for name, body in bodies()]
                after = generate(url)
                death = engine_death(url)
            results.setdefault(label, []).append((idle, rows, after, death))
    for label, runs in results.items():
        print(f"\n{label}: /api/version idle median {statistics.median(r[0] for r in runs) * 1000:.1f} ms")
        for i, name in enumerate(n for n, _ in bodies()):
            cells = [run[1][i] for run in runs]
            answer = sorted(c["answer_s"] for c in cells)
            worst = sorted(c["version_worst_s"] for c in cells)
            print(f"  {name:14s} status {cells[0]['status']:>16s}  answer best {answer[0]:6.2f} s "
                  f"median {statistics.median(answer):6.2f} s  /api/version worst best {worst[0]:6.2f} s "
                  f"median {statistics.median(worst):6.2f} s  peak RSS {max(c['rss_peak_gb'] for c in cells):.2f} GB")
        print(f"  a generation after all of it: {runs[-1][2]}")
        for row in runs[-1][3]:
            print(f"  keep_alive {row['keep_alive']!r:14s} -> {row['status']}, then a generation: {row['then_generate']}")


def _timed(url: str) -> float:
    start = time.perf_counter()
    httpx.get(url + "/api/version", timeout=10)
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
