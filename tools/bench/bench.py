#!/usr/bin/env python3
"""Benchmark the reference server beside ThreadingHTTPServer, nginx and lighttpd.

    python tools/bench/bench.py [--quick] [--runs N] [--output-dir DIR] [--json FILE]
                                [--baseline REV] [--server NAME ...] [--step NAME ...]

Installs nothing: tools/servers/install.sh installs nginx, lighttpd, ab and wrk; a
server or tool that is missing is reported and skipped. Every server listens on a
free loopback port and serves the same fixture folder (a 1 KiB file and a 100 MiB
file). The steps, each run for every server, interleaved run by run so that drift
in the machine's load hits every server alike:

  rate     1 KiB: requests/s and p50/p99 latency with ab (HTTP/1.0, a new connection
           per request, connect time included) at -c 1, 16, 128 and 256, and with
           wrk (2 threads, `Connection: close`) at -c 16 and 128
  stream   one 100 MiB download over one connection, in MB/s (10^6 bytes)
  idle     idle connections (connected, nothing sent) held in steps up to 10,000,
           with the p99 of ab -c 16 on the 1 KiB file beside them, the server's RSS
           and thread count; then, for the reference, the time a client past
           --max-connections waits for its 503
  runner   python -m conformance (default profile) against the reference, serially
           and at --jobs 8, wall-clock seconds

Each figure is the median of --runs runs (default 3) with the min and max beside it.
--quick: 1 run, shorter ab runs, idle steps 1,000 and 10,000 only (354 s on the 2 shared
cores of docs/benchmarks.md, most of it in the idle step; the full run took 420 s).
--output-dir DIR writes DIR/benchmarks.md and the charts DIR/bench-*.png (the charts
need matplotlib: `pip install -e .[bench]`; without it the charts are skipped).
--baseline REV adds the reference server of that git revision ("reference pool
@REV"), so a before and an after are measured in one run.

Servers: the reference in pool and spawn mode with its access log on (to /dev/null);
ThreadingHTTPServer as `python -m http.server --protocol HTTP/1.0` runs it; nginx
(one worker, access log off) and lighttpd from tools/servers/servers.toml, their
connection limits raised to 12,000 for the idle step. For the idle step the
reference runs with --max-connections 10200 --timeout 120 (10 s would drop the idle
clients before they are counted). The machine is usually shared: compare ratios
taken in one run, not absolute figures across runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

REPO = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(REPO))
from conformance.recipes import load_recipes, wait_for_port  # noqa: E402

SERVER_PY = REPO / "reference" / "server.py"
# ThreadingHTTPServer as `python -m http.server --protocol HTTP/1.0` runs it, on port 0
# and printing the port, so no port is guessed.
STDLIB_SERVER = r"""
import functools, sys
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
SimpleHTTPRequestHandler.protocol_version = "HTTP/1.0"
handler = functools.partial(SimpleHTTPRequestHandler, directory=sys.argv[1])
with ThreadingHTTPServer(("127.0.0.1", 0), handler) as httpd:
    print(f"Serving at http://127.0.0.1:{httpd.server_address[1]}/", flush=True)
    httpd.serve_forever()
"""

START_TIMEOUT = 15.0       # seconds for a server to listen
STOP_TIMEOUT = 10.0        # seconds for a server to exit after SIGTERM before SIGKILL
CONCURRENCY = (1, 16, 128, 256)
WRK_CONCURRENCY = (16, 128)
IDLE_STEPS = (100, 1000, 5000, 10000)
IDLE_STEPS_QUICK = (1000, 10000)
IDLE_CAP = 10200           # the reference's --max-connections in the idle step
STREAM_SIZE = 100 << 20
AB_SOCKET_TIMEOUT = 10     # ab -s: one request may wait this long
TOOL_TIMEOUT = 120.0       # any ab, wrk or runner process is killed after this


# -- servers ---------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    process: subprocess.Popen
    port: int
    version: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_printing(name: str, argv: list[str]) -> Server:
    """Start a server that prints http://127.0.0.1:PORT/ on its first line."""
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               text=True, start_new_session=True)
    timer = threading.Timer(START_TIMEOUT, process.kill)  # readline must not hang
    timer.start()
    try:
        line = process.stdout.readline()
    finally:
        timer.cancel()
    match = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
    if not match:
        stop(process)
        raise RuntimeError(f"{name} did not start: {line.strip() or 'no output'}")
    # Keep reading its stdout so that a note it prints later can never block it.
    threading.Thread(target=lambda: [None for _ in process.stdout], daemon=True).start()
    return Server(name, process, int(match.group(1)))


