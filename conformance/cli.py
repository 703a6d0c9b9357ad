"""The command line: ``python -m conformance [run] --target HOST:PORT`` and friends.

Imports of the heavier modules happen inside the commands so that ``--help``
starts fast.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from . import __version__
from .memory import return_large_buffers

__all__ = ["main", "EXIT_OK", "EXIT_FAIL", "EXIT_USAGE", "EXIT_TARGET", "EXIT_INCOMPLETE"]

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_TARGET, EXIT_INCOMPLETE = 0, 1, 2, 3, 4

# The whole run's time limit unless --budget says otherwise: the default profile takes
# about 15 s against a correct server, so only a server that makes cases wait meets it.
DEFAULT_BUDGET = 300.0

# The port hand reproducers of a --spawn run name (the spawned port is gone by then).
HAND_PORT = 8080

COMMANDS = ("run", "list", "check", "explain", "docroot", "coverage", "client", "export", "matrix", "grade",
            "fuzz")

DESCRIPTION = """\
Replays the HTTP/1.0 case corpus over raw TCP against any server and says which
RFC 1945 requirements it meets.

  python -m conformance                          the suite against the bundled reference server
  python -m conformance --target 127.0.0.1:8080  against your running server
  python -m conformance --spawn "python3 server.py {port}"   start your server for the run
  python -m conformance --profile lab            the classic lab assignment's checks

Your server must serve the fixture document root: 'python -m conformance docroot DIR'
builds it and prints the folder to serve (--spawn starts the server inside it).
"""

EXIT_HELP = """\
exit status:
  0  every selected MUST case passed (warnings and information do not fail a run)
  1  a MUST case failed, or could not be run (the reason is printed)
  2  usage error, invalid case file, or an empty selection
  3  the target is unreachable or does not serve the fixture document root
  4  the run is incomplete: the budget ran out (the report says which cases ran)
130  interrupted by Ctrl-C (SIGINT), 143 by SIGTERM: the report of the cases done
     so far is still written, marked incomplete
