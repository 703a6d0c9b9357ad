"""`check`: the real corpus is clean; crafted bad corpora give the expected messages."""

import time
from pathlib import Path

import pytest

from conformance.check import check_corpus, max_simultaneous

CASES = Path(__file__).resolve().parent.parent / "cases"

REQUIREMENTS = "".join(
    f'[[requirement]]\nid = "{rid}"\nsection = "{sec}"\nlevel = "MUST"\ntext = "t"\n'
    for rid, sec in [("R-8.1-a", "8.1"), ("R-9.4-g", "9.4"), ("ROB-5", "robustness")]
)
PROFILES = '[profile.default]\ndescription = "d"\nareas = ["lab"]\n'
FIXTURES = (
    'format = 1\ndefault_mtime = 2021-06-01T12:00:00Z\n'
    '[canary]\npath = "canary.txt"\ndata = "canary\\n"\n'
    '[[file]]\npath = "made.txt"\ndata = "made"\n'
)
HEAD = 'title = "serves a file"\nrequirements = ["R-8.1-a"]\nlevel = "MUST"\n'
GOOD = HEAD + '[request]\ndata = "GET /file.txt HTTP/1.0\\r\\n\\r\\n"\n[[expect]]\nstatus = 200\nbody.fixture = "file.txt"\n'


def scenario(*connections: str, order: str = "") -> str:
    text = HEAD
    for conn in connections:
        text += f"[[connection]]\n{conn}\n[[connection.expect]]\nresponse = \"any\"\n"
    return text + order


@pytest.fixture
def corpus(tmp_path):
    """A small valid corpus; tests add or break files in it."""
    (tmp_path / "requirements.toml").write_text(REQUIREMENTS)
    (tmp_path / "profiles.toml").write_text(PROFILES)
    (tmp_path / "fixtures.toml").write_text(FIXTURES)
    (tmp_path / "docroot" / "dir").mkdir(parents=True)
    (tmp_path / "docroot" / "canary.txt").write_bytes(b"canary\n")
    (tmp_path / "docroot" / "file.txt").write_bytes(b"hello\n")
    (tmp_path / "docroot" / "dir" / "index.html").write_bytes(b"<p>\n")
    (tmp_path / "lab").mkdir()
    (tmp_path / "lab" / "good.toml").write_text(GOOD)
    return tmp_path


def add(corpus: Path, name: str, text: str) -> None:
    path = corpus / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def test_real_corpus_is_clean_and_fast():
    started = time.perf_counter()
    problems = check_corpus(CASES)
    elapsed = time.perf_counter() - started
    assert problems == []
    assert elapsed < 2.0


def test_crafted_corpus_is_clean(corpus):
    assert check_corpus(corpus) == []


BAD = {
    "unknown-requirement": (
        GOOD.replace('"R-8.1-a"', '"R-8.1-a", "R-99-z"'),
        "cases-x/lab/bad.toml: requirements[1]: no requirement 'R-99-z' in requirements.toml",
    ),
    "missing-body-fixture": (
        GOOD.replace('"file.txt"', '"nope.txt"'),
        "lab/bad.toml: expect[0].body.fixture: fixture 'nope.txt' is not in the document root",
    ),
    "folder-as-body-fixture": (
        GOOD.replace('body.fixture = "file.txt"', 'body.fixture = "dir"'),
        "lab/bad.toml: expect[0].body.fixture: fixture 'dir' is a folder, not a file",
    ),
    "missing-header-fixture": (
        GOOD + 'headers.fixture = { "Content-Length" = "size:gone.txt", "Last-Modified" = "mtime:made.txt" }\n',
        "lab/bad.toml: expect[0].headers.fixture.Content-Length: fixture 'gone.txt' is not in",
    ),
    "glob-no-connection": (
        scenario('name = "a"\ndata = "x"', 'name = "b"\nstart_after = ["c.done"]'),
        "lab/bad.toml: connection[1].start_after[0]: 'c.done' matches no connection (connections: a, b)",
    ),
    "glob-no-event": (
        scenario('name = "a"\ndata = "x"', 'name = "b"\nstart_after = ["a.finished"]'),
        "connection[1].start_after[0]: 'a.finished' matches no event of its connections (events: connected",
    ),
    "part-beyond-last": (
        scenario('name = "a"\ndata = "x"', 'name = "b"\nparts = [{ wait_for = ["a.part-2"], data = "y" }]'),
        "connection[1].parts[0].wait_for[0]: 'a.part-2' matches no event of its connections",
    ),
    "read-gate": (
        scenario('name = "a"\ndata = "x"\nread_gate = ["z*.done"]', 'name = "b"'),
        "connection[0].read_gate[0]: 'z*.done' matches no connection",
    ),
    "order-glob": (
        scenario('name = "a"', 'name = "b"', order='[[order]]\nfirst = "a.done"\nthen = "bb.done"\n'),
        "lab/bad.toml: order[0].then: 'bb.done' matches no connection",
    ),
    "waits-for-itself": (
        scenario('name = "a"\nstart_after = ["a.connected"]', 'name = "b"'),
        "connection[0].start_after[0]: 'a.connected' waits for an event of the connection itself",
    ),
    "circle": (
        scenario('name = "a"\nstart_after = ["b.done"]', 'name = "b"\nstart_after = ["a.connected"]'),
        "lab/bad.toml: connection: start_after waits in a circle (a -> b -> a)",
    ),
    "too-many-at-once": (
        scenario('name = "x"\ncount = 20', 'name = "y"\ncount = 20'),
        "lab/bad.toml: connection: up to 40 connections can be open at once; a scenario may use at most 32",
    ),
    "title-should": (
        GOOD.replace('"serves a file"', '"should serve a file"'),
        "lab/bad.toml: title: state a fact",
    ),
    "schema": (
        GOOD.replace("status = 200", "status = 2000"),
        "lab/bad.toml: expect[0].status: must be an integer status code (100-599) or an array of them",
    ),
}