def start_recipe(name: str, root: Path, scratch: Path) -> Server:
    """Start nginx or lighttpd from tools/servers/servers.toml, limits raised."""
    recipe = load_recipes()[name]
    why = recipe.missing()
    if why:
        raise RuntimeError(f"{name}: {why}")
    port = free_port()
    scratch.mkdir(parents=True, exist_ok=True)
    scratch.chmod(0o777)  # lighttpd as root opens its log as www-data
    argv, env = recipe.render(port, root, scratch)
    _raise_limits(scratch)
    process = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    if not wait_for_port("127.0.0.1", port, time.monotonic() + START_TIMEOUT, process):
        stop(process)
        raise RuntimeError(f"{name} did not start listening on port {port}")
    return Server(name, process, port, recipe.version())


def _raise_limits(scratch: Path) -> None:
    """12,000 connections for the idle step (the recipes allow 4,096)."""
    for conf, old, new in (
            ("nginx.conf", "worker_connections 4096;", "worker_connections 12000;"),
            ("nginx.conf", "worker_processes 1;", "worker_processes 1;\nworker_rlimit_nofile 20000;"),
            ("lighttpd.conf", "server.max-connections = 4096",
             "server.max-connections = 12000\nserver.max-fds = 20000")):
        path = scratch / conf
        if path.exists():
            path.write_text(path.read_text().replace(old, new))


def stop(process: subprocess.Popen) -> None:
    """SIGTERM to the server's process group, SIGKILL after STOP_TIMEOUT."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait()
    if process.stdout:
        process.stdout.close()


def process_tree_usage(leader: int) -> tuple[float, int]:
    """(RSS in MiB, threads) summed over the process group of ``leader`` (nginx's
    master and worker, for instance)."""
    rss_kib = threads = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[2]) != leader:  # field 5, pgrp, after the name
                continue
            with open(f"/proc/{entry}/status") as f:
                status = f.read()
        except (OSError, IndexError, ValueError):
            continue
        rss_kib += int(re.search(r"VmRSS:\s+(\d+)", status).group(1))
        threads += int(re.search(r"Threads:\s+(\d+)", status).group(1))
    return rss_kib / 1024, threads


# -- load generators ---------------------------------------------------------------------


def run_ab(url: str, concurrency: int, seconds: float, requests: int = 1_000_000) -> dict:
    """One ab run: req/s, p50, p99 (ms, from ab's per-percent CSV), failures."""
    with tempfile.NamedTemporaryFile(suffix=".csv") as csv:
        # -t before -n: -t alone would also set -n to 50000. -r: go on after a reset.
        argv = ["ab", "-q", "-r", "-s", str(AB_SOCKET_TIMEOUT), "-t", f"{seconds:g}",
                "-n", str(requests), "-c", str(concurrency), "-e", csv.name, url]
        try:
            result = subprocess.run(argv, capture_output=True, text=True, timeout=TOOL_TIMEOUT)
        except subprocess.TimeoutExpired:
            return {"error": f"ab killed after {TOOL_TIMEOUT:g} s"}
        out = result.stdout
        rate = re.search(r"Requests per second:\s+([\d.]+)", out)
        if not rate:
            lines = (result.stderr or out).strip().splitlines()
            return {"error": lines[-1] if lines else "ab printed nothing"}
        percent = {}
        for line in Path(csv.name).read_text().splitlines()[1:]:
            p, _, ms = line.partition(",")
            percent[int(float(p))] = float(ms)
    failed = sum(int(m.group(1)) for m in re.finditer(
        r"(?:Failed requests|Non-2xx responses):\s+(\d+)", out))
    complete = re.search(r"Complete requests:\s+(\d+)", out)
    return {"rps": float(rate.group(1)), "p50": percent.get(50), "p99": percent.get(99),
            "failed": failed, "complete": int(complete.group(1)) if complete else 0}


_WRK_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def run_wrk(url: str, concurrency: int, seconds: float) -> dict:
    """One wrk run (2 threads, a new connection per request): req/s, p50, p99 (ms)."""
    argv = ["wrk", "-t", "2", "-c", str(concurrency), "-d", f"{max(1, round(seconds))}s",
            "--latency", "-H", "Connection: close", url]
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=TOOL_TIMEOUT)
    except subprocess.TimeoutExpired:
        return {"error": f"wrk killed after {TOOL_TIMEOUT:g} s"}
    out = result.stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not rate:
        return {"error": (result.stderr or out).strip()[-200:] or "wrk printed nothing"}
    latency = {}
    for p, value, unit in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE):
        latency[int(p)] = float(value) * _WRK_UNITS[unit]
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    failed = (sum(map(int, errors.groups())) if errors else 0) + (int(non2xx.group(1)) if non2xx else 0)
    return {"rps": float(rate.group(1)), "p50": latency.get(50), "p99": latency.get(99),
            "failed": failed}


