"""``python -m conformance check``: every problem of a corpus, each naming file and key.

The loader stops at the first invalid file; ``check_corpus`` goes on and also checks
the files against each other: requirement ids that exist, fixture files that exist,
event globs that name existing connections and events, scenarios within 32
simultaneous connections, profiles that name existing areas, ids unique and
kebab-case. It never builds the document root and never touches the network.
"""

from __future__ import annotations

import re
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Iterator

from .docroot import Fixtures
from .corpusfile import FIXTURES_FILE
from .loader import (
    AREAS,
    PROFILES_FILE,
    REQUIREMENTS_FILE,
    CaseError,
    display_name,
    expand_names,
    build_case,
    case_files,
    case_id,
    load_profiles,
    load_requirements,
    read_toml,
    schema_problems,
)
from .model import EVENTS

__all__ = ["MAX_SIMULTANEOUS", "check_corpus", "max_simultaneous"]

# Some real servers cap live connections at 32; no scenario may need more.
MAX_SIMULTANEOUS = 32

_KEBAB = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
_TITLE_SHOULD = re.compile(r"^(should|must|may)\b", re.IGNORECASE)


def check_corpus(cases_dir: str | Path) -> list[str]:
    """Check a whole corpus.

    Args:
        cases_dir: the corpus folder (with requirements.toml, profiles.toml,
            fixtures.toml, docroot/ and the area folders).

    Returns:
        Every problem as ``"FILE: KEY: MESSAGE"``, catalogue files first, then the
        case files in id order; an empty list for a clean corpus.
    """
    cases_dir = Path(cases_dir)
    problems: list[str] = []

    requirements = _catalogue(problems, lambda: load_requirements(cases_dir))
    profiles = _catalogue(problems, lambda: load_profiles(cases_dir))
    fixtures = _catalogue(problems, lambda: Fixtures(cases_dir))
    if fixtures is not None:
        problems += _check_canary(fixtures, display_name(cases_dir / FIXTURES_FILE, cases_dir))

    seen_ids: dict[str, str] = {}
    areas = set(AREAS)
    for path in case_files(cases_dir):
        display = display_name(path, cases_dir)
        cid = case_id(path, cases_dir)
        areas.add(cid.split("/", 1)[0])
        problems += [f"{display}: {key or '(file)'}: {message}" for key, message in _check_file(path, cid, cases_dir, requirements, fixtures)]
        folded = cid.casefold()
        if folded in seen_ids:
            problems.append(f"{display}: (file): case id {cid!r} differs only in case from {seen_ids[folded]!r}")
        seen_ids.setdefault(folded, cid)

    if profiles is not None:
        problems += _check_profiles(profiles, areas, display_name(cases_dir / PROFILES_FILE, cases_dir))
    problems += _check_client_cases(cases_dir, requirements, fixtures)
    return problems


def _check_client_cases(cases_dir: Path, requirements, fixtures) -> list[str]:
    """Client cases have their own loader; check what it reports and their requirement ids."""
    from .client_cases import ClientCaseError, load_client_case

    problems = []
    for path in sorted((cases_dir / "client").glob("*.toml")):
        display = display_name(path, cases_dir)
        try:
            case = load_client_case(path, cases_dir, fixtures)
        except ClientCaseError as exc:
            problems.append(f"{display}: {exc.key}: {exc.message}")
            continue
        for index, rid in enumerate(case.requirements):
            if requirements is not None and rid not in requirements:
                problems.append(f"{display}: requirements[{index}]: unknown requirement {rid!r}")
    return problems


def _catalogue(problems: list[str], load):
    try:
        return load()
    except CaseError as exc:
        problems.append(str(exc))
        return None


def _check_canary(fixtures: Fixtures, display: str) -> list[str]:
    if not fixtures.is_file(fixtures.canary_path):
        return [f"{display}: canary.path: the canary {fixtures.canary_path!r} is not a file of the document root (put it in docroot/)"]
    if fixtures.content(fixtures.canary_path) != fixtures.canary_data:
        return [f"{display}: canary.data: differs from the content of docroot/{fixtures.canary_path}"]
    return []


def _check_profiles(profiles: dict, areas: set[str], display: str) -> list[str]:
    out = []
    if "default" not in profiles:
        out.append(f"{display}: profile: there is no profile named \"default\" (what runs when nothing is selected)")
    for name, profile in profiles.items():
        for index, area in enumerate(profile.areas):
            if area not in areas:
                out.append(f"{display}: profile.{name}.areas[{index}]: unknown area {area!r} (known: {', '.join(sorted(areas))})")
    return out


