#!/usr/bin/env python3
"""How long the suite takes to judge broken servers, serially and in parallel.

    python tools/bench_broken.py [--profile default] [--variant NAME ...] [--jobs 8]

A broken server must not set the run time: for each broken variant of
tests/student_server.py (and the reference server, the yardstick) this runs the
profile once with --jobs 1 and once with --jobs N, and prints a table: seconds for
each, the ratio of the serial time to the reference's, the exit statuses, how many
cases failed, whether the two runs gave the same verdict for every case, and the
peak memory of each run (the runner's RSS, or a spawned server's if that was larger).
The figures move with the machine; the ratios and the equality are what to read.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PY = shlex.quote(sys.executable)
STUDENT = f"{PY} {shlex.quote(str(REPO / 'tests' / 'student_server.py'))} {{port}} --root {{root}}"

# The classic mistakes the runner's time and blame must survive, as --defect lists.
VARIANTS = {
    "no-close": ["no-close"],
    "leaks-descriptors": ["leaks-descriptors"],
    "answers-once": ["answers-once"],
    "sequential": ["sequential"],
    "small-pool": ["small-pool"],
    "crash-on-empty-request": ["crash-on-empty-request"],
    "crash-on-bad-request-line": ["crash-on-bad-request-line"],
    "dies-on-disconnect+sequential": ["dies-on-disconnect", "sequential"],
}

# A run that takes longer than this is stopped and reported as such.
RUN_LIMIT = 600


def run(spawn: str | None, profile: str, jobs: int) -> tuple[float, int, dict[str, str], float]:
    """Seconds, exit status (-1: stopped at RUN_LIMIT), verdicts by case id, peak RSS in MiB."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "report.json"
        args = [sys.executable, "-m", "conformance", "--profile", profile, "--jobs", str(jobs),
                "--format", "json", "-o", str(out), "-q"]
        if spawn:
            args += ["--spawn", spawn]
        started = time.monotonic()
        proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        limit = threading.Timer(RUN_LIMIT, proc.kill)
        limit.start()
        # wait4, not wait: its resource usage holds the peak RSS of the run (Linux:
        # the larger of the runner's own and that of the processes it waited for).
        _, raw_status, usage = os.wait4(proc.pid, 0)
        timed_out = limit.finished.is_set()  # set only by firing, until cancel()
        limit.cancel()
        proc.returncode = status = -1 if timed_out else os.waitstatus_to_exitcode(raw_status)
        took = time.monotonic() - started
        verdicts = {}
        if out.exists():
            verdicts = {r["id"]: r["verdict"] for r in json.loads(out.read_text())["results"]}
    return took, status, verdicts, usage.ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="default")
    parser.add_argument("--variant", action="append", default=[], choices=sorted(VARIANTS))
    parser.add_argument("--jobs", type=int, default=8, help="the parallel run's --jobs (default 8)")
    args = parser.parse_args()

    rows = []
    ref_serial, _, _, ref_mib1 = run(None, args.profile, 1)
    ref_parallel, _, _, ref_mib8 = run(None, args.profile, args.jobs)
    rows.append(("reference", ref_serial, ref_parallel, 0, 0, "-", "-", ref_mib1, ref_mib8))
    print(f"reference: {ref_serial:.1f} s at -j1, {ref_parallel:.1f} s at -j{args.jobs}", file=sys.stderr)
    for name in args.variant or list(VARIANTS):
        spawn = STUDENT + "".join(f" --defect {d}" for d in VARIANTS[name])
        serial, status1, one, mib1 = run(spawn, args.profile, 1)
        parallel, status8, many, mib8 = run(spawn, args.profile, args.jobs)
        bad = sum(1 for v in one.values() if v in ("fail", "error"))
        differ = sorted(k for k in one if one.get(k) != many.get(k))
        same = "yes" if one and not differ else f"no ({len(differ)}: {', '.join(differ[:3])})"
        rows.append((name, serial, parallel, status1, status8, bad, same, mib1, mib8))
        print(f"{name}: {serial:.1f} s / {parallel:.1f} s", file=sys.stderr)

    print(f"\nprofile {args.profile}; times in seconds; ratio = serial time / reference serial time\n")
    print(f"| variant | -j1 s | -j{args.jobs} s | ratio | exit -j1/-j{args.jobs} | failing cases | verdicts equal "
          f"| peak MiB -j1/-j{args.jobs} |")
    print("|---|---|---|---|---|---|---|---|")
    for name, serial, parallel, s1, s8, bad, same, mib1, mib8 in rows:
        print(f"| {name} | {serial:.1f} | {parallel:.1f} | {serial / ref_serial:.1f} | {s1}/{s8} | {bad} | {same} "
              f"| {mib1:.0f}/{mib8:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
