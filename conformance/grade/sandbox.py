"""The exec wrapper that confines one process of a submission (Linux, POSIX).

    python -m conformance.grade.sandbox [--uid N --gid N] [--cwd DIR] [--home DIR]
        [--cpu S] [--fsize BYTES] [--nofile N] [--nproc N] [--marker TOKEN] -- CMD ARGS...

Sets the resource limits (no core files, CPU seconds, file size, open files, and
the process count when it runs as its own user: RLIMIT_NPROC is not enforced for
root), changes to ``--cwd``, drops to ``--uid``/``--gid`` with no supplementary
groups, scrubs the environment (PATH, HOME, LANG, and ``CONFORMANCE_GRADE_MARKER``
so the grader can find every process of the submission, re-parented daemons
included), then execs CMD. The runner uses it as its ``--spawn`` command, so the
runner needs no change. No RLIMIT_AS: it breaks JVMs, Go and V8; the grader
watches resident memory instead.

Standard library only and nothing imported from the rest of the package: it runs
before every server start. Exit status 127 (with the reason on stderr) when CMD
cannot be executed, e.g. an interpreter the unprivileged user may not run.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys

__all__ = ["MARKER_ENV", "GRADER_ENV", "SAFE_PATH", "main", "wrap"]

MARKER_ENV = "CONFORMANCE_GRADE_MARKER"   # in every process of the submission (set at exec)
GRADER_ENV = "CONFORMANCE_GRADE_JOB"      # in the grader's own processes for that submission (worker, runner)
SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"


def wrap(python: str, *, cwd: str, marker: str, uid: int | None = None, gid: int | None = None,
         home: str | None = None, cpu: int | None = None, fsize: int | None = None,
         nofile: int | None = None, nproc: int | None = None) -> list[str]:
    """The argv prefix that runs a command through this wrapper (append ``--`` and CMD)."""
    argv = [python, "-m", "conformance.grade.sandbox", "--cwd", cwd, "--marker", marker]
    for flag, value in (("--uid", uid), ("--gid", gid), ("--home", home), ("--cpu", cpu),
                        ("--fsize", fsize), ("--nofile", nofile), ("--nproc", nproc)):
        if value is not None:
            argv += [flag, str(value)]
    return argv


def _limit(kind: int, value: int) -> None:
    soft, hard = resource.getrlimit(kind)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    resource.setrlimit(kind, (value, value))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="conformance.grade.sandbox", description=__doc__.split("\n\n")[0])
    parser.add_argument("--uid", type=int)
    parser.add_argument("--gid", type=int)
    parser.add_argument("--cwd")
    parser.add_argument("--home")
    parser.add_argument("--marker", default="")
    parser.add_argument("--cpu", type=int, help="RLIMIT_CPU, seconds")
    parser.add_argument("--fsize", type=int, help="RLIMIT_FSIZE, bytes")
    parser.add_argument("--nofile", type=int, help="RLIMIT_NOFILE")
    parser.add_argument("--nproc", type=int, help="RLIMIT_NPROC (only with --uid)")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command after --")
    try:
        _limit(resource.RLIMIT_CORE, 0)
        if args.cpu:
            _limit(resource.RLIMIT_CPU, args.cpu)
        if args.fsize:
            _limit(resource.RLIMIT_FSIZE, args.fsize)
        if args.nofile:
            _limit(resource.RLIMIT_NOFILE, args.nofile)
        if args.nproc and args.uid is not None:
            _limit(resource.RLIMIT_NPROC, args.nproc)
        if args.cwd:
            os.chdir(args.cwd)
        if args.uid is not None:
            os.setgroups([])
            os.setgid(args.gid if args.gid is not None else args.uid)
            os.setuid(args.uid)
        os.umask(0o022)
    except OSError as exc:
        print(f"sandbox: cannot set up the submission's process: {exc}", file=sys.stderr)
        return 126
    env = {
        "PATH": SAFE_PATH,
        "HOME": args.home or args.cwd or "/tmp",
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        MARKER_ENV: args.marker,
    }
    try:
        os.execvpe(command[0], command, env)
    except OSError as exc:
        who = f" as uid {args.uid}" if args.uid is not None else ""
        print(f"sandbox: cannot run {command[0]!r}{who}: {exc.strerror or exc}", file=sys.stderr)
        return 127
    return 127  # not reached


if __name__ == "__main__":
    sys.exit(main())
