"""``conformance grade``: parse the arguments and dispatch; the work is in the other modules.

    conformance grade SUBMISSIONS/ [--rubric FILE|lab] [--out DIR] [--jobs N] [--format gradescope|prairielearn]
    conformance grade --one FOLDER --format gradescope --results FILE     (inside a platform's container)
    conformance grade --check-rubric FILE
    conformance grade --gradescope-bundle DIR [--rubric FILE|lab]
    conformance grade merge RESULT.json|FOLDER ... [--out DIR]

The main command line wires it in with ``add_parser(subparsers)`` and ``main(args)``;
``python -m conformance.grade`` runs it alone.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

__all__ = ["add_parser", "add_arguments", "main", "standalone"]

EXIT_OK, EXIT_GRADER_ERROR, EXIT_USAGE = 0, 1, 2
MAX_JOBS = 16

DESCRIPTION = """\
Grades every submission under SUBMISSIONS (one folder each, the folder name is its id)
with a rubric (default: the built-in 'lab' rubric, 'python3 server.py {port}'). Each
submission is copied, built if the rubric says so, started in isolation and run
through the rubric's cases; OUT/<id>/result.json and feedback.md are written for each,
and OUT/grades.csv, cases.csv and summary.html for the class.
"""

EPILOG = """\
examples:
  conformance grade submissions/                       the lab rubric, results in grades/
  conformance grade submissions/ --rubric lab2.toml --jobs 2 --out grades/
  conformance grade --check-rubric lab2.toml
  conformance grade --gradescope-bundle autograder/ --rubric lab2.toml
  conformance grade merge results/*/result.json --out class/

exit status:
  0  every submission has a result (a student's failing server is a result, not an error)
  1  the grader itself failed on some submission (its result says why; its score is 0)
  2  usage error or an invalid rubric (nothing was run)
"""


class UsageError(Exception):
    pass


def _terminate(signum, frame):
    # SIGTERM unwinds like Ctrl-C, so every worker and its submission are stopped.
    raise KeyboardInterrupt


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="*", metavar="SUBMISSIONS",
                        help="the folder of submissions; or 'merge' followed by result files or folders")
    parser.add_argument("--rubric", default="lab", metavar="FILE|NAME", help="rubric file, or 'lab' (the default)")
    parser.add_argument("--out", type=Path, default=Path("grades"), metavar="DIR",
                        help="where the results go (default: grades/)")
    parser.add_argument("--jobs", "-j", type=int, default=1, metavar="N",
                        help="submissions graded at once (default 1); grades do not depend on it")
    parser.add_argument("--format", dest="formats", action="append", default=[],
                        choices=["gradescope", "prairielearn"],
                        help="also write this platform's results.json per submission (repeatable)")
    parser.add_argument("--one", action="store_true",
                        help="SUBMISSIONS is a single submission (as inside a platform's container)")
    parser.add_argument("--name", help="with --one: the submission's id (default: the folder's name)")
    parser.add_argument("--results", type=Path, metavar="FILE",
                        help="with --one and one --format: write the platform's results.json here")
    parser.add_argument("--check-rubric", type=Path, metavar="FILE", help="validate a rubric and exit")
    parser.add_argument("--gradescope-bundle", type=Path, metavar="DIR",
                        help="write a Gradescope autograder folder (setup.sh, run_autograder, the rubric)")
    parser.add_argument("--cases", type=Path, help="another corpus folder (default: the bundled one)")
    parser.add_argument("--keep", action="store_true", help="keep each submission's temporary folder")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress lines")


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``grade`` command to a ``parser.add_subparsers()`` object."""
    parser = subparsers.add_parser("grade", help="grade a folder of submissions with a rubric",
                                   description=DESCRIPTION, epilog=EPILOG,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return parser


def _load_rubric(name, cases):
    from .rubric import RubricError, load_rubric

    try:
        return load_rubric(name, cases)
    except RubricError as exc:
        raise UsageError(f"invalid rubric: {exc}") from None


def cmd_check_rubric(args) -> int:
    rubric = _load_rubric(args.check_rubric, args.cases)
    counted = len(rubric.server_cases()) + len(rubric.client_cases())
    print(f"conformance grade: {rubric.source}: OK, {len(rubric.items)} items, {rubric.total:g} points, "
          f"{counted} cases")
    for item in rubric.items:
        extra = " (extra credit)" if item.extra_credit else ""
        print(f"  {item.id:<16} {item.points:>6g}{extra}  {len(item.cases):>3} {item.kind} cases  {item.scoring}")
    return EXIT_OK


def _corpus_hash(cases) -> str:
    from ..resources import cases_dir
    from .submission import tree_hashes

    return tree_hashes(Path(cases or cases_dir()))[0]


def _progress(args, lock, done, total, result):
    if args.quiet:
        return
    with lock:
        print(f"grade: [{done}/{total}] {result['submission']}: {result['score']:g}/{result['max_score']:g} "
              f"{result['status']}{(': ' + result['reason']) if result['reason'] else ''} ({result['duration']:g} s)",
              file=sys.stderr, flush=True)


def cmd_grade(args) -> int:
    from . import isolate
    from .merge import write_class_outputs
    from .submission import Job, grade_submission, runner_has_budget, stop_all

    if len(args.paths) != 1:
        raise UsageError("give one SUBMISSIONS folder (or 'merge' and result files)")
    base = Path(args.paths[0])
    if not base.is_dir():
        raise UsageError(f"{base} is not a folder")
    if not 1 <= args.jobs <= MAX_JOBS:
        raise UsageError(f"--jobs wants 1 to {MAX_JOBS}, not {args.jobs}")
    if args.results and not (args.one and len(args.formats) == 1):
        raise UsageError("--results needs --one and exactly one --format")
    rubric = _load_rubric(args.rubric, args.cases)
    # Every submission is graded with this copy, even if the file changes during the run.
    args.out.mkdir(parents=True, exist_ok=True)
    snapshot = args.out / "rubric.toml"
    snapshot.write_text(rubric.text, encoding="utf-8")
    rubric = _load_rubric(snapshot, args.cases)
    rubric_file = str(snapshot.resolve())
    if args.one:
        folders = [(args.name or base.resolve().name, base)]
    else:
        folders = sorted((p.name, p) for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))
        loose = sorted(p.name for p in base.iterdir() if not p.is_dir() and not p.name.startswith("."))
        if loose and not args.quiet:
            print(f"grade: not folders, left out: {', '.join(loose[:10])}", file=sys.stderr)
        if not folders:
            raise UsageError(f"{base} holds no submission folder")
    isolate.set_subreaper()
    common = {"rubric": rubric_file, "cases_dir": str(args.cases) if args.cases else None,
              "corpus_hash": _corpus_hash(args.cases), "runner_budget": runner_has_budget(), "keep": args.keep}
    slots = list(range(args.jobs))
    uids = [isolate.UidClaim() for _ in slots]
    lock = threading.Lock()
    counter = {"done": 0}
    start = time.monotonic()

    def one(entry):
        name, folder = entry
        out = args.out if args.one else args.out / name
        files = {fmt: str(out / f"{fmt}.json") for fmt in args.formats}
        if args.results:
            files = {args.formats[0]: str(args.results)}
        with lock:
            slot = slots.pop()
        try:
            job = Job(submission=str(folder.resolve()), name=name, out=str(out), slot=slot,
                      uid=uids[slot].uid, platform_files=files, **common)
            result = grade_submission(job, rubric)
        finally:
            with lock:
                slots.append(slot)
                counter["done"] += 1
                done = counter["done"]
        _progress(args, lock, done, len(folders), result)
        return result

    with contextlib.ExitStack() as stack:
        if os.geteuid() == 0:
            try:
                for claim in uids:
                    stack.enter_context(claim)
            except (OSError, RuntimeError) as exc:
                raise UsageError(f"cannot reserve a user id per slot: {exc}") from None
        previous = signal.signal(signal.SIGTERM, _terminate)
        try:
            with ThreadPoolExecutor(max_workers=args.jobs) as pool:
                futures = [pool.submit(one, entry) for entry in folders]
                try:
                    results = [f.result() for f in futures]
                except KeyboardInterrupt:
                    for f in futures:
                        f.cancel()
                    stop_all()
                    raise
        finally:
            signal.signal(signal.SIGTERM, previous)
    if not args.one:
        write_class_outputs(results, args.out)
    if not args.quiet:
        print(f"grade: {len(results)} submissions in {time.monotonic() - start:.1f} s at --jobs {args.jobs}; "
              f"results in {args.out}", file=sys.stderr)
    if args.one:
        return EXIT_OK  # the platforms read the file; the grader ran
    return EXIT_GRADER_ERROR if any(r["status"] == "grader-error" for r in results) else EXIT_OK


def cmd_merge(args) -> int:
    from .merge import merge

    if len(args.paths) < 2:
        raise UsageError("merge wants result files or folders: conformance grade merge RESULTS... --out DIR")
    try:
        results = merge([Path(p) for p in args.paths[1:]], args.out)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if not args.quiet:
        print(f"grade: merged {len(results)} results into {args.out}", file=sys.stderr)
    return EXIT_OK


def cmd_bundle(args) -> int:
    from .bundle import BundleError, write_bundle

    rubric = _load_rubric(args.rubric, args.cases)
    try:
        write_bundle(args.gradescope_bundle, rubric)
    except BundleError as exc:
        raise UsageError(str(exc)) from None
    if not args.quiet:
        print(f"grade: Gradescope autograder written to {args.gradescope_bundle} "
              "(zip its contents, not the folder)", file=sys.stderr)
    return EXIT_OK


def main(args) -> int:
    """Run ``grade`` for parsed arguments (see ``add_arguments``); returns the exit status."""
    try:
        if args.check_rubric:
            return cmd_check_rubric(args)
        if args.gradescope_bundle:
            return cmd_bundle(args)
        if args.paths[:1] == ["merge"]:
            return cmd_merge(args)
        return cmd_grade(args)
    except UsageError as exc:
        print(f"conformance grade: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("\nconformance grade: interrupted", file=sys.stderr)
        return 130


def standalone(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="conformance grade", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return main(parser.parse_args(sys.argv[1:] if argv is None else argv))

