"""Load test of `phitune serve` on loopback: requests/s and p50/p99 latency at 1, 8 and 64 concurrent clients.

Starts `phitune serve` on 127.0.0.1 (a free port) over an fp32 ONNX export of the built-in tiny Phi-3,
then for each concurrency level runs that many clients, each a keep-alive HTTP connection sending the
same greedy chat completion (16 tokens) back to back, until --requests have completed or --seconds
have passed. Every answer is counted by status; latency is from sending to the last byte.

    .venv/bin/python benchmarks/serve_load.py                 # writes benchmarks/results/serve_load.json
    .venv/bin/python benchmarks/serve_load.py --url http://127.0.0.1:8000   # a server already running

Bounded by design: loopback only, at most --requests per level and --seconds per level.
Not a test: nothing is asserted. Timings depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

LEVELS = (1, 8, 64)
# The http.server implementation this replaced, as measured when the problem was reported.
OLD_HTTP_SERVER = {"1": {"requests_per_s": 59, "p50_ms": 15}, "50": {"p99_ms": "4000-8000"}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=None, help="benchmark a server already running on loopback (default: start one)")
    parser.add_argument("--requests", type=int, default=400, help="requests per concurrency level at most (default 400)")
    parser.add_argument("--seconds", type=float, default=30.0, help="seconds per concurrency level at most (default 30)")
    parser.add_argument("--max-tokens", type=int, default=16, help="tokens per completion (default 16)")
    parser.add_argument("--export-dir", default=None, help="serve this ONNX export (default: export the tiny model)")
    parser.add_argument("--out", default="benchmarks/results/serve_load.json", help="where to write the JSON results")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    server = None
    url = args.url
    if url is None:
        server, url = start_server(Path(tempfile.mkdtemp(prefix="phitune-serve-load-")), args.export_dir)
    host, port = urlsplit(url).hostname, urlsplit(url).port
    if host not in ("127.0.0.1", "localhost", "::1"):
        parser.error("--url must be on loopback: this benchmark never loads another machine")
    body = json.dumps({"messages": [{"role": "user", "content": "Describe the sea."}], "max_tokens": args.max_tokens,
                       "temperature": 0}).encode()
    try:
        run_level(host, port, body, clients=1, max_requests=5, seconds=30)  # warm-up, not reported
        results = {"machine": _machine(), "server": "started here" if server else url, "max_tokens": args.max_tokens,
                   "requests_per_level": args.requests, "seconds_per_level": args.seconds, "levels": {},
                   "old_http_server_reported": OLD_HTTP_SERVER}
        for clients in LEVELS:
            print(f"== {clients} concurrent clients", flush=True)
            results["levels"][str(clients)] = run_level(host, port, body, clients, args.requests, args.seconds)
    finally:
        if server is not None:
            stop_server(server)
    print_table(results)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


def start_server(work: Path, export: str | None) -> tuple[subprocess.Popen, str]:
    if export is None:
        from phitune.export.onnx_export import export_onnx
        from phitune.models.tiny import builtin_model_path

        export, _ = export_onnx(builtin_model_path("builtin:tiny-phi3"), "fp32", work / "tiny-onnx", progress=False)
    log = open(work / "serve.log", "w")  # the access log: one line per request
    proc = subprocess.Popen([sys.executable, "-m", "phitune.cli", "serve", str(export), "--host", "127.0.0.1",
                             "--port", "0", "--threads", "1", "--queue", "256"],
                            stdout=subprocess.PIPE, stderr=log, text=True)
    proc.log_path = log.name
    line = proc.stdout.readline()
    if "http://" not in line:
        proc.kill()
        raise SystemExit(f"phitune serve did not start: {line!r}")
    threading.Thread(target=proc.stdout.read, daemon=True).start()  # a full pipe must never stall the server
    return proc, line.split("on ", 1)[1].split("/v1", 1)[0]


def stop_server(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGINT)  # Ctrl-C: graceful
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        tail = Path(proc.log_path).read_text()[-2000:]
        print(f"phitune serve did not stop within 30 s of Ctrl-C; killed. Its log ends:\n{tail}", file=sys.stderr)


def run_level(host: str, port: int, body: bytes, clients: int, max_requests: int, seconds: float) -> dict:
    latencies: list[float] = []
    statuses: Counter = Counter()
    lock = threading.Lock()
    issued = [0]
    deadline = time.monotonic() + seconds

    def client() -> None:
        conn = None
        while True:
            with lock:
                if issued[0] >= max_requests or time.monotonic() >= deadline:
                    break
                issued[0] += 1
            start = time.perf_counter()
            try:
                conn = conn or http.client.HTTPConnection(host, port, timeout=60)
                conn.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
                response = conn.getresponse()
                response.read()
                status = response.status
                if response.will_close:
                    conn.close()
                    conn = None
            except OSError as exc:
                status = type(exc).__name__
                conn = None
            elapsed = time.perf_counter() - start
            with lock:
                statuses[str(status)] += 1
                if status == 200:
                    latencies.append(elapsed)
        if conn is not None:
            conn.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - began
    latencies.sort()
    return {"clients": clients, "completed_ok": len(latencies), "statuses": dict(statuses), "wall_s": round(wall, 2),
            "requests_per_s": round(len(latencies) / wall, 1) if wall else None,
            "p50_ms": _pct(latencies, 50), "p99_ms": _pct(latencies, 99), "max_ms": _pct(latencies, 100)}


def _pct(sorted_values: list[float], pct: float) -> float | None:
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, round(pct / 100 * len(sorted_values)) - 1))
    return round(sorted_values[index] * 1000, 1)


def print_table(results: dict) -> None:
    print(f"\n{'clients':>8} {'ok':>5} {'req/s':>7} {'p50 ms':>8} {'p99 ms':>8}  statuses")
    for level in results["levels"].values():
        print(f"{level['clients']:>8} {level['completed_ok']:>5} {level['requests_per_s']:>7} {level['p50_ms']:>8} "
              f"{level['p99_ms']:>8}  {level['statuses']}")
    print(f"old http.server (reported): {results['old_http_server_reported']}")


def _machine() -> dict:
    return {"python": platform.python_version(), "cpu_count": os.cpu_count(), "platform": platform.platform(),
            "load_avg_at_start": list(os.getloadavg())}


if __name__ == "__main__":
    sys.exit(main())