# ---------------------------------------------------------------------------
# One case file


def _check_file(path: Path, cid: str, cases_dir: Path, requirements, fixtures) -> list[tuple[str, str]]:
    try:
        data = read_toml(path)
    except CaseError as exc:
        return [(exc.key, exc.message)]
    problems = [("", f"file name {part!r} is not lower-case kebab-case") for part in cid.split("/") if not _KEBAB.match(part)]
    schema = schema_problems(data, cases_dir)
    if schema:
        return problems + schema
    try:
        build_case(data, cid, str(path))
    except CaseError as exc:
        return problems + [(exc.key, exc.message)]
    if _TITLE_SHOULD.match(data["title"]):
        problems.append(("title", "state a fact (\"rejects ...\"), not what should happen"))
    if requirements is not None:
        for index, rid in enumerate(data["requirements"]):
            if rid not in requirements:
                problems.append((f"requirements[{index}]", f"no requirement {rid!r} in {REQUIREMENTS_FILE}"))
    if fixtures is not None:
        problems += _check_fixture_paths(data, fixtures)
    problems += _check_events(data)
    return problems


def _outcomes(data: dict) -> Iterator[tuple[str, dict]]:
    """(key prefix, outcome) for every outcome of the case."""
    for index, outcome in enumerate(data.get("expect", ())):
        yield f"expect[{index}]", outcome
    for c, conn in enumerate(data.get("connection", ())):
        for index, outcome in enumerate(conn.get("expect", ())):
            yield f"connection[{c}].expect[{index}]", outcome


def _check_fixture_paths(data: dict, fixtures: Fixtures) -> list[tuple[str, str]]:
    out = []
    for prefix, outcome in _outcomes(data):
        body_path = outcome.get("body", {}).get("fixture")
        if body_path is not None and not fixtures.is_file(body_path):
            out.append((f"{prefix}.body.fixture", _missing(body_path, fixtures)))
        for name, value in outcome.get("headers", {}).get("fixture", {}).items():
            prop, _, fpath = value.partition(":")
            ok = fixtures.is_file(fpath) if prop == "size" else fixtures.exists(fpath)
            if not ok:
                out.append((f"{prefix}.headers.fixture.{name}", _missing(fpath, fixtures)))
    return out


def _missing(path: str, fixtures: Fixtures) -> str:
    what = "a folder, not a file" if fixtures.exists(path) else "not in the document root"
    return f"fixture {path!r} is {what} (docroot/ and the files of fixtures.toml)"


# ---------------------------------------------------------------------------
# Event globs and simultaneity


def _connections(data: dict) -> list[tuple[str, str, dict, int]]:
    """(key prefix, expanded name, raw connection, number of parts) of every connection."""
    if "request" in data:
        raw = data["request"]
        return [("request", raw.get("name", "main"), raw, _part_count(raw))]
    out = []
    for c, raw in enumerate(data.get("connection", ())):
        for name in expand_names(raw):
            out.append((f"connection[{c}]", name, raw, _part_count(raw)))
    return out


def _part_count(raw: dict) -> int:
    return 1 if "data" in raw else len(raw.get("parts", ()))


def _events_of(parts: int) -> list[str]:
    return list(EVENTS) + [f"part-{n}" for n in range(1, parts + 1)]


def _glob_problem(glob: str, conns: list[tuple[str, str, dict, int]]) -> str | None:
    name_glob, _, event_glob = glob.partition(".")
    matched = [(name, parts) for _, name, _, parts in conns if fnmatchcase(name, name_glob)]
    if not matched:
        names = ", ".join(dict.fromkeys(name for _, name, _, _ in conns))
        return f"{glob!r} matches no connection (connections: {names})"
    if not any(fnmatchcase(event, event_glob) for _, parts in matched for event in _events_of(parts)):
        most = max(parts for _, parts in matched)
        parts_text = f", part-1 .. part-{most}" if most else ""
        return f"{glob!r} matches no event of its connections (events: {', '.join(EVENTS)}{parts_text})"
    return None


