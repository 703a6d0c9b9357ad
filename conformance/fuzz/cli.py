"""``conformance fuzz``: the command line of the fuzzer (parse, dispatch, print).

    python -m conformance fuzz --target HOST:PORT | --spawn CMD
        [--examples N] [--seed S] [--budget SECONDS] [--against [HOST:PORT]] [--out DIR]

The main CLI wires it in with ``add_parser(subparsers)`` and calls ``main(args)``;
``python -m conformance.fuzz`` runs it alone.
"""

from __future__ import annotations

import argparse
import json
import shlex
import signal
import sys
from dataclasses import asdict
from pathlib import Path

__all__ = ["add_parser", "main", "build_parser", "fixtures_info", "fixture_paths"]

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE, EXIT_TARGET = 0, 1, 2, 3

DESCRIPTION = """\
Generates requests from the RFC 1945 grammar with Hypothesis, mutates them (bit flips,
truncation, duplication, CR/LF/NUL/space insertion, fragments and pauses, early close)
and checks every example: a parsable response or a close within the timeout; right
framing for a valid request; the canary still served afterwards; no byte from outside
the root; under --spawn, no traceback in the server's output. Each finding is shrunk
and written as a case file in --out (a small corpus: run it with --cases OUT).
With --against, the same bytes also go to a second server (default: the bundled
reference) and the disagreements are classified; documented choices are not findings.
"""

EPILOG = """\
exit status: 0 no finding, 1 findings, 2 usage error, 3 target unreachable or not
serving the fixture root.

examples:
  python -m conformance fuzz --spawn "python3 server.py {port}" --examples 1000
  python -m conformance fuzz --target 127.0.0.1:8080 --against --seed 7
"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``fuzz`` command to an ``add_subparsers()`` object; returns its parser."""
    parser = subparsers.add_parser("fuzz", help="fuzz a server with generated and mutated requests",
                                   description=DESCRIPTION, epilog=EPILOG,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    _arguments(parser)
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m conformance.fuzz", description=DESCRIPTION,
                                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    _arguments(parser)
    return parser


def _arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_argument_group("target (neither: spawn the bundled reference server)")
    where.add_argument("--target", metavar="HOST:PORT", help="a server that is already running")
    where.add_argument("--spawn", metavar="CMD", help="start this server ({port}, {root}, {host}, "
                       "{scratch} substituted; it runs inside the fixture root); restarted when it dies")
    parser.add_argument("--examples", type=int, default=1000, metavar="N",
                        help="examples to generate (default 1000; shrinking comes on top)")
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default 0)")
    parser.add_argument("--budget", type=float, default=600.0, metavar="SECONDS",
                        help="time limit of the whole run, shrinking included (default 600)")
    parser.add_argument("--against", nargs="?", const="reference", metavar="HOST:PORT",
                        help="differential mode: also send every example here (no value: the "
                        "bundled reference server, spawned)")
    parser.add_argument("--out", type=Path, default=Path("fuzz-findings"), metavar="DIR",
                        help="where to write the findings as case files (default ./fuzz-findings)")
    parser.add_argument("--timeout", type=float, default=1.0, metavar="SECONDS",
                        help="per-example deadline for a request the server must finish (default 1)")
    parser.add_argument("--read-cap", type=int, default=128 * 1024, metavar="BYTES",
                        help="bytes read per connection at most (default 131072)")
    parser.add_argument("--shrink-seconds", type=float, default=30.0, metavar="SECONDS",
                        help="time spent shrinking each finding at most (default 30)")
    parser.add_argument("--cases", type=Path, help="the corpus whose fixture root is served (default: bundled)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the report as JSON")
    parser.add_argument("--no-verify", action="store_true",
                        help="do not replay the written cases with the runner")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress line")


def _parse_target(text: str):
    from ..wire import Target

    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"wants HOST:PORT (e.g. 127.0.0.1:8080 or [::1]:8080), not {text!r}")
    return Target(host, int(port))