"""


class UsageError(Exception):
    """Bad arguments or corpus; printed as one paragraph, exit status 2."""


def _add_selection(parser: argparse.ArgumentParser, default_profile: str = "default") -> None:
    group = parser.add_argument_group("selection (kinds combine with AND, repeats with OR)")
    group.add_argument("--id", dest="ids", action="append", default=[], metavar="GLOB",
                       help="case id or glob, e.g. 'lab/*' or 'security/traversal-*'")
    group.add_argument("--area", dest="areas", action="append", default=[],
                       help="lab, rfc1945, robustness, security or concurrency")
    group.add_argument("--profile", help=f"a profile from cases/profiles.toml (default: '{default_profile}')")
    group.add_argument("--tag", dest="tags", action="append", default=[], help="cases with this tag")
    group.add_argument("--exclude-tag", dest="exclude_tags", action="append", default=[],
                       help="leave out cases with this tag")
    group.add_argument("--level", dest="levels", action="append", default=[],
                       type=str.upper, choices=["MUST", "SHOULD", "MAY"], help="cases at this level")
    parser.add_argument("--cases", type=Path, help="another corpus folder (default: the bundled one)")


class _Parser(argparse.ArgumentParser):
    """argparse, with the nearest command or option suggested for a typo."""

    def error(self, message: str):
        import difflib
        import re as _re

        words = _re.findall(r"(?:unrecognized arguments|invalid choice): '?([^\s',]+)", message)
        known = [o for action in self._actions for o in action.option_strings]
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                known += list(action.choices)
                for sub in action.choices.values():
                    known += [o for a in sub._actions for o in a.option_strings]
        for word in words:
            near = difflib.get_close_matches(word, known, n=1, cutoff=0.6)
            if near:
                message += f" (did you mean {near[0]}?)"
                break
        super().error(message)


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="conformance",
        description=DESCRIPTION,
        epilog="commands: " + ", ".join(COMMANDS) + " ('run' is the default; "
        "'conformance COMMAND --help' for each)\n\n" + EXIT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    run = sub.add_parser("run", help="run the suite (the default command)", description=DESCRIPTION,
                         epilog=EXIT_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    where = run.add_argument_group("target (neither: spawn the bundled reference server)")
    where.add_argument("--target", metavar="HOST:PORT", help="a server that is already running")
    where.add_argument("--spawn", metavar="CMD",
                       help="start this server for the run; {port}, {root}, {host}, {scratch} are "
                       "substituted, and it runs inside the fixture root")
    run.add_argument("--jobs", "-j", default="1", metavar="N",
                     help="cases in flight at once: a number or 'auto' (default 1, serial)")
    run.add_argument("--strict", action="store_true", help="SHOULD failures fail the run")
    run.add_argument("--timeout-scale", type=float, default=1.0, metavar="F",
                     help="multiply every timeout, for slow targets (default 1.0)")
    run.add_argument("--fail-fast", action="store_true", help="stop at the first failure")
    run.add_argument("--budget", type=float, default=DEFAULT_BUDGET, metavar="SECONDS",
                     help=f"time limit for the whole run; cases not reached are skipped and the "
                     f"run exits 4 (default {DEFAULT_BUDGET:g})")
    run.add_argument("--format", default="table", choices=["table", "json", "junit", "markdown"],
                     help="report format (default table)")
    run.add_argument("--output", "-o", type=Path, help="write the report here instead of stdout")
    run.add_argument("--verbose", "-v", action="store_true",
                     help="show the bytes sent and received for every case that did not pass")
    run.add_argument("--quiet", "-q", action="store_true", help="no progress line")
    _add_selection(run)

    lst = sub.add_parser("list", help="print the selected cases without running them")
    _add_selection(lst)

    chk = sub.add_parser("check", help="validate every case, the catalogue and the profiles")
    chk.add_argument("--cases", type=Path, help="another corpus folder")

    exp = sub.add_parser("explain", help="print a case, its requirements and its hint")
    exp.add_argument("case_id", metavar="ID")
    exp.add_argument("--cases", type=Path, help="another corpus folder")

    doc = sub.add_parser("docroot", help="build the fixture document root and print the folder to serve")
    doc.add_argument("dir", type=Path, metavar="DIR",
                     help="where to build it; the folder to serve is DIR/root")
    doc.add_argument("--cases", type=Path, help="another corpus folder")

    cov = sub.add_parser("coverage", help="write the requirement coverage report (cases/COVERAGE.md)")
    cov.add_argument("--output", "-o", type=Path, help="where to write it (default: CASES/COVERAGE.md)")
    cov.add_argument("--cases", type=Path, help="another corpus folder")
    mat = sub.add_parser(
        "matrix",
        help="run the corpus against many real servers and compare them",
        description="Starts each server of SERVERS.toml (default: tools/servers/servers.toml of the "
        "checkout) on a free loopback port, serving a fresh fixture root, runs the selection "
        "(default: profile 'all'), stops it, and writes matrix.md, matrix.html and matrix.json. "
        "A server that is not installed is listed as skipped with the reason "
        "(tools/servers/install.sh installs them). Exits 1 when a server fails a case that is not "
        "in its known-failures file, or passes one that is.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    mat.add_argument("servers", nargs="?", type=Path, metavar="SERVERS.toml", help="the recipes")
    mat.add_argument("--server", dest="server_names", action="append", default=[], metavar="NAME",
                     help="only this server (repeatable)")
    mat.add_argument("--output-dir", type=Path, metavar="DIR",
                     help="where to write matrix.md, matrix.html and matrix.json (default: docs for a "
                     "full run; matrix-partial in the current folder when --server or a selection "
                     "narrows it, so the committed docs/ matrix is not overwritten)")
    mat.add_argument("--known", type=Path, metavar="DIR",
                     help="known-failures folder (default: known-failures/ beside SERVERS.toml)")
    mat.add_argument("--jobs", "-j", default="4", metavar="N", help="cases in flight per server (default 4)")
    _add_selection(mat, default_profile="all")

    exp_all = sub.add_parser("export", help="write the whole corpus as one JSON bundle for other runners")
    exp_all.add_argument("--format", default="json", choices=["json"], help="bundle format (json)")
    exp_all.add_argument("--output", "-o", type=Path, help="write here instead of stdout")
    exp_all.add_argument("--cases", type=Path, help="another corpus folder")

    cli = sub.add_parser(
        "client",
        help="judge an HTTP/1.0 client: the runner plays the server",
        description="Runs the client cases (cases/client/): for each, the runner listens on a free "
        "loopback port, starts the client with {host}, {port}, {client_port}, {path} and {output} "
        "(a file it may write the body to) substituted, plays the scripted response and judges "
        "the request, the body written out and the exit status.",
        epilog="example: conformance client --spawn \"python3 client.py {host} {port} {client_port} {path}\"\n\n"
        + EXIT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cli.add_argument("--spawn", required=True, metavar="CMD", help="the client command with placeholders")
    cli.add_argument("--id", dest="ids", action="append", default=[], metavar="GLOB", help="client case id or glob")
    cli.add_argument("--level", dest="levels", action="append", default=[], type=str.upper,
                     choices=["MUST", "SHOULD", "MAY"])
    cli.add_argument("--strict", action="store_true", help="SHOULD failures fail the run")
    cli.add_argument("--timeout-scale", type=float, default=1.0, metavar="F")
    cli.add_argument("--format", default="table", choices=["table", "json", "junit", "markdown"])
    cli.add_argument("--output", "-o", type=Path)
    cli.add_argument("--verbose", "-v", action="store_true")
    cli.add_argument("--quiet", "-q", action="store_true")
    cli.add_argument("--cases", type=Path, help="another corpus folder")

    from .grade.cli import add_parser as add_grade_parser

    add_grade_parser(sub)

    from .fuzz.cli import add_parser as add_fuzz_parser

    add_fuzz_parser(sub)
    return parser


def _with_default_command(argv: list[str]) -> list[str]:
    if argv and (argv[0] in COMMANDS or argv[0] in ("-h", "--help", "--version")):
        return argv
    if argv and not argv[0].startswith("-"):
        import difflib

        near = difflib.get_close_matches(argv[0], COMMANDS, n=1, cutoff=0.6)
        hint = f"; did you mean '{near[0]}'?" if near else ""
        print(f"conformance: no command {argv[0]!r}{hint} The commands: {', '.join(COMMANDS)}",
              file=sys.stderr)
        sys.exit(EXIT_USAGE)
    return ["run", *argv]


def _cases_dir(args) -> Path:
    from .resources import cases_dir

    path = args.cases or cases_dir()
    if not (path / "requirements.toml").is_file():
        raise UsageError(f"{path} is not a case corpus (it has no requirements.toml)")
    return path


def _load(args):
    from .loader import CaseError, load_corpus

    try:
        return load_corpus(_cases_dir(args))
    except CaseError as exc:
        raise UsageError(f"invalid case file: {exc}\n(run 'python -m conformance check' for every problem)") from None


def _select(args, corpus):
    from .select import select

    explicit = args.ids or args.areas or args.profile or args.tags or args.levels
    try:
        chosen = select(
            corpus.cases,
            corpus.profiles,
            ids=tuple(args.ids),
            areas=tuple(args.areas),
            profile=args.profile if explicit else "default",
            tags=tuple(args.tags),
            exclude_tags=tuple(args.exclude_tags),
            levels=tuple(args.levels),
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if not chosen:
        raise UsageError("no case matches this selection; 'python -m conformance list' shows the cases")
    return chosen


def _parse_target(text: str):
    from .wire import Target

    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--target wants HOST:PORT (e.g. 127.0.0.1:8080 or [::1]:8080), not {text!r}")
    return Target(host, int(port))


def _jobs(text: str) -> int:
    if text == "auto":
        return min(16, max(4, 2 * (os.cpu_count() or 1)))
    if not text.isdigit() or int(text) < 1:
        raise UsageError(f"--jobs wants a positive number or 'auto', not {text!r}")
    return int(text)


class _Progress:
    """A live count on the terminal; silent when stderr is not one."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.bad = 0

    def __call__(self, result, done: int, total: int) -> None:
        if result.verdict in ("fail", "error"):
            self.bad += 1
        if self.enabled:
            line = f"\r  {done}/{total} cases, {self.bad} failing  {result.id[:50]:<50}"
            sys.stderr.write(line)
            sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\r" + " " * 80 + "\r")
            sys.stderr.flush()