def download(port: int, path: str, expected: int) -> dict:
    """GET path over one connection, read to EOF: MB/s from connect to the last byte."""
    buffer = memoryview(bytearray(4 << 20))
    start = time.perf_counter()
    received = 0
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(f"GET {path} HTTP/1.0\r\n\r\n".encode())
            while True:
                n = sock.recv_into(buffer)
                if not n:
                    break
                received += n
    except OSError as error:
        return {"error": str(error)}
    seconds = time.perf_counter() - start
    if received < expected:
        return {"error": f"only {received} bytes"}
    return {"mbps": received / seconds / 1e6, "seconds": seconds}


# -- idle connections ---------------------------------------------------------------------


def open_idle(port: int, count: int, deadline: float) -> tuple[list[socket.socket], int]:
    """Open ``count`` connections that send nothing; returns (sockets, failures)."""
    opened: list[socket.socket] = []
    failures = 0
    batch = 500
    for first in range(0, count, batch):
        selector = selectors.DefaultSelector()
        pending = []
        for _ in range(min(batch, count - first)):
            sock = socket.socket()
            sock.setblocking(False)
            try:
                sock.connect_ex(("127.0.0.1", port))
            except OSError:
                sock.close()
                failures += 1
                continue
            selector.register(sock, selectors.EVENT_WRITE)
            pending.append(sock)
        waiting = set(pending)
        while waiting and time.monotonic() < deadline:
            for key, _ in selector.select(max(0.0, min(1.0, deadline - time.monotonic()))):
                waiting.discard(key.fileobj)
                selector.unregister(key.fileobj)
        selector.close()
        for sock in pending:
            if sock in waiting or sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                abort(sock)
                failures += 1
            else:
                opened.append(sock)
    return opened, failures


def still_held(sockets: list[socket.socket]) -> int:
    """How many idle connections the server has neither answered nor closed."""
    held = 0
    for first in range(0, len(sockets), 500):
        chunk = sockets[first:first + 500]
        selector = selectors.DefaultSelector()
        for sock in chunk:
            selector.register(sock, selectors.EVENT_READ)
        readable = {key.fileobj for key, _ in selector.select(0)}
        selector.close()
        held += len(chunk) - len(readable)
    return held


def abort(sock: socket.socket) -> None:
    """Close with a reset: no TIME_WAIT left behind on either side."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
    except OSError:
        pass
    sock.close()


def idle_step(server: Server, count: int, seconds: float) -> dict:
    deadline = time.monotonic() + 60
    sockets, failures = open_idle(server.port, count, deadline)
    try:
        time.sleep(0.5)  # let the server accept the last of them
        load = run_ab(server.url + "1k.bin", 16, seconds)
        rss, threads = process_tree_usage(server.process.pid)
        held = still_held(sockets)
    finally:
        for sock in sockets:
            abort(sock)
    return {"idle": count, "held": held, "connect_failures": failures, "p99": load.get("p99"),
            "rps": load.get("rps"), "failed": load.get("failed"), "error": load.get("error"),
            "rss_mib": round(rss, 1), "threads": threads}


def settle(server: Server, threads: int, seconds: float = 30) -> None:
    """Wait (bounded) until the server is back to about ``threads`` threads: a
    threaded server takes a while to end the threads of 10,000 closed clients."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and process_tree_usage(server.process.pid)[1] > threads + 50:
        time.sleep(0.25)


def time_to_503(server: Server, cap: int) -> dict:
    """Fill the reference up to --max-connections with idle clients, then time the
    answer to one more: it must be a 503 at once, not a wait."""
    sockets, failures = open_idle(server.port, cap, time.monotonic() + 60)
    try:
        time.sleep(0.5)
        start = time.perf_counter()
        try:
            with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
                sock.sendall(b"GET /1k.bin HTTP/1.0\r\n\r\n")
                first = sock.recv(64)
            status = first[9:12].decode("latin-1")
        except OSError as error:
            status = f"error: {error}"
        elapsed = (time.perf_counter() - start) * 1000
    finally:
        for sock in sockets:
            abort(sock)
    return {"held": len(sockets), "connect_failures": failures, "status": status,
            "ms": round(elapsed, 2)}


