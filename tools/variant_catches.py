#!/usr/bin/env python3
"""Measure which MUST cases each broken student server fails, and record it.

    python tools/variant_catches.py [--jobs N] [--defect NAME ...]

Runs every MUST case (profile "all": the slow ones are left out), one at a time, against
the student server of tests/student_server.py once per defect, and writes
tests/variant_catches.json: for each defect, the MUST cases it fails. The test
tests/test_corpus_variants.py replays exactly those cases against each defect in CI
(and checks the defect-free server passes them), and checks that every MUST case is
caught by some defect or is explained in tests/variant_catches_explained.toml.
This script is the measurement; rerun it when cases or defects change.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from student_server import DEFECTS  # noqa: E402

OUT = REPO / "tests" / "variant_catches.json"
STUDENT = f"{shlex.quote(sys.executable)} {shlex.quote(str(REPO / 'tests' / 'student_server.py'))} {{port}} --root {{root}}"


def failing_cases(defect: str | None, jobs: int) -> tuple[int, list[str]]:
    # Serial by default: with cases in flight together, a defect that kills or blocks
    # the server also fails the cases that happened to run beside the one that did it.
    spawn = STUDENT + (f" --defect {defect}" if defect else "")
    proc = subprocess.run(
        [sys.executable, "-m", "conformance", "--spawn", spawn, "--profile", "all", "--level", "MUST",
         "--format", "json", "-q", "--jobs", str(jobs), "--timeout-scale", "0.5"],
        cwd=REPO, capture_output=True, text=True, timeout=900,
    )
    if proc.returncode not in (0, 1):
        return proc.returncode, []
    results = json.loads(proc.stdout)["results"]
    return proc.returncode, sorted(r["id"] for r in results if r["verdict"] in ("fail", "error"))


def replay_spread(defect: str, ids: list[str], jobs: int) -> list[str]:
    """The cases of ``ids`` that the test's replay (a spread of a few, run together) does
    not fail: a catch that only shows after other cases (a one-at-a-time server still
    busy with an earlier client) is real, but the replay cannot check it."""
    from test_corpus_variants import spread

    chosen = spread(ids)
    spawn = STUDENT + f" --defect {defect}"
    selection = [arg for case_id in chosen for arg in ("--id", case_id)]
    proc = subprocess.run(
        [sys.executable, "-m", "conformance", "--spawn", spawn, *selection, "--format", "json", "-q",
         "--jobs", "1", "--timeout-scale", "0.5"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    verdicts = {r["id"]: r["verdict"] for r in json.loads(proc.stdout)["results"]} if proc.stdout else {}
    return [i for i in chosen if verdicts.get(i) not in ("fail", "error")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=1, help="cases in flight at once (default 1: exact attribution)")
    parser.add_argument("--defect", action="append", default=[], choices=sorted(DEFECTS))
    args = parser.parse_args()
    status, clean = failing_cases(None, args.jobs)
    if clean:
        print(f"the defect-free student server fails {clean}: fix it before measuring", file=sys.stderr)
        return 1
    table = json.loads(OUT.read_text()) if OUT.exists() and args.defect else {}
    for defect in args.defect or sorted(DEFECTS):
        started = time.monotonic()
        status, failed = failing_cases(defect, args.jobs)
        took = time.monotonic() - started
        if status == 3:
            table[defect] = {"preflight": True, "cases": []}
            print(f"{defect:28} fails the preflight ({took:.1f} s)")
            continue
        only_in_context: list[str] = []
        for _ in range(3):  # bounded: each round drops what the replay does not reproduce
            dropped = replay_spread(defect, failed, args.jobs) if failed else []
            if not dropped:
                break
            only_in_context += dropped
            failed = [i for i in failed if i not in dropped]
        table[defect] = {"preflight": False, "cases": failed}
        if only_in_context:
            table[defect]["only_after_other_cases"] = sorted(only_in_context)
        note = f"; fail only after other cases: {', '.join(only_in_context)}" if only_in_context else ""
        print(f"{defect:28} {len(failed):3d} MUST cases fail ({took:.1f} s){note}")
    OUT.write_text(json.dumps(dict(sorted(table.items())), indent=1) + "\n")
    print(f"written to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