class _Stopper:
    """Turns SIGINT and SIGTERM into a request to stop, so the report is still written.

    The first signal asks the run to stop; the cases in flight are abandoned and the
    report of those done is written. While the report is written, further signals
    are ignored so that they cannot cut it in half.
    """

    def __init__(self, control):
        self.control = control
        self.signum = 0
        self._old = {}

    def __enter__(self) -> "_Stopper":
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if not self.signum:
            self.signum = signum
            self.control.stop(f"interrupted by {signal.Signals(signum).name}")

    def shield(self) -> None:
        for sig in self._old:
            signal.signal(sig, signal.SIG_IGN)

    def __exit__(self, *exc) -> None:
        if self.signum:
            # The run is ending on a signal: a second Ctrl-C a moment after the report
            # is written must not turn the exit status into a KeyboardInterrupt.
            return
        for sig, handler in self._old.items():
            signal.signal(sig, handler)


def _terminate(signum, frame):
    # matrix: SIGTERM unwinds like Ctrl-C, so the server it started is stopped on the way out.
    raise KeyboardInterrupt


def _check_output(path: Path | None) -> None:
    """Refuse an unusable --output before anything runs; create missing parent folders."""
    if path is None:
        return
    if path.is_dir():
        raise UsageError(f"--output {path} is a folder; give a file name, such as {path / 'report.json'}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--output {path}: cannot create its folder ({exc.strerror or exc})") from None
    if not os.access(path.parent, os.W_OK):
        raise UsageError(f"--output {path}: its folder {path.parent} is not writable")