# -- the run ------------------------------------------------------------------------------


@dataclass
class Plan:
    runs: int
    ab_seconds: float
    wrk_seconds: float
    idle_steps: tuple[int, ...]
    steps: set[str]
    servers: list[str]
    baseline: str | None
    results: dict = field(default_factory=dict)


def server_commands(root: Path, scratch: Path, plan: Plan, idle: bool) -> dict:
    """name -> a function that starts it."""
    py = sys.executable
    extra = ["--max-connections", str(IDLE_CAP), "--timeout", "120"] if idle else []
    commands = {
        "reference pool": lambda: start_printing(
            "reference pool", [py, str(SERVER_PY), "0", "--root", str(root), *extra]),
        "reference spawn": lambda: start_printing(
            "reference spawn", [py, str(SERVER_PY), "0", "--root", str(root), "--mode", "spawn",
                                *extra]),
        "ThreadingHTTPServer": lambda: start_printing(
            "ThreadingHTTPServer", [py, "-c", STDLIB_SERVER, str(root)]),
        "nginx": lambda: start_recipe("nginx", root, scratch / ("nginx-idle" if idle else "nginx")),
        "lighttpd": lambda: start_recipe(
            "lighttpd", root, scratch / ("lighttpd-idle" if idle else "lighttpd")),
    }
    if plan.baseline and not idle:  # before/after: rate and stream only
        old = scratch / "baseline-server.py"
        name = f"reference pool @{plan.baseline}"
        commands[name] = lambda: start_printing(
            name, [py, str(old), "0", "--root", str(root), *extra])
    return {name: start for name, start in commands.items() if name in plan.servers}


@contextmanager
def running(commands: dict) -> Iterator[dict[str, Server]]:
    """Start each server (one that cannot start is skipped, and said); stop them all."""
    servers = {}
    try:
        for name, start in commands.items():
            try:
                servers[name] = start()
            except (RuntimeError, OSError) as error:
                print(f"bench: skipping {name}: {error}", file=sys.stderr)
        yield servers
    finally:
        for server in servers.values():
            stop(server.process)


def warm_up(servers: dict[str, Server]) -> None:
    for server in servers.values():
        run_ab(server.url + "1k.bin", 8, 0.5, requests=500)


def measure(plan: Plan, root: Path, scratch: Path) -> None:
    results = plan.results
    if plan.steps & {"rate", "stream"}:
        with running(server_commands(root, scratch, plan, idle=False)) as servers:
            results["versions"] = {name: s.version for name, s in servers.items() if s.version}
            warm_up(servers)
            for run in range(plan.runs):
                for name, server in servers.items():
                    if "rate" in plan.steps:
                        for c in CONCURRENCY:
                            say(f"run {run + 1}/{plan.runs}: {name}: ab -c {c}")
                            record(results, "ab", name, c, run_ab(server.url + "1k.bin", c,
                                                                  plan.ab_seconds))
                        if shutil.which("wrk"):
                            for c in WRK_CONCURRENCY:
                                say(f"run {run + 1}/{plan.runs}: {name}: wrk -c {c}")
                                record(results, "wrk", name, c, run_wrk(server.url + "1k.bin", c,
                                                                        plan.wrk_seconds))
                    if "stream" in plan.steps:
                        say(f"run {run + 1}/{plan.runs}: {name}: 100 MiB")
                        record(results, "stream", name, 1,
                               download(server.port, "/100m.bin", STREAM_SIZE))
    if "idle" in plan.steps:
        # One server at a time, each stopped before the next starts: a threaded
        # server takes tens of seconds of both cores to end the threads of 10,000
        # closed clients, which would load whatever was measured beside it.
        for name, start in server_commands(root, scratch, plan, idle=True).items():
            with running({name: start}) as servers:
                warm_up(servers)
                for server in servers.values():
                    threads = process_tree_usage(server.process.pid)[1]
                    for count in plan.idle_steps:
                        say(f"{name}: {count} idle connections")
                        settle(server, threads)
                        step = idle_step(server, count, plan.ab_seconds)
                        results.setdefault("idle", {}).setdefault(name, []).append(step)
                        if step["held"] < count * 0.99 or step["error"]:
                            break  # it holds no more: the next step would only take longer
            if name == "reference pool":  # on a fresh server, for the same reason
                with running({name: start}) as servers:
                    for server in servers.values():
                        say(f"{name}: {IDLE_CAP} idle connections, then one more")
                        results["cap_503"] = time_to_503(server, IDLE_CAP)
    if "runner" in plan.steps and "reference pool" in plan.servers:
        spawn = f"{sys.executable} {SERVER_PY} {{port}} --root {{root}}"
        for run in range(plan.runs):
            for jobs in (1, 8):
                say(f"run {run + 1}/{plan.runs}: runner --jobs {jobs}")
                start = time.perf_counter()
                try:
                    result = subprocess.run(
                        [sys.executable, "-m", "conformance", "--spawn", spawn, "-q",
                         "--jobs", str(jobs)], cwd=REPO, capture_output=True, text=True,
                        timeout=TOOL_TIMEOUT * 3)
                    figures = {"seconds": time.perf_counter() - start,
                               "exit": result.returncode}
                except subprocess.TimeoutExpired:
                    figures = {"error": "timed out"}
                record(results, "runner", "reference pool", jobs, figures)


