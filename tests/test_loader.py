"""Loading case files: conversions, and an error naming file and key for each kind of mistake."""

from pathlib import Path

import pytest

from conformance.loader import (
    CaseError,
    case_files,
    default_cases_dir,
    load_case,
    load_corpus,
    load_profiles,
    load_requirements,
)

CASES = Path(__file__).resolve().parent.parent / "cases"

HEAD = 'title = "serves a file"\nrequirements = ["R-8.1-a"]\nlevel = "MUST"\n'
SIMPLE = HEAD + '[request]\ndata = "GET /file.txt HTTP/1.0\\r\\n\\r\\n"\n[[expect]]\nstatus = 200\n'


def write_case(tmp_path: Path, text: str, name: str = "lab/a-case.toml") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def load_text(tmp_path, text, name="lab/a-case.toml"):
    return load_case(write_case(tmp_path, text, name), tmp_path)


# --- conversions ---------------------------------------------------------------


def test_single_connection_case(tmp_path):
    case = load_text(tmp_path, SIMPLE)
    assert case.id == "lab/a-case"
    assert case.area == "lab"
    assert not case.scenario
    (conn,) = case.connections
    assert conn.name == "main"
    assert conn.parts[0].data == b"GET /file.txt HTTP/1.0\r\n\r\n"
    assert conn.timeout == 5.0
    (outcome,) = conn.outcomes
    assert outcome.status == (200,)
    assert outcome.version == ("HTTP/1.0", "HTTP/1.1")  # the default for "full"
    assert outcome.verdict == "pass" and outcome.framing == "strict" and outcome.connection == "closed"


def test_scalars_become_tuples_and_bytes_are_latin1(tmp_path):
    case = load_text(
        tmp_path,
        HEAD
        + 'tags = ["slow"]\nliveness = true\nhint = "h"\n'
        + '[request]\nparts = [{ data = "GET /caf\\u00e9", chunk = 1, chunk_pause_ms = 2 }, '
        + '{ data = "x", repeat = 3, pause_ms = 10, wait_for = ["main.part-1"] }]\n'
        + "half_close = true\nread = 0\ntimeout = 2.5\n"
        + '[[expect]]\nstatus = [400, 414]\nstatus_class = "4xx"\nversion = "HTTP/1.0"\n'
        + 'headers.equal = { "Content-Type" = "text/plain" }\nheaders.match = { Server = "^x" }\n'
        + 'headers.fixture = { "Content-Length" = "size:file.txt" }\nheaders.present = ["Date"]\n'
        + 'body.contains = ["\\u00ff"]\nbody.excludes = ["SECRET"]\nbody.equal = "\\u0000"\n'
        + '[[expect]]\nresponse = "none"\nstatus_class = ["4xx", "5xx"]\nverdict = "warn"\n',
    )
    assert case.tags == ("slow",) and case.liveness and case.hint == "h"
    conn = case.connections[0]
    assert conn.parts[0].data == b"GET /caf\xe9" and conn.parts[0].chunk == 1
    assert conn.parts[1].payload == b"xxx" and conn.parts[1].wait_for == ("main.part-1",)
    assert conn.half_close and conn.read == 0 and conn.timeout == 2.5
    first, second = conn.outcomes
    assert first.status == (400, 414) and first.status_class == (4,) and first.version == ("HTTP/1.0",)
    assert first.headers.equal == (("Content-Type", "text/plain"),)
    assert first.headers.match == (("Server", "^x"),)
    assert first.headers.fixture == (("Content-Length", "size:file.txt"),)
    assert first.body.contains == (b"\xff",) and first.body.excludes == (b"SECRET",)
    assert first.body.equal == b"\x00"
    assert second.status_class == (4, 5) and second.version == () and second.response == "none"


def test_scenario_count_expands_names(tmp_path):
    case = load_text(
        tmp_path,
        HEAD
        + '[[connection]]\nname = "dl"\ncount = 3\ndata = "GET / HTTP/1.0\\r\\n\\r\\n"\n'
        + "[[connection.expect]]\nstatus = 200\n"
        + '[[connection]]\nname = "late"\nstart_after = ["dl-*.done"]\n'
        + '[[connection.expect]]\nresponse = "any"\n'
        + '[[order]]\nfirst = "dl-*.complete"\nthen = "late.connected"\n',
        "concurrency/s.toml",
    )
    assert case.scenario
    assert [c.name for c in case.connections] == ["dl-1", "dl-2", "dl-3", "late"]
    assert case.connections[3].parts == ()
    assert case.order[0].first == "dl-*.complete"