def fixtures_info(cases_dir: Path) -> dict:
    """The canary and the outside file's bytes, from a corpus's fixtures.toml."""
    from ..docroot import Fixtures
    from ..escape import to_bytes
    from ..loader import fixtures_data

    fixtures = Fixtures(cases_dir)
    data, _, _ = fixtures_data(cases_dir)
    outside = b"".join(to_bytes(entry["data"]) * entry.get("repeat", 1) for entry in data.get("outside", ()))
    return {"secret": outside.strip(), "canary_path": fixtures.canary_path,
            "canary_data": fixtures.canary_data}


def fixture_paths(cases_dir: Path, read_cap: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(files a valid GET reads whole within ``read_cap``, files large enough to leave early)."""
    from ..docroot import Fixtures

    fixtures = Fixtures(cases_dir)
    small, large = [], []
    for path in fixtures.files():
        size = fixtures.size(path)
        if size <= read_cap - 4096:
            small.append(path)
        elif size >= 512 * 1024:
            large.append(path)
    # Hypothesis starts from (and shrinks towards) the first entry: a plain file, so
    # the first examples and the shrunk ones name an ordinary file, not a dot file.
    small.sort(key=lambda p: (p.startswith(".") or "/." in p, "/" in p, p != "file.txt", p))
    return tuple(small), tuple(large)


class _Progress:
    """A live line on the terminal; silent when stderr is not one."""

    def __init__(self, enabled: bool, total: int):
        self.enabled = enabled
        self.total = total

    def __call__(self, report, findings: int, elapsed: float) -> None:
        if not self.enabled:
            return
        rate = report.examples / elapsed if elapsed else 0.0
        sys.stderr.write(f"\r  {report.examples}/{self.total} examples, {findings} findings, "
                         f"{rate:.0f}/s, {elapsed:.0f} s ")
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\r" + " " * 72 + "\r")
            sys.stderr.flush()


def _terminate(signum, frame):
    raise KeyboardInterrupt  # unwinds like Ctrl-C, so spawned servers are stopped


def _spawn(template: str, root: Path):
    from ..spawn import SpawnedServer

    server = SpawnedServer.from_template(template, root)
    server.start()
    return server


def _reference_template() -> str:
    from ..resources import reference_server

    return (f"{shlex.quote(sys.executable)} {shlex.quote(str(reference_server()))} "
            "{port} --bind {host} --root {root} --quiet")


def main(args: argparse.Namespace) -> int:
    """Run ``fuzz`` with parsed arguments; returns the exit status."""
    from ..docroot import Fixtures
    from ..resources import cases_dir as bundled_cases
    from ..runner import preflight
    from ..spawn import SpawnError
    from ..wire import Target
    from .engine import FuzzConfig, Side, run, verify_cases, write_cases

    if args.target and args.spawn:
        print("conformance fuzz: give --target or --spawn, not both", file=sys.stderr)
        return EXIT_USAGE
    if args.examples < 1 or args.budget <= 0 or args.timeout <= 0 or args.read_cap < 4096:
        print("conformance fuzz: --examples, --budget and --timeout must be positive, --read-cap "
              "at least 4096", file=sys.stderr)
        return EXIT_USAGE
    cases = args.cases or bundled_cases()
    config = FuzzConfig(examples=args.examples, seed=args.seed, budget=args.budget, timeout=args.timeout,
                        read_cap=args.read_cap, shrink_seconds=args.shrink_seconds)
    info = fixtures_info(cases)
    paths = fixture_paths(cases, config.read_cap)
    servers = []
    signal.signal(signal.SIGTERM, _terminate)
    progress = _Progress(sys.stderr.isatty() and not args.quiet, config.examples)
    try:
        root = Fixtures(cases).cached_root()
        try:
            if args.target:
                side = Side(_parse_target(args.target))
                described = str(side.target)
            else:
                server = _spawn(args.spawn or _reference_template(), root)
                servers.append(server)
                side = Side(Target(server.host, server.port), server)
                described = f"spawned: {args.spawn or 'the bundled reference server'}"
            other = None
            if args.against:
                if args.against == "reference":
                    ref = _spawn(_reference_template(), root)
                    servers.append(ref)
                    other = Side(Target(ref.host, ref.port), ref, name="reference")
                else:
                    other = Side(_parse_target(args.against), name=args.against)
        except ValueError as exc:
            print(f"conformance fuzz: --target/--against {exc}", file=sys.stderr)
            return EXIT_USAGE
        except SpawnError as exc:
            print(f"conformance fuzz: {exc}", file=sys.stderr)
            return EXIT_TARGET
        for each in [side] + ([other] if other else []):
            problem = preflight(each.target, Fixtures(cases))
            if problem:
                print(f"conformance fuzz: {problem}", file=sys.stderr)
                return EXIT_TARGET
        try:
            report = run(config, side, info, paths, other, progress)
        finally:
            progress.close()
        write_cases(report, args.out, cases, str(side.target), info["secret"], args.seed)
        if not args.no_verify and not (report.stop_reason and "refuse" in report.stop_reason):
            verify_cases(report, args.out, side)
    except KeyboardInterrupt:
        print("\nconformance fuzz: interrupted", file=sys.stderr)
        return 130
    finally:
        for server in servers:
            server.stop()
    print(format_report(report, described, args, other))
    if args.json:
        args.json.write_text(json.dumps(report_json(report), indent=2) + "\n", encoding="utf-8")
    if report.error:
        return EXIT_USAGE
    return EXIT_FINDINGS if report.findings else EXIT_OK


def report_json(report) -> dict:
    """The report as plain JSON values (examples as escaped bytes)."""
    from ..escape import show

    data = asdict(report)
    for finding, raw in zip(data["findings"], report.findings):
        finding["example"] = {"data": show(raw.example.data, -1), "description": raw.example.describe()}
    return data


def format_report(report, described: str, args, other=None) -> str:
    """The text report: the run, each finding with its reproducer, the disagreement classes."""
    from ..escape import show
    from .differential import CLASSES, KNOWN
    from .invariants import KINDS

    lines = [
        f"fuzz: {described}, seed {args.seed}: {report.examples} examples, {report.shrink_calls} "
        f"shrink calls, {report.rounds} rounds in {report.elapsed:.1f} s "
        f"({report.examples / report.elapsed if report.elapsed else 0:.0f} examples/s)",
        f"stopped: {report.stop_reason}" + (f"; the server was restarted {report.restarts} times"
                                           if report.restarts else ""),
    ]
    if report.error:
        lines += ["", "internal error of the fuzzer:", report.error]
    if not report.findings:
        lines.append("no findings")
    for finding in report.findings:
        kind = KINDS.get(finding.kind)
        summary = kind.summary if kind else CLASSES.get(finding.kind[len("differ-"):], "")
        lines += [
            "",
            f"{finding.kind}: {summary}",
            f"  seen: {finding.detail}",
            f"  first after {finding.found_after} examples; {finding.count} examples broke it; "
            + ("shrunk" if finding.shrunk else "not shrunk (its round did not reach it)"),
            f"  example: {finding.example.describe()}",
            "  request: " + show(finding.example.data, 200).replace("\n", "\n           "),
            f"  reproduce: {finding.reproducer}",
        ]
        if finding.case_path:
            lines.append(f"  case: {finding.case_path}" + (f" (runner: {finding.runner_verdict})"
                                                         if finding.runner_verdict else ""))
        for problem in finding.problems:
            lines.append(f"  check: {problem}")
    if other is not None:
        lines += ["", f"differential against {other.name}: disagreements by class "
                  "(examples; known choices are counted, not findings)"]
        known_total = sum(report.known.values())
        for cls, text in CLASSES.items():
            lines.append(f"  {cls:<14} {report.classes.get(cls, 0):>7}  {text}")
        lines.append(f"  known choices: {known_total}")
        for name, count in sorted(report.known.items(), key=lambda kv: -kv[1]):
            lines.append(f"    {name:<22} {count:>7}  {KNOWN[name][0]}")
    if any(f.case_path for f in report.findings):
        lines += ["", f"case files: {args.out}/fuzz/ (check: python -m conformance check --cases {args.out})"]
    return "\n".join(lines)