def record(results: dict, step: str, name: str, key: int, figures: dict) -> None:
    if figures.get("error"):
        print(f"bench: {step} {name} {key}: {figures['error']}", file=sys.stderr)
    results.setdefault(step, {}).setdefault(name, {}).setdefault(str(key), []).append(figures)


def say(text: str) -> None:
    print(f"  {text}", file=sys.stderr, flush=True)


# -- summaries ------------------------------------------------------------------------------


def spread(runs: list[dict], key: str) -> tuple[float, float, float] | None:
    """(median, min, max) of ``key`` over the runs that have it."""
    values = [r[key] for r in runs if r.get(key) is not None and not r.get("error")]
    if not values:
        return None
    return statistics.median(values), min(values), max(values)


def fmt(s: tuple[float, float, float] | None, digits: int = 0) -> str:
    if s is None:
        return "–"
    median, low, high = s
    return f"{median:,.{digits}f} ({low:,.{digits}f}–{high:,.{digits}f})"


def median_of(results: dict, step: str, name: str, key: int, figure: str) -> float | None:
    runs = results.get(step, {}).get(name, {}).get(str(key), [])
    s = spread(runs, figure)
    return s[0] if s else None


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a and b else "–"


def machine() -> dict:
    model = ""
    try:
        model = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text()).group(1)
    except (OSError, AttributeError):
        pass
    tools = {}
    for tool, argv in (("ab", ["ab", "-V"]), ("wrk", ["wrk", "-v"])):
        if shutil.which(tool):
            out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            text = (out.stdout + out.stderr).strip().splitlines()
            tools[tool] = text[0] if text else ""
    head = subprocess.run(["git", "-C", str(REPO), "log", "-1", "--format=%h %cs"],
                          capture_output=True, text=True, timeout=10).stdout.strip()
    tools["reference"] = head
    return {"cores": os.cpu_count(), "cpu": model, "kernel": platform.release(),
            "python": platform.python_version(), "tools": tools,
            "load_average": os.getloadavg()}