# --- errors: each names the file and the key ----------------------------------------

BAD = {
    "toml-syntax": (HEAD + "[request\n", "line 4", "invalid TOML"),
    "missing-title": (SIMPLE.replace('title = "serves a file"\n', ""), "title", "required"),
    "unknown-top-key": ('colour = "red"\n' + SIMPLE, "colour", "unknown key"),
    "bad-level": (SIMPLE.replace('"MUST"', '"MUSTN\'T"'), "level", "MUST"),
    "status-type": (SIMPLE + '[[expect]]\nstatus = "200"\n', "expect[1].status", "integer status code"),
    "status-range": (SIMPLE.replace("status = 200", "status = 700"), "expect[0].status", "100-599"),
    "status-array-item": (SIMPLE.replace("status = 200", 'status = [200, "x"]'), "expect[0].status[1]", "integer"),
    "status-class": (SIMPLE.replace("status = 200", 'status_class = "6xx"'), "expect[0].status_class", "4xx"),
    "bad-version": (SIMPLE.replace("status = 200", 'version = "HTTP/1"'), "expect[0].version", "HTTP/1.0"),
    "bad-verdict": (SIMPLE.replace("status = 200", 'verdict = "ok"'), "expect[0].verdict", "pass"),
    "unknown-outcome-key": (SIMPLE.replace("status = 200", "stauts = 200"), "expect[0].stauts", "unknown key"),
    "unknown-header-key": (SIMPLE + "headers.equals = {}\n", "expect[0].headers.equals", "unknown key"),
    "bad-regex": (SIMPLE + 'headers.match = { Server = "(" }\n', "expect[0].headers.match.Server", "regular expression"),
    "fixture-spec": (SIMPLE + 'headers.fixture = { "Content-Length" = "length:file.txt" }\n',
                     "expect[0].headers.fixture.Content-Length", "pattern"),
    "absolute-fixture": (SIMPLE + 'body.fixture = "/file.txt"\n', "expect[0].body.fixture", "pattern"),
    "char-above-ff": (SIMPLE.replace("GET /file.txt", "GET /\u20ac"), "request.data", "U+20AC"),
    "char-in-body": (SIMPLE + 'body.contains = ["ok", "\u0100"]\n', "expect[0].body.contains[1]", "U+0100"),
    "data-and-parts": (SIMPLE.replace("[[expect]]", 'parts = [{ data = "x" }]\n[[expect]]'), "request", "not both"),
    "count-in-request": (SIMPLE.replace("[[expect]]", "count = 2\n[[expect]]"), "request.count", "scenario"),
    "zero-timeout": (SIMPLE.replace("[[expect]]", "timeout = 0\n[[expect]]"), "request.timeout", "more than 0"),
    "negative-read": (SIMPLE.replace("[[expect]]", "read = -1\n[[expect]]"), "request.read", "at least 0"),
    "no-expect": (HEAD + '[request]\ndata = "x"\n', "expect", "[request] and [[expect]]"),
    "nothing": (HEAD, "request", "[[connection]]"),
    "empty-expect": (HEAD + 'expect = []\n[request]\ndata = "x"\n', "expect", "at least 1"),
    "order-without-scenario": (SIMPLE + '[[order]]\nfirst = "a.done"\nthen = "b.done"\n', "order", "only for scenarios"),
    "empty-requirements": (SIMPLE.replace('["R-8.1-a"]', "[]"), "requirements", "at least 1"),
    "bad-requirement-id": (SIMPLE.replace('"R-8.1-a"', '"rfc-8.1"'), "requirements[0]", "pattern"),
    "title-is-date": (SIMPLE.replace('"serves a file"', "2024-01-01T00:00:00Z"), "title", "not a date-time"),
    "bad-part-key": (SIMPLE.replace("data = ", "parts = [{ dta = \"x\" }]\n#"), "request.parts[0].dta", "unknown key"),
    "bad-glob": (SIMPLE.replace("[[expect]]", 'start_after = ["nodot"]\n[[expect]]'), "request.start_after[0]", "pattern"),
}