def _hand_command(template: str | None, root: Path) -> str:
    """How a person starts the spawned server by hand, to replay a reproducer."""
    from .spawn import SpawnError, anchor, render_command

    if template is None:
        return ""
    try:
        argv = render_command(template, port=str(HAND_PORT), root=str(root), host="127.0.0.1",
                              scratch="/tmp")
    except SpawnError:
        return ""
    return f"cd {shlex.quote(str(root))} && {shlex.join(anchor(a) for a in argv)}"


def cmd_run(args) -> int:
    from .docroot import Fixtures
    from .resources import reference_server
    from .runner import Control, Options, fixture_drift, preflight, run_all
    from .spawn import SpawnError, SpawnedServer
    from .wire import Target

    corpus = _load(args)
    cases = _select(args, corpus)
    if args.target and args.spawn:
        raise UsageError("give --target or --spawn, not both")
    if not args.budget > 0:
        raise UsageError(f"--budget wants a positive number of seconds, not {args.budget:g}")
    options = Options(jobs=_jobs(args.jobs), strict=args.strict, timeout_scale=args.timeout_scale,
                      fail_fast=args.fail_fast, budget=args.budget)
    if options.timeout_scale <= 0:
        raise UsageError("--timeout-scale must be positive")
    _check_output(args.output)
    _need_reporter(args.format)
    fixtures = Fixtures(corpus.cases_dir)
    server = None
    progress = _Progress(sys.stderr.isatty() and not args.quiet)
    started = datetime.now(timezone.utc)
    clock = time.monotonic()
    control = Control(options.budget)
    extra: dict = {}
    with _Stopper(control) as stopper:
        try:
            if args.target:
                target = _parse_target(args.target)
                described = str(target)
                reproduce_at = None
            else:
                template = args.spawn or (
                    f"{shlex.quote(sys.executable)} {shlex.quote(str(reference_server()))} "
                    "{port} --bind {host} --root {root} --quiet"
                )
                from .docroot import reachable_cache_base

                root = fixtures.cached_root(reachable_cache_base())
                try:
                    server = SpawnedServer.from_template(template, root)
                    server.start()
                except SpawnError as exc:
                    print(f"conformance: {exc}", file=sys.stderr)
                    return EXIT_TARGET
                target = Target(server.host, server.port)
                described = f"spawned: {args.spawn}" if args.spawn else "the bundled reference server"
                reproduce_at = Target("127.0.0.1", HAND_PORT)
                extra["reproduce"] = _hand_command(args.spawn, root) if args.spawn else (
                    f"python3 {shlex.quote(str(reference_server()))} {HAND_PORT} --root {shlex.quote(str(root))}")
            problem = preflight(target, fixtures, options.timeout_scale)
            if problem:
                print(f"conformance: {problem}{_server_words(server)}", file=sys.stderr)
                return EXIT_TARGET
            if server is None:
                drift = fixture_drift(target, fixtures, options.timeout_scale)
                if drift:
                    print("conformance: warning: the served files differ from the fixtures ("
                          + "; ".join(drift) + "). If the fixture root was edited, rebuild it with "
                          "'python -m conformance docroot DIR'; otherwise the cases below say what "
                          "the server does to them.", file=sys.stderr)
            run = run_all(cases, target, fixtures, options, server, progress, control,
                          reproduce_at=reproduce_at, server_log=server.log if server else None)
        finally:
            progress.close()
            if server is not None:
                server.stop()
                if server.stray:
                    print(f"conformance: stopped {len(server.stray)} process(es) that had left the "
                          f"server's process group (pids {', '.join(map(str, server.stray[:8]))})",
                          file=sys.stderr)
        if server is not None:
            extra["server_log"] = _save_log(server, run.results)
        stopper.shield()
        options_record = {
            "jobs": options.jobs,
            "strict": options.strict,
            "timeout_scale": options.timeout_scale,
            "fail_fast": options.fail_fast,
            "budget": options.budget,
            "selection": _selection_text(args),
        }
        status = _emit(args, run.results, described, options_record, started, clock,
                       incomplete=run.incomplete, notes=run.notes, **extra)
        if run.incomplete:
            print(f"conformance: incomplete: {run.incomplete}", file=sys.stderr)
        if stopper.signum:
            return 128 + stopper.signum
        return EXIT_INCOMPLETE if run.incomplete else status