def markdown(plan: Plan, info: dict, command: str, charts: list[str]) -> str:
    r = plan.results
    names = [n for n in plan.servers if any(n in r.get(step, {}) for step in ("ab", "stream", "idle"))]
    out = ["# Benchmarks", "",
           "Written by `tools/bench/bench.py`; every figure below comes from one run of it.",
           "", "```", command, "```", "",
           f"Machine: {info['cores']} cores ({info['cpu'] or 'unknown CPU'}), Linux "
           f"{info['kernel']}, Python {info['python']}; "
           + ", ".join(f"{k}: {v}" for k, v in info["tools"].items()) + ". "
           + "Versions: " + ", ".join(f"{k} {v}" for k, v in r.get("versions", {}).items()) + ". "
           f"Load average at the start {info['load_average_start'][0]:.1f}, at the end "
           f"{info['load_average'][0]:.1f}: the machine was shared with other work, so absolute "
           "figures move from run to run; the ratios, measured side by side and interleaved, "
           "are what to compare.", "",
           f"Each cell: median of {plan.runs} run(s), (min–max). ab runs {plan.ab_seconds:g} s, "
           f"wrk {plan.wrk_seconds:g} s; a new connection per request (HTTP/1.0).", ""]
    goals = goal_rows(plan)
    if goals:
        out += ["## Goals (issue 13)", "", "| goal | measured | met |", "|---|---|---|"]
        out += [f"| {g} | {m} | {'yes' if ok else 'no'} |" for g, m, ok in goals]
        out.append("")
    if "ab" in r:
        out += ["## 1 KiB file, ab", "", "requests/s:", "",
                "| server | " + " | ".join(f"-c {c}" for c in CONCURRENCY) + " |",
                "|---|" + "---|" * len(CONCURRENCY)]
        for name in names:
            cells = [fmt(spread(r["ab"].get(name, {}).get(str(c), []), "rps")) for c in CONCURRENCY]
            out.append(f"| {name} | " + " | ".join(cells) + " |")
        out += ["", "latency p50 / p99, ms:", "",
                "| server | " + " | ".join(f"-c {c}" for c in CONCURRENCY) + " |",
                "|---|" + "---|" * len(CONCURRENCY)]
        for name in names:
            cells = []
            for c in CONCURRENCY:
                runs = r["ab"].get(name, {}).get(str(c), [])
                p50, p99 = spread(runs, "p50"), spread(runs, "p99")
                failed = max((x.get("failed", 0) for x in runs), default=0)
                cells.append(f"{p50[0]:.1f} / {p99[0]:.1f}" if p50 and p99 else "–")
                if failed:
                    cells[-1] += f" ({failed} failed)"
            out.append(f"| {name} | " + " | ".join(cells) + " |")
        out += ["", "ratios of the medians (requests/s):", "",
                "| server | " + " | ".join(f"-c {c} vs ThreadingHTTPServer / vs nginx"
                                           for c in CONCURRENCY) + " |",
                "|---|" + "---|" * len(CONCURRENCY)]
        for name in names:
            cells = [f"{ratio(median_of(r, 'ab', name, c, 'rps'), median_of(r, 'ab', 'ThreadingHTTPServer', c, 'rps'))}"
                     f" / {ratio(median_of(r, 'ab', name, c, 'rps'), median_of(r, 'ab', 'nginx', c, 'rps'))}"
                     for c in CONCURRENCY]
            out.append(f"| {name} | " + " | ".join(cells) + " |")
        out.append("")
    if "wrk" in r:
        out += ["## 1 KiB file, wrk (2 threads, `Connection: close`)", "",
                "wrk measures from the request's write, so connect time is not in its latency.", "",
                "| server | " + " | ".join(f"-c {c} req/s | -c {c} p50 / p99 ms" for c in WRK_CONCURRENCY)
                + " |", "|---|" + "---|---|" * len(WRK_CONCURRENCY)]
        for name in names:
            cells = []
            for c in WRK_CONCURRENCY:
                runs = r["wrk"].get(name, {}).get(str(c), [])
                p50, p99 = spread(runs, "p50"), spread(runs, "p99")
                cells += [fmt(spread(runs, "rps")),
                          f"{p50[0]:.2f} / {p99[0]:.2f}" if p50 and p99 else "–"]
            out.append(f"| {name} | " + " | ".join(cells) + " |")
        out.append("")
    if "stream" in r:
        out += ["## 100 MiB, one connection", "", "| server | MB/s | vs nginx |", "|---|---|---|"]
        for name in names:
            s = spread(r["stream"].get(name, {}).get("1", []), "mbps")
            out.append(f"| {name} | {fmt(s)} | "
                       f"{ratio(s[0] if s else None, median_of(r, 'stream', 'nginx', 1, 'mbps'))} |")
        out.append("")
    if "idle" in r:
        out += ["## Idle connections", "",
                "Connected clients that send nothing, held while ab -c 16 fetches the 1 KiB "
                "file beside them (one run per step). `held`: connections the server had "
                "neither answered nor closed at the end of the step. RSS and threads: the "
                "server's process group.", "",
                "| server | idle | held | ab -c 16 p99 ms | req/s | RSS MiB | threads |",
                "|---|---|---|---|---|---|---|"]
        for name in names:
            for step in r["idle"].get(name, []):
                p99 = f"{step['p99']:.1f}" if step.get("p99") is not None else "–"
                rps = f"{step['rps']:,.0f}" if step.get("rps") is not None else "–"
                out.append(f"| {name} | {step['idle']:,} | {step['held']:,} | {p99} | {rps} | "
                           f"{step['rss_mib']:.0f} | {step['threads']:,} |")
        if "cap_503" in r:
            cap = r["cap_503"]
            out += ["", f"Past the cap: with {cap['held']:,} idle clients holding every slot of "
                        f"`--max-connections {IDLE_CAP}`, one more client got `{cap['status']}` "
                        f"after {cap['ms']:.1f} ms."]
        out.append("")
    if "runner" in r:
        out += ["## The runner", "",
                "`python -m conformance --spawn 'reference/server.py ...'` (profile default), "
                "wall-clock seconds including the server's start:", "",
                "| --jobs | seconds | exit |", "|---|---|---|"]
        for jobs in (1, 8):
            runs = r["runner"].get("reference pool", {}).get(str(jobs), [])
            exits = sorted({x.get("exit") for x in runs if "exit" in x})
            out.append(f"| {jobs} | {fmt(spread(runs, 'seconds'), 1)} | {exits} |")
        out.append("")
    for chart in charts:
        out += [f"![{chart}]({chart})", ""]
    return "\n".join(out)


