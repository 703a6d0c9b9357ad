#!/usr/bin/env python3
"""How long the suite takes to judge broken servers, serially and in parallel.

    python tools/bench_broken.py [--profile default] [--variant NAME ...] [--jobs 8]

A broken server must not set the run time: for each broken variant of
tests/student_server.py (and the reference server, the yardstick) this runs the
profile once with --jobs 1 and once with --jobs N, and prints a table: seconds for
each, the ratio of the serial time to the reference's, the exit statuses, how many
cases failed, and whether the two runs gave the same verdict for every case. The
figures move with the machine; the ratios and the equality are what to read.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
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


def run(spawn: str | None, profile: str, jobs: int) -> tuple[float, int, dict[str, str]]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "report.json"
        args = [sys.executable, "-m", "conformance", "--profile", profile, "--jobs", str(jobs),
                "--format", "json", "-o", str(out), "-q"]
        if spawn:
            args += ["--spawn", spawn]
        started = time.monotonic()
        try:
            proc = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=RUN_LIMIT)
            status = proc.returncode
        except subprocess.TimeoutExpired:
            status = -1
        took = time.monotonic() - started
        verdicts = {}
        if out.exists():
            verdicts = {r["id"]: r["verdict"] for r in json.loads(out.read_text())["results"]}
    return took, status, verdicts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="default")
    parser.add_argument("--variant", action="append", default=[], choices=sorted(VARIANTS))
    parser.add_argument("--jobs", type=int, default=8, help="the parallel run's --jobs (default 8)")
    args = parser.parse_args()

    rows = []
    ref_serial, _, _ = run(None, args.profile, 1)
    ref_parallel, _, _ = run(None, args.profile, args.jobs)
    rows.append(("reference", ref_serial, ref_parallel, 0, 0, "-", "-"))
    print(f"reference: {ref_serial:.1f} s at -j1, {ref_parallel:.1f} s at -j{args.jobs}", file=sys.stderr)
    for name in args.variant or list(VARIANTS):
        spawn = STUDENT + "".join(f" --defect {d}" for d in VARIANTS[name])
        serial, status1, one = run(spawn, args.profile, 1)
        parallel, status8, many = run(spawn, args.profile, args.jobs)
        bad = sum(1 for v in one.values() if v in ("fail", "error"))
        differ = sorted(k for k in one if one.get(k) != many.get(k))
        same = "yes" if one and not differ else f"no ({len(differ)}: {', '.join(differ[:3])})"
        rows.append((name, serial, parallel, status1, status8, bad, same))
        print(f"{name}: {serial:.1f} s / {parallel:.1f} s", file=sys.stderr)

    print(f"\nprofile {args.profile}; times in seconds; ratio = serial time / reference serial time\n")
    print(f"| variant | -j1 s | -j{args.jobs} s | ratio | exit -j1/-j{args.jobs} | failing cases | verdicts equal |")
    print("|---|---|---|---|---|---|---|")
    for name, serial, parallel, s1, s8, bad, same in rows:
        print(f"| {name} | {serial:.1f} | {parallel:.1f} | {serial / ref_serial:.1f} | {s1}/{s8} | {bad} | {same} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
