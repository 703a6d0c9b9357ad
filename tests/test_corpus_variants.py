"""The corpus tests itself: each broken student server fails the MUST cases measured to
catch it, and every MUST case is caught by some broken server or explained.

tests/variant_catches.json is written by tools/variant_catches.py, which runs every
MUST case against every defect of tests/student_server.py; this test replays those
pairs so that a case loosened until it catches nothing shows up here.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from conformance.loader import load_corpus

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
TABLE = json.loads((HERE / "variant_catches.json").read_text())
EXPLAINED = tomllib.loads((HERE / "variant_catches_explained.toml").read_text()).get("case", {})
pytestmark = pytest.mark.slow

STUDENT = f"{shlex.quote(sys.executable)} {shlex.quote(str(HERE / 'student_server.py'))} {{port}} --root {{root}}"


def run(defect: str | None, ids: list[str]) -> tuple[int, dict[str, str]]:
    spawn = STUDENT + (f" --defect {defect}" if defect else "")
    selection = [arg for case_id in ids for arg in ("--id", case_id)]
    proc = subprocess.run(
        [sys.executable, "-m", "conformance", "--spawn", spawn, *selection, "--format", "json", "-q",
         "--jobs", "1", "--timeout-scale", "0.5"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    if proc.returncode not in (0, 1):
        return proc.returncode, {}
    return proc.returncode, {r["id"]: r["verdict"] for r in json.loads(proc.stdout)["results"]}


# Each defect replays this many of its catching cases, spread over the list, one at a
# time as they were measured: all of them would take minutes for the defects that
# make every case wait for a timeout.
REPLAY = 6


def spread(ids: list[str], count: int = REPLAY) -> list[str]:
    if len(ids) <= count:
        return ids
    return [ids[i * (len(ids) - 1) // (count - 1)] for i in range(count)]


@pytest.mark.parametrize("defect", sorted(d for d, row in TABLE.items() if row["cases"]))
def test_each_defect_fails_the_cases_measured_to_catch_it(defect):
    ids = spread(TABLE[defect]["cases"])
    status, verdicts = run(defect, ids)
    assert status == 1
    passed = sorted(i for i in ids if verdicts.get(i) not in ("fail", "error"))
    assert not passed, f"{defect} no longer fails {passed}"


@pytest.mark.parametrize("defect", sorted(d for d, row in TABLE.items() if row["preflight"]))
def test_defects_caught_at_preflight(defect):
    status, _ = run(defect, ["lab/get-text-file"])
    assert status == 3


def test_the_defect_free_student_server_passes_every_catching_case():
    ids = sorted({i for row in TABLE.values() for i in row["cases"]})
    status, verdicts = run(None, ids)
    assert status == 0, {i: v for i, v in verdicts.items() if v != "pass"}


def test_every_must_case_is_caught_by_a_defect_or_explained():
    corpus = load_corpus(REPO / "cases")
    must = {c.id for c in corpus.cases if c.level == "MUST" and "slow" not in c.tags}
    caught = {i for row in TABLE.values() for i in row["cases"]}
    unexplained = sorted(must - caught - set(EXPLAINED))
    assert not unexplained, f"MUST cases no broken server fails and no reason is given for: {unexplained}"
    stale = sorted(set(EXPLAINED) & caught)
    assert not stale, f"explained as uncaught, but a defect catches them: {stale}"
    unknown = sorted(set(EXPLAINED) - must)
    assert not unknown, f"explanations for cases that are not MUST cases: {unknown}"
    for case_id, why in EXPLAINED.items():
        if "preflight" in why:
            assert TABLE[why["preflight"]]["preflight"], f"{case_id}: {why['preflight']} no longer stops the preflight"