def goal_rows(plan: Plan) -> list[tuple[str, str, bool]]:
    r = plan.results
    rows = []
    pool = "reference pool"
    for c in (16, 128):
        mine = median_of(r, "ab", pool, c, "rps")
        for other, goal in (("ThreadingHTTPServer", 4.0), ("nginx", 0.4)):
            theirs = median_of(r, "ab", other, c, "rps")
            if mine and theirs:
                rows.append((f"1 KiB, ab -c {c}: pool >= {goal:g}x {other}",
                             f"{mine / theirs:.2f}x ({mine:,.0f} vs {theirs:,.0f} req/s)",
                             mine / theirs >= goal))
    p99 = median_of(r, "ab", pool, 128, "p99")
    if p99 is not None:
        rows.append(("1 KiB, ab -c 128: pool p99 <= 20 ms", f"{p99:.1f} ms", p99 <= 20))
    mine, theirs = median_of(r, "stream", pool, 1, "mbps"), median_of(r, "stream", "nginx", 1, "mbps")
    if mine and theirs:
        rows.append(("100 MiB, one stream: pool >= 0.8x nginx",
                     f"{mine / theirs:.2f}x ({mine:,.0f} vs {theirs:,.0f} MB/s)", mine / theirs >= 0.8))
    steps = r.get("idle", {}).get(pool, [])
    big = [s for s in steps if s["idle"] >= 10000]
    if big:
        s = big[-1]
        ok = s["held"] >= 10000 and s.get("p99") is not None and s["p99"] <= 10 and s["rss_mib"] <= 300
        rows.append(("10,000 idle held, ab -c 16 p99 <= 10 ms, RSS <= 300 MiB",
                     f"{s['held']:,} held, p99 {s['p99'] if s['p99'] is not None else '–'} ms, "
                     f"RSS {s['rss_mib']:.0f} MiB, {s['threads']:,} threads", ok))
    if "cap_503" in r:
        cap = r["cap_503"]
        rows.append(("past --max-connections: 503 at once", f"{cap['status']} after {cap['ms']:.1f} ms",
                     cap["status"] == "503" and cap["ms"] < 1000))
    return rows