SCENARIO = HEAD + '[[connection]]\nname = "a"\ndata = "x"\n[[connection.expect]]\nresponse = "any"\n'
BAD_SCENARIOS = {
    "scenario-and-request": (SCENARIO + '[request]\ndata = "x"\n', "request", "scenario"),
    "scenario-and-expect": (SCENARIO + "[[expect]]\nstatus = 200\n", "expect", "scenario"),
    "missing-name": (SCENARIO.replace('name = "a"\n', ""), "connection[0].name", "required"),
    "missing-connection-expect": (SCENARIO + '[[connection]]\nname = "b"\n', "connection[1].expect", "required"),
    "bad-name": (SCENARIO.replace('"a"', '"A b"'), "connection[0].name", "pattern"),
    "part-data-above-ff": (
        SCENARIO.replace('data = "x"', 'parts = [{ data = "a" }, { data = "b" }, { data = "\u4e2d" }]'),
        "connection[0].parts[2].data",
        "U+4E2D",
    ),
    "single-connection-scenario": (SCENARIO, "connection", "two or more"),
    "duplicate-after-count": (
        SCENARIO.replace('name = "a"', 'name = "a-1"')
        + '[[connection]]\nname = "a"\ncount = 2\n[[connection.expect]]\nresponse = "any"\n',
        "connection[1].name",
        "already used",
    ),
    "count-too-big": (SCENARIO.replace('data = "x"', "count = 33"), "connection[0].count", "at most 32"),
}


@pytest.mark.parametrize("text, key, fragment", list(BAD.values()) + list(BAD_SCENARIOS.values()),
                         ids=list(BAD) + list(BAD_SCENARIOS))
def test_bad_case_names_file_and_key(tmp_path, text, key, fragment):
    with pytest.raises(CaseError) as info:
        load_text(tmp_path, text)
    error = info.value
    assert error.file.endswith("lab/a-case.toml")
    assert error.key == key, str(error)
    assert fragment in error.message, str(error)
    assert str(error) == f"{error.file}: {error.key}: {error.message}"


def test_file_that_is_not_utf8(tmp_path):
    path = tmp_path / "lab" / "latin1.toml"
    path.parent.mkdir()
    path.write_bytes(SIMPLE.encode() + b'hint = "caf\xe9"\n')
    with pytest.raises(CaseError) as info:
        load_case(path, tmp_path)
    assert info.value.key == "line 8" and "UTF-8" in info.value.message


def test_case_files_skip_docroot_client_and_top_level(tmp_path):
    for name in ("lab/a.toml", "docroot/x.toml", "client/c.toml", "requirements.toml", ".hidden/h.toml", "security/deep/b.toml"):
        write_case(tmp_path, SIMPLE, name)
    found = [p.relative_to(tmp_path).as_posix() for p in case_files(tmp_path)]
    assert found == ["lab/a.toml", "security/deep/b.toml"]


def test_requirements_and_profiles_errors_name_the_key(tmp_path):
    (tmp_path / "requirements.toml").write_text(
        '[[requirement]]\nid = "R-1.3-a"\nsection = "1.3"\nlevel = "MUST"\ntext = "t"\n'
        '[[requirement]]\nid = "R-1.3-b"\nsection = "1.3"\nlevel = "MUST"\ntext = "t"\ntestable = false\n'
    )
    with pytest.raises(CaseError) as info:
        load_requirements(tmp_path)
    assert info.value.key == "requirement[1].reason"
    (tmp_path / "profiles.toml").write_text('[profile.x]\ndescription = "d"\nlevels = ["OFTEN"]\n')
    with pytest.raises(CaseError) as info:
        load_profiles(tmp_path)
    assert info.value.key == "profile.x.levels[0]"


def test_duplicate_requirement_id(tmp_path):
    entry = '[[requirement]]\nid = "R-1.3-a"\nsection = "1.3"\nlevel = "MUST"\ntext = "t"\n'
    (tmp_path / "requirements.toml").write_text(entry * 2)
    with pytest.raises(CaseError, match=r"requirement\[1\]\.id: duplicate"):
        load_requirements(tmp_path)


def test_the_real_corpus_loads():
    corpus = load_corpus(CASES)
    assert default_cases_dir() == CASES
    ids = [c.id for c in corpus.cases]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert "lab/get-text-file" in ids
    assert "default" in corpus.profiles
    assert corpus.requirements["R-8.1-a"].level == "MUST"
    assert corpus.fixtures.canary_path == "conformance-canary.txt"


def test_catalogue_covers_the_research_catalogue():
    requirements = load_requirements(CASES)
    rfc = [r for r in requirements if r.startswith("R-")]
    rob = [r for r in requirements if r.startswith("ROB-")]
    assert len(rfc) >= 124
    assert rob == [f"ROB-{n}" for n in range(1, 16)]
    for req in requirements.values():
        assert req.testable or req.reason
