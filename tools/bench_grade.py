#!/usr/bin/env python3
"""Wall time to grade the test class with the full lab rubric at --jobs 1 and --jobs 2.

    python tools/bench_grade.py [--jobs 1,2] [--rubric lab] [--keep DIR]

Builds the class of tests/grade_helpers.py (broken variants of
tests/student_server.py, the reference server and client, and the bad
submissions), grades it once per --jobs value, prints the wall time of each, the
class table (submission x item points) and whether the grades were the same at
every --jobs. Absolute figures depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from grade_helpers import build_class  # noqa: E402

RUN_TIMEOUT = 3600  # seconds for one grading of the whole class


def grade(subs: Path, out: Path, jobs: int, rubric: str) -> tuple[float, list[dict]]:
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "conformance.grade", str(subs), "--rubric", rubric,
                           "--out", str(out), "--jobs", str(jobs), "--quiet"], timeout=RUN_TIMEOUT)
    elapsed = time.monotonic() - start
    if proc.returncode != 0:
        sys.exit(f"bench_grade: grading at --jobs {jobs} exited with status {proc.returncode}")
    with open(out / "grades.csv", newline="") as fh:
        return elapsed, list(csv.DictReader(fh))


def table(rows: list[dict]) -> str:
    skip = {"flaky_cases", "reason", "submission_sha256", "rubric_sha256", "corpus_sha256", "graded_at", "max"}
    cols = [c for c in rows[0] if c not in skip]
    widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in cols}
    lines = [" | ".join(c.ljust(widths[c]) for c in cols), "-|-".join("-" * widths[c] for c in cols)]
    lines += [" | ".join(r[c].ljust(widths[c]) for c in cols) for r in rows]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", default="1,2", help="comma-separated --jobs values (default 1,2)")
    parser.add_argument("--rubric", default="lab", help="rubric file or name (default: the built-in lab rubric)")
    parser.add_argument("--keep", type=Path, help="grade into this folder and keep it")
    args = parser.parse_args()
    jobs = [int(j) for j in args.jobs.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-grade-") as tmp:
        base = args.keep or Path(tmp)
        subs = build_class(base / "submissions")
        count = sum(1 for p in subs.iterdir() if p.is_dir())
        timings, grades = {}, {}
        for j in jobs:
            timings[j], rows = grade(subs, base / f"out-jobs{j}", j, args.rubric)
            grades[j] = {r["submission"]: {k: v for k, v in r.items() if k not in ("graded_at",)} for r in rows}
            print(f"--jobs {j}: {count} submissions graded in {timings[j]:.1f} s", flush=True)
        print()
        print(table(list(grades[jobs[0]].values())))
        print()
        volatile = ("flaky_cases", "reason")  # a reason may name the port the server was given

        def stable(rows: dict) -> dict:
            return {s: {k: v for k, v in g.items() if k not in volatile} for s, g in rows.items()}

        same = all(stable(grades[j]) == stable(grades[jobs[0]]) for j in jobs)
        print("grades identical at every --jobs:", "yes" if same else "NO")
        for j in jobs[1:]:
            for sub, row in stable(grades[j]).items():
                if row != stable(grades[jobs[0]])[sub]:
                    print(f"  differs at --jobs {j}: {sub}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