def charts(plan: Plan, output: Path) -> list[str]:
    """PNG charts into output; [] (and a note) without matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("bench: matplotlib is not installed (pip install -e .[bench]): no charts",
              file=sys.stderr)
        return []
    r = plan.results
    made = []
    if "ab" in r:
        fig, ax = plt.subplots(figsize=(7, 4.2))
        for name in plan.servers:
            points = [(c, spread(r["ab"].get(name, {}).get(str(c), []), "rps")) for c in CONCURRENCY]
            points = [(c, s) for c, s in points if s]
            if not points:
                continue
            xs = [c for c, _ in points]
            ys = [s[0] for _, s in points]
            err = [[s[0] - s[1] for _, s in points], [s[2] - s[0] for _, s in points]]
            ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, label=name)
        ax.set_xscale("log", base=2)
        ax.set_xticks(CONCURRENCY, [str(c) for c in CONCURRENCY])
        ax.set_xlabel("concurrent clients (ab -c)")
        ax.set_ylabel("requests/s (1 KiB file)")
        ax.set_title("Requests per second by concurrency (median, min-max)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(output / "bench-rate.png", dpi=110)
        plt.close(fig)
        made.append("bench-rate.png")

        fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), sharey=True)
        for ax, figure in zip(axes, ("p50", "p99")):
            for name in plan.servers:
                points = [(c, spread(r["ab"].get(name, {}).get(str(c), []), figure))
                          for c in CONCURRENCY]
                points = [(c, s) for c, s in points if s]
                if points:
                    ax.plot([c for c, _ in points], [s[0] for _, s in points], marker="o",
                            label=name)
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xticks(CONCURRENCY, [str(c) for c in CONCURRENCY])
            ax.set_xlabel("concurrent clients (ab -c)")
            ax.set_title(f"latency {figure}, ms (connect included)")
            ax.grid(True, alpha=0.3, which="both")
        axes[0].set_ylabel("ms")
        axes[1].legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(output / "bench-latency.png", dpi=110)
        plt.close(fig)
        made.append("bench-latency.png")
    if "idle" in r:
        fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
        for name in plan.servers:
            steps = r["idle"].get(name, [])
            if not steps:
                continue
            xs = [s["idle"] for s in steps]
            axes[0].plot(xs, [s["p99"] if s["p99"] is not None else float("nan") for s in steps],
                         marker="o", label=name)
            axes[1].plot(xs, [s["rss_mib"] for s in steps], marker="o", label=name)
        for ax, title in zip(axes, ("ab -c 16 p99 (ms) beside idle connections",
                                    "RSS (MiB) by idle connections")):
            ax.set_xscale("log")
            ax.set_xlabel("idle connections")
            ax.set_title(title)
            ax.grid(True, alpha=0.3, which="both")
        axes[1].legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(output / "bench-idle.png", dpi=110)
        plt.close(fig)
        made.append("bench-idle.png")
    return made


def print_summary(text: str) -> None:
    print(text)


def make_fixture(root: Path) -> None:
    root.mkdir(parents=True)
    (root / "1k.bin").write_bytes(os.urandom(1024))
    block = os.urandom(1 << 20)
    with open(root / "100m.bin", "wb") as f:
        for _ in range(STREAM_SIZE >> 20):
            f.write(block)
    (root / "index.html").write_bytes(b"<p>bench</p>\n")
    # nginx and lighttpd read as www-data when started as root.
    for path in (root, *root.iterdir()):
        path.chmod(0o755 if path.is_dir() else 0o644)
    root.parent.chmod(0o755)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 run, short ab runs, 2 idle steps")
    parser.add_argument("--runs", type=int, help="runs per figure (default 3, --quick 1)")
    parser.add_argument("--output-dir", type=Path, help="write benchmarks.md and bench-*.png here")
    parser.add_argument("--json", type=Path, help="write every raw figure here")
    parser.add_argument("--baseline", metavar="REV", help="also the reference server of this git revision")
    all_servers = ["reference pool", "reference spawn", "ThreadingHTTPServer", "nginx", "lighttpd"]
    parser.add_argument("--server", action="append", choices=all_servers,
                        help="only these servers (repeatable; default: all)")
    parser.add_argument("--step", action="append", choices=["rate", "stream", "idle", "runner"],
                        help="only these steps (repeatable; default: all)")
    args = parser.parse_args(argv)
    if shutil.which("ab") is None:
        print("bench: ab not found: tools/servers/install.sh ab", file=sys.stderr)
        return 2
    plan = Plan(runs=args.runs or (1 if args.quick else 3),
                ab_seconds=1.5 if args.quick else 2.0,
                wrk_seconds=2.0,
                idle_steps=IDLE_STEPS_QUICK if args.quick else IDLE_STEPS,
                steps=set(args.step or ["rate", "stream", "idle", "runner"]),
                servers=args.server or all_servers, baseline=args.baseline)
    info = {"load_average_start": os.getloadavg()}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="http10-bench-") as scratch_name:
        scratch = Path(scratch_name)
        scratch.chmod(0o755)  # the root below it must be readable by www-data (nginx)
        if plan.baseline:
            source = subprocess.run(["git", "-C", str(REPO), "show", f"{plan.baseline}:reference/server.py"],
                                    capture_output=True, timeout=30)
            if source.returncode:
                print(f"bench: git show {plan.baseline}:reference/server.py failed", file=sys.stderr)
                return 2
            (scratch / "baseline-server.py").write_bytes(source.stdout)
            plan.servers.insert(1, f"reference pool @{plan.baseline}")
        make_fixture(scratch / "www" / "root")
        measure(plan, scratch / "www" / "root", scratch)
    info.update(machine())
    command = "python tools/bench/bench.py " + " ".join(argv if argv is not None else sys.argv[1:])
    if args.output_dir:
        args.output_dir.mkdir(parents=True, exist_ok=True)
    chart_names = charts(plan, args.output_dir) if args.output_dir else []
    text = markdown(plan, info, command.strip(), chart_names)
    print_summary(text)
    print(f"bench: {time.monotonic() - started:.0f} s in all", file=sys.stderr)
    if args.output_dir:
        (args.output_dir / "benchmarks.md").write_text(text + "\n")
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "results": plan.results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