@pytest.mark.parametrize("text, expected", BAD.values(), ids=BAD.keys())
def test_bad_case_gives_the_expected_message(corpus, text, expected):
    add(corpus, "lab/bad.toml", text)
    problems = check_corpus(corpus)
    expected = expected.replace("cases-x/", f"{corpus.name}/")
    assert any(expected in p for p in problems), problems
    assert all(p.startswith(f"{corpus.name}/lab/bad.toml: ") for p in problems), problems


def test_sequential_connections_may_exceed_32(corpus):
    text = scenario('name = "x"\ncount = 20', 'name = "y"\ncount = 20\nstart_after = ["x-*.done"]')
    add(corpus, "lab/sequential.toml", text)
    assert check_corpus(corpus) == []


def test_max_simultaneous_follows_chains():
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    data = tomllib.loads(
        scenario(
            'name = "a"\ncount = 10',
            'name = "b"\ncount = 10\nstart_after = ["a-*.done"]',
            'name = "c"\ncount = 5\nstart_after = ["b-1.done"]',
            'name = "d"\ncount = 3',
        )
    )
    # a-* can overlap d-*; b-2..b-10 can overlap c-* (c waits only for b-1) and d-*.
    assert max_simultaneous(data) == 17


def test_every_problem_of_every_file_is_reported(corpus):
    add(corpus, "lab/bad-one.toml", GOOD.replace('level = "MUST"', 'level = "OFTEN"') + "colour = 1\n")
    add(corpus, "security/Bad_Name.toml", GOOD.replace('"R-8.1-a"', '"R-1.1-q"'))
    problems = check_corpus(corpus)
    name = corpus.name
    assert f"{name}/lab/bad-one.toml: level: must be one of \"MUST\", \"SHOULD\", \"MAY\", not \"OFTEN\"" in problems
    assert any(p.startswith(f"{name}/lab/bad-one.toml: expect[0].colour: unknown key") for p in problems)
    assert f"{name}/security/Bad_Name.toml: (file): file name 'Bad_Name' is not lower-case kebab-case" in problems
    assert f"{name}/security/Bad_Name.toml: requirements[0]: no requirement 'R-1.1-q' in requirements.toml" in problems


def test_catalogue_files_are_checked(corpus):
    (corpus / "requirements.toml").write_text(REQUIREMENTS + '[[requirement]]\nid = "R-8.1-a"\nsection = "8.1"\nlevel = "MAY"\ntext = "t"\n')
    (corpus / "profiles.toml").write_text('[profile.lab]\ndescription = "d"\nareas = ["labs"]\n')
    (corpus / "fixtures.toml").write_text(FIXTURES.replace('data = "canary\\n"', 'data = "other\\n"'))
    problems = check_corpus(corpus)
    name = corpus.name
    assert f"{name}/requirements.toml: requirement[3].id: duplicate requirement id 'R-8.1-a'" in problems
    assert f'{name}/profiles.toml: profile: there is no profile named "default" (what runs when nothing is selected)' in problems
    assert any(p.startswith(f"{name}/profiles.toml: profile.lab.areas[0]: unknown area 'labs' (known: ") for p in problems)
    assert f"{name}/fixtures.toml: canary.data: differs from the content of docroot/canary.txt" in problems


def test_invalid_fixtures_file(corpus):
    (corpus / "fixtures.toml").write_text(FIXTURES.replace("2021-06-01T12:00:00Z", "2021-06-01T12:00:00"))
    problems = check_corpus(corpus)
    assert [p for p in problems if "fixtures.toml: default_mtime:" in p], problems