def _server_words(server) -> str:
    """The spawned server's last output, for a message about it; '' without one."""
    if server is None:
        return ""
    status = server.exit_status()
    said = server.output_tail()
    head = f"\nThe server exited (status {status}); its last output:" if status is not None else \
        "\nThe server's last output:"
    return f"{head}\n{said}" if "(no output)" not in said or status is not None else ""


def _save_log(server, results) -> str:
    """Keep the server's whole output where the report says, when there is something to see."""
    import tempfile

    if all(r.verdict == "pass" for r in results) and not server.restarts:
        return ""
    fd, name = tempfile.mkstemp(prefix="conformance-server-", suffix=".log")
    os.close(fd)
    server.log.save(Path(name))
    return name


def _need_reporter(fmt: str) -> None:
    """The table and Markdown reports need tabulate: say how to get it before running."""
    if fmt not in ("table", "markdown"):
        return
    try:
        import tabulate  # noqa: F401
    except ImportError:
        raise UsageError(
            "the table and Markdown reports need the 'tabulate' package, which this Python "
            f"({sys.executable}) lacks. Run through 'python3 dev.py suite ...' (it sets up "
            "everything), install the project with 'pip install .', or use --format json"
        ) from None


def _emit(args, results, described: str, options: dict, started: datetime, clock: float,
          incomplete: str = "", notes=(), server_log: str = "", reproduce: str = "") -> int:
    """Write the report in the chosen format and return the exit status."""
    from . import report

    status = report.exit_status(results)
    info = report.RunInfo(
        suite_version=__version__,
        target=described,
        options=options,
        started=started.isoformat(timespec="seconds"),
        duration=round(time.monotonic() - clock, 2),
        exit_status=EXIT_INCOMPLETE if incomplete else status,
        incomplete=incomplete,
        notes=list(notes),
        server_log=server_log,
        reproduce=reproduce,
    )
    kwargs = {"verbose": args.verbose, "color": args.output is None and sys.stdout.isatty()}
    text = report.REPORTERS[args.format](results, info, **kwargs)
    if args.output:
        # Written beside and renamed over: a reader never sees half a report.
        partial = args.output.with_name(args.output.name + ".partial")
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, args.output)
        print(f"conformance: report written to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    if server_log:
        print(f"conformance: the server's whole output is in {server_log}", file=sys.stderr)
    return status


def _selection_text(args) -> str:
    parts = [f"--id {i}" for i in args.ids] + [f"--area {a}" for a in args.areas]
    parts += [f"--profile {args.profile}"] if args.profile else []
    parts += [f"--tag {t}" for t in args.tags] + [f"--level {lv}" for lv in args.levels]
    parts += [f"--exclude-tag {t}" for t in args.exclude_tags]
    return " ".join(parts) or "profile default"


def cmd_list(args) -> int:
    corpus = _load(args)
    cases = _select(args, corpus)
    width = max(len(c.id) for c in cases)
    for case in cases:
        tags = f"  [{', '.join(case.tags)}]" if case.tags else ""
        print(f"{case.id:<{width}}  {case.level:<6}  {case.title}{tags}")
    print(f"{len(cases)} cases", file=sys.stderr)
    return EXIT_OK


def cmd_check(args) -> int:
    from .check import check_corpus

    path = _cases_dir(args)
    problems = check_corpus(path)
    for problem in problems:
        print(problem)
    if problems:
        print(f"conformance check: {len(problems)} problems in {path}", file=sys.stderr)
        return EXIT_USAGE
    corpus = _load(args)
    print(
        f"conformance check: {len(corpus.cases)} cases, {len(corpus.requirements)} requirements, "
        f"{len(corpus.profiles)} profiles: OK"
    )
    return EXIT_OK


def cmd_explain(args) -> int:
    from . import escape
    from .match import describe_outcome

    corpus = _load(args)
    found = [c for c in corpus.cases if c.id == args.case_id]
    if not found:
        raise UsageError(f"no case {args.case_id!r}; 'python -m conformance list' shows the ids")
    case = found[0]
    print(f"{case.id}: {case.title}")
    print(f"level: {case.level}" + (f"   tags: {', '.join(case.tags)}" if case.tags else ""))
    for rid in case.requirements:
        req = corpus.requirements[rid]
        print(f"requirement {rid} (RFC 1945 {req.section}, {req.level}): {req.text}")
    for conn in case.connections:
        label = f"connection {conn.name}" if case.scenario else "request"
        sent = b"".join(p.payload for p in conn.parts)
        print(f"\n{label} (timeout {conn.timeout:g} s{', half-close' if conn.half_close else ''}):")
        print("  " + escape.show(sent, 2000).replace("\n", "\n  "))
        for number, outcome in enumerate(conn.outcomes, 1):
            print(f"  outcome {number} ({outcome.verdict}): {describe_outcome(outcome)}")
    for order in case.order:
        print(f"\norder: every {order.first} before any {order.then}" + (f" ({order.note})" if order.note else ""))
    if case.liveness:
        print("\nafterwards: a plain GET on a new connection must still succeed")
    if case.hint:
        print(f"\nhint: {case.hint}")
    return EXIT_OK


def cmd_docroot(args) -> int:
    from .docroot import Fixtures

    corpus_dir = _cases_dir(args)
    try:
        root = Fixtures(corpus_dir).materialise(args.dir)
    except FileExistsError as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise UsageError(f"cannot build the document root in {args.dir}: {exc.strerror or exc}") from None
    print(root)
    return EXIT_OK


def cmd_coverage(args) -> int:
    from .client_cases import load_client_cases
    from .coverage import coverage_markdown
    from .docroot import Fixtures

    corpus = _load(args)
    clients = load_client_cases(corpus.cases_dir, Fixtures(corpus.cases_dir))
    out = args.output or (corpus.cases_dir / "COVERAGE.md")
    out.write_text(coverage_markdown(corpus, clients), encoding="utf-8")
    print(f"conformance: coverage written to {out}", file=sys.stderr)
    return EXIT_OK


def cmd_client(args) -> int:
    import fnmatch

    from .client_cases import ClientCaseError, load_client_cases
    from .client_runner import command_problem, run_client_cases
    from .docroot import Fixtures
    from .spawn import SpawnError

    corpus_dir = _cases_dir(args)
    try:
        cases = load_client_cases(corpus_dir, Fixtures(corpus_dir))
        problem = command_problem(args.spawn)
    except (ClientCaseError, SpawnError) as exc:
        raise UsageError(str(exc)) from None
    if problem:
        raise UsageError(problem)
    _check_output(args.output)
    _need_reporter(args.format)
    cases = [
        c for c in cases
        if (not args.ids or any(fnmatch.fnmatchcase(c.id, g) for g in args.ids))
        and (not args.levels or c.level in args.levels)
    ]
    if not cases:
        raise UsageError("no client case matches this selection")
    progress = _Progress(sys.stderr.isatty() and not args.quiet)
    started = datetime.now(timezone.utc)
    clock = time.monotonic()
    try:
        results = run_client_cases(cases, args.spawn, scale=args.timeout_scale, strict=args.strict,
                                   progress=progress)
    finally:
        progress.close()
    options = {"strict": args.strict, "timeout_scale": args.timeout_scale,
               "selection": " ".join(args.ids) or "all client cases"}
    return _emit(args, results, f"client: {args.spawn}", options, started, clock)


def cmd_export(args) -> int:
    from .export import build_bundle, bundle_problems, dumps

    corpus_dir = _cases_dir(args)
    bundle = build_bundle(corpus_dir)
    problems = bundle_problems(bundle, corpus_dir)
    if problems:
        raise UsageError("the bundle does not validate:\n" + "\n".join(problems[:20]))
    text = dumps(bundle)
    if args.output:
        args.output.write_text(text, encoding="ascii")
        print(f"conformance: {len(bundle['cases'])} cases written to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return EXIT_OK


def cmd_matrix(args) -> int:
    import json

    from .docroot import Fixtures
    from .matrix import gate_failures, render_markdown, run_matrix
    from .matrix_html import render_html
    from .recipes import DEFAULT_TOML, RecipeError, load_recipes

    corpus = _load(args)
    partial = bool(args.ids or args.areas or args.profile or args.tags or args.levels or args.server_names)
    if not (args.ids or args.areas or args.profile or args.tags or args.levels):
        args.profile = "all"
    if args.output_dir is None:
        args.output_dir = Path("matrix-partial") if partial else Path("docs")
    cases = _select(args, corpus)
    servers_file = args.servers or DEFAULT_TOML
    try:
        recipes = load_recipes(servers_file)
    except (OSError, RecipeError) as exc:
        raise UsageError(f"cannot read the server recipes {servers_file}: {exc}") from None
    unknown = [n for n in args.server_names if n not in recipes]
    if unknown:
        raise UsageError(f"no recipe named {', '.join(unknown)}; known: {', '.join(recipes)}")
    if args.server_names:
        recipes = {n: recipes[n] for n in args.server_names}
    signal.signal(signal.SIGTERM, _terminate)

    def progress(line: str) -> None:
        print(f"matrix: {line}", file=sys.stderr, flush=True)

    matrix = run_matrix(recipes, cases, Fixtures(corpus.cases_dir), args.known or servers_file.parent / "known-failures",
                        jobs=_jobs(args.jobs), progress=progress)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / "matrix.json").write_text(json.dumps(matrix, indent=1) + "\n", encoding="utf-8")
    (args.output_dir / "matrix.md").write_text(render_markdown(matrix), encoding="utf-8")
    (args.output_dir / "matrix.html").write_text(render_html(matrix), encoding="utf-8")
    print(f"matrix: written to {args.output_dir}/matrix.{{md,html,json}} in {matrix['duration']:.0f} s",
          file=sys.stderr)
    gate = gate_failures(matrix)
    for line in gate:
        print(f"matrix: {line}", file=sys.stderr)
    return EXIT_FAIL if gate else EXIT_OK


def cmd_grade(args) -> int:
    from .grade.cli import main as grade_main

    return grade_main(args)


def cmd_fuzz(args) -> int:
    import importlib.util

    if importlib.util.find_spec("hypothesis") is None:
        raise UsageError("the fuzzer needs the 'hypothesis' package: pip install '.[fuzz]' "
                         "(python3 dev.py suite fuzz ... has it)")
    from .fuzz.cli import main as fuzz_main

    return fuzz_main(args)


HANDLERS = {
    "fuzz": cmd_fuzz,
    "grade": cmd_grade,
    "matrix": cmd_matrix,
    "export": cmd_export,
    "client": cmd_client,
    "run": cmd_run,
    "list": cmd_list,
    "check": cmd_check,
    "explain": cmd_explain,
    "docroot": cmd_docroot,
    "coverage": cmd_coverage,
}


# What the commands import: missing, a command would fail after doing work.
NEEDED = {"jsonschema": "jsonschema", "referencing": "jsonschema"}
if sys.version_info < (3, 11):
    NEEDED["tomli"] = "tomli"


def _missing_packages() -> list[str]:
    import importlib.util

    return sorted({package for module, package in NEEDED.items() if importlib.util.find_spec(module) is None})


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _build_parser().parse_args(_with_default_command(argv))
    missing = _missing_packages()
    if missing:
        print(f"conformance: this Python ({sys.executable}) lacks {', '.join(missing)}, which the runner "
              "needs. From a checkout, run 'python3 dev.py suite ...' (it sets up everything), or "
              "install the project: 'pip install .'", file=sys.stderr)
        return EXIT_USAGE
    return_large_buffers()
    try:
        return HANDLERS[args.command](args)
    except UsageError as exc:
        print(f"conformance: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("\nconformance: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_OK