def _check_events(data: dict) -> list[tuple[str, str]]:
    conns = _connections(data)
    out = []
    seen_raw: set[int] = set()

    def check(key: str, globs: list[str]) -> None:
        for index, glob in enumerate(globs):
            problem = _glob_problem(glob, conns)
            if problem:
                out.append((f"{key}[{index}]", problem))

    for prefix, name, raw, _ in conns:
        if id(raw) in seen_raw:
            continue  # copies made by count share their globs: check them once
        seen_raw.add(id(raw))
        check(f"{prefix}.start_after", raw.get("start_after", []))
        check(f"{prefix}.read_gate", raw.get("read_gate", []))
        for p, part in enumerate(raw.get("parts", ())):
            check(f"{prefix}.parts[{p}].wait_for", part.get("wait_for", []))
        own = [n for pf, n, r, _ in conns if r is raw]
        for index, glob in enumerate(raw.get("start_after", [])):
            if any(fnmatchcase(n, glob.partition(".")[0]) for n in own):
                out.append((f"{prefix}.start_after[{index}]", f"{glob!r} waits for an event of the connection itself, which never comes before it connects"))
    for index, order in enumerate(data.get("order", ())):
        for side in ("first", "then"):
            problem = _glob_problem(order[side], conns)
            if problem:
                out.append((f"order[{index}].{side}", problem))
    if "connection" in data:
        cycle = _start_cycle(data)
        if cycle:
            out.append(("connection", f"start_after waits in a circle ({' -> '.join(cycle)}): none of them would connect"))
            return out
        most = max_simultaneous(data)
        if most > MAX_SIMULTANEOUS:
            out.append(("connection", f"up to {most} connections can be open at once; a scenario may use at most {MAX_SIMULTANEOUS}"))
    return out


def _after_graph(data: dict) -> tuple[list[str], list[list[bool]]]:
    """Names, and after[a][b]: b connects only after a is done (directly)."""
    conns = _connections(data)
    names = [name for _, name, _, _ in conns]
    after = [[False] * len(names) for _ in names]
    for b, (_, _, raw, _) in enumerate(conns):
        for glob in raw.get("start_after", ()):
            name_glob, _, event_glob = glob.partition(".")
            if not any(fnmatchcase(event, event_glob) for event in EVENTS if event != "wait_timeout"):
                continue
            for a, name in enumerate(names):
                if a != b and fnmatchcase(name, name_glob):
                    after[a][b] = True
    return names, after


def _start_cycle(data: dict) -> list[str]:
    """Connections whose start_after globs wait for each other in a circle, if any."""
    names, after = _after_graph(data)
    state = [0] * len(names)  # 0 new, 1 on the stack, 2 done
    stack: list[int] = []

    def visit(a: int) -> list[str]:
        state[a] = 1
        stack.append(a)
        for b, edge in enumerate(after[a]):
            if edge and state[b] == 1:
                return [names[i] for i in stack[stack.index(b):]] + [names[b]]
            if edge and state[b] == 0:
                found = visit(b)
                if found:
                    return found
        stack.pop()
        state[a] = 2
        return []

    for a in range(len(names)):
        if state[a] == 0:
            found = visit(a)
            if found:
                return found
    return []


def max_simultaneous(data: dict) -> int:
    """How many connections of a decoded scenario can be open at the same time.

    Connection B cannot overlap connection A when B starts after ``A.done`` (a
    ``start_after`` glob that matches it), directly or through others. The answer is
    the largest set of connections no two of which are so ordered: by Dilworth's
    theorem, the count minus a maximum matching of the ordering.
    """
    conns = _connections(data)
    names = [name for _, name, _, _ in conns]
    n = len(names)
    after = [[False] * n for _ in range(n)]  # after[a][b]: b starts after a is done
    for b, (_, _, raw, _) in enumerate(conns):
        for glob in raw.get("start_after", ()):
            name_glob, _, event_glob = glob.partition(".")
            if not fnmatchcase("done", event_glob):
                continue
            for a, name in enumerate(names):
                if a != b and fnmatchcase(name, name_glob):
                    after[a][b] = True
    for k in range(n):  # transitive closure
        for a in range(n):
            if after[a][k]:
                row_k = after[k]
                row_a = after[a]
                for b in range(n):
                    if row_k[b]:
                        row_a[b] = True
    match_of: list[int | None] = [None] * n

    def augment(a: int, seen: list[bool]) -> bool:
        for b in range(n):
            if after[a][b] and not seen[b]:
                seen[b] = True
                if match_of[b] is None or augment(match_of[b], seen):
                    match_of[b] = a
                    return True
        return False

    matching = sum(augment(a, [False] * n) for a in range(n))
    return n - matching

