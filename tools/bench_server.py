#!/usr/bin/env python3
"""Benchmark the reference server against Python's ThreadingHTTPServer with ab.

    python tools/bench_server.py [--requests N] [--concurrency 16 128] [--repeat K]

Starts, on free loopback ports, the reference server in each of its modes (pool,
spawn) and Python's ``http.server.ThreadingHTTPServer``, all serving one 1 KiB
file, then runs ``ab -n N -c C`` against each, for each concurrency, in the same
run (interleaved, so drift in the machine's load hits every server alike). Prints
requests/s, p99 latency and the ratios to ThreadingHTTPServer, the median of
``--repeat`` runs. ab comes from Debian's apache2-utils.

Every server is stopped at the end, whatever happens; every ab run has a timeout.
Loopback only. The figures are noisy on a shared machine: compare ratios taken in
one run, not absolute numbers across runs.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

SERVER = Path(__file__).resolve().parent.parent / "reference" / "server.py"

# ThreadingHTTPServer as `python -m http.server` runs it, but on port 0 and telling
# us the port, so no port is guessed (3.10 has no --protocol option: set it here).
STDLIB_SERVER = r"""
import functools, sys
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
SimpleHTTPRequestHandler.protocol_version = "HTTP/1.0"
handler = functools.partial(SimpleHTTPRequestHandler, directory=sys.argv[1])
with ThreadingHTTPServer(("127.0.0.1", 0), handler) as httpd:
    print(f"Serving at http://127.0.0.1:{httpd.server_address[1]}/", flush=True)
    httpd.serve_forever()
"""

START_TIMEOUT = 10.0   # seconds for a server to print its address
# ThreadingHTTPServer listens with a backlog of 5: at -c 128 the kernel drops SYNs and
# handshake ACKs, and a few connections then wait for retransmissions for a minute or
# more. So every ab run is cut at --time-limit seconds (ab -t; it reports what completed),
# one request may wait AB_SOCKET_TIMEOUT (ab -s; past it ab gives up the whole run), and
# the ab process itself is killed after AB_TIMEOUT.
AB_SOCKET_TIMEOUT = 60
AB_TIMEOUT = 150.0


@dataclass
class Figures:
    requests_per_second: float
    p99_ms: float
    failed: int
    completed: int


def start(name: str, command: list[str]) -> tuple[subprocess.Popen, str]:
    """Start a server; returns it and its base URL, read from its first line."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               text=True)
    deadline = time.monotonic() + START_TIMEOUT
    # readline blocks, but each server prints its line at once or dies (EOF).
    line = process.stdout.readline()
    match = re.search(r"http://[\w.:\[\]]+/", line)
    if not match or time.monotonic() > deadline:
        stop(process)
        sys.exit(f"bench_server.py: {name} did not start: {line.strip() or 'no output'}")
    return process, match.group(0)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stdout:
        process.stdout.close()


def run_ab(url: str, requests: int, concurrency: int, time_limit: float) -> Figures:
    """One ab run; an aborted run gives NaN figures, never the end of the benchmark."""
    # -r: keep going when a connection is reset. -t before -n: -t alone means -n 50000.
    command = ["ab", "-q", "-r", "-s", str(AB_SOCKET_TIMEOUT), "-t", str(time_limit),
               "-n", str(requests), "-c", str(concurrency), url]
    aborted = Figures(float("nan"), float("nan"), requests, 0)
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=AB_TIMEOUT)
    except subprocess.TimeoutExpired:
        print(f"  ab killed after {AB_TIMEOUT:g} s against {url}", file=sys.stderr)
        return aborted
    out = result.stdout
    rate = re.search(r"Requests per second:\s+([\d.]+)", out)
    p99 = re.search(r"^\s*99%\s+(\d+)", out, re.MULTILINE)
    failed = re.search(r"Failed requests:\s+(\d+)", out)
    non2xx = re.search(r"Non-2xx responses:\s+(\d+)", out)
    complete = re.search(r"Complete requests:\s+(\d+)", out)
    if not rate or not p99:
        reason = (result.stderr or out).strip().splitlines()[-1:] or ["no output"]
        print(f"  ab aborted against {url}: {reason[0]}", file=sys.stderr)
        return aborted
    failures = int(failed.group(1)) if failed else 0
    failures += int(non2xx.group(1)) if non2xx else 0
    return Figures(float(rate.group(1)), float(p99.group(1)), failures,
                   int(complete.group(1)) if complete else 0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000, help="requests per ab run")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[16, 128])
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (median)")
    parser.add_argument("--time-limit", type=float, default=20,
                        help="seconds at most per ab run (default 20)")
    args = parser.parse_args(argv)
    if shutil.which("ab") is None:
        print("bench_server.py: ab not found; install it with "
              "`apt-get install apache2-utils` (Debian/Ubuntu)", file=sys.stderr)
        return 2

    with tempfile.TemporaryDirectory() as root:
        Path(root, "1k.bin").write_bytes(os.urandom(1024))
        commands = {
            "reference pool": [sys.executable, str(SERVER), "0", "--root", root, "--mode", "pool"],
            "reference spawn": [sys.executable, str(SERVER), "0", "--root", root,
                                "--mode", "spawn"],
            "ThreadingHTTPServer": [sys.executable, "-c", STDLIB_SERVER, root],
        }
        servers: dict[str, tuple[subprocess.Popen, str]] = {}
        try:
            for name, command in commands.items():
                servers[name] = start(name, command)
            for _, url in servers.values():  # warm up: first threads, page cache
                run_ab(url + "1k.bin", 200, 8, args.time_limit)
            results: dict[tuple[str, int], list[Figures]] = {}
            for concurrency in args.concurrency:
                for _ in range(args.repeat):
                    for name, (_, url) in servers.items():
                        print(f"  {name}, c={concurrency} ...", file=sys.stderr, flush=True)
                        figures = run_ab(url + "1k.bin", args.requests, concurrency,
                                         args.time_limit)
                        results.setdefault((name, concurrency), []).append(figures)
        finally:
            for process, _ in servers.values():
                stop(process)

    print(f"ab -n {args.requests} -t {args.time_limit:g}, 1 KiB file, loopback, median of "
          f"{args.repeat} (cores: {os.cpu_count()}; ab shares them)")
    print("ratios are against ThreadingHTTPServer at the same concurrency")
    print(f"{'server':<22}{'c':>5}{'done':>7}{'req/s':>9}{'p99 ms':>9}{'failed':>8}"
          f"{'req/s ratio':>13}{'p99 ratio':>11}")
    for concurrency in args.concurrency:
        base = _median(results[("ThreadingHTTPServer", concurrency)])
        for name in commands:
            figures = _median(results[(name, concurrency)])
            rate_ratio = figures.requests_per_second / base.requests_per_second
            p99_ratio = figures.p99_ms / base.p99_ms if base.p99_ms else float("nan")
            print(f"{name:<22}{concurrency:>5}{figures.completed:>7}"
                  f"{figures.requests_per_second:>9.0f}"
                  f"{figures.p99_ms:>9.0f}{figures.failed:>8}"
                  f"{rate_ratio:>12.2f}x{p99_ratio:>10.2f}x")
    return 0


def _median(runs: list[Figures]) -> Figures:
    return Figures(statistics.median(r.requests_per_second for r in runs),
                   statistics.median(r.p99_ms for r in runs),
                   max(r.failed for r in runs),
                   min(r.completed for r in runs))


if __name__ == "__main__":
    sys.exit(main())
