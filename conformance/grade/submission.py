"""Grading one submission: copy, build, start, run the cases, stop everything, write the result.

The work runs in a worker process of its own (``python -m conformance.grade.submission
SPEC.json``), started by ``grade_submission``: fresh and single-threaded, so it can
become the child subreaper and enter a network namespace of its own before any
thread exists (see ``isolate``). Phases, each bounded in time:

1. prepare: a temporary folder with a copy of the submission and a freshly built
   fixture root, owned by the submission's uid; hashes of its files;
2. check: an empty folder or a missing required file is "incomplete-submission";
3. build (optional): ``sh -c BUILD`` in the copy, as the submission's user, within
   ``build_seconds``; a failure is "did-not-build" with its output;
4. launch: start the server once on a port of ours and wait ``startup_seconds`` for
   it to listen; an exit, a signal (file size, CPU), another port or silence is
   "did-not-start" with the reason and its output;
5. run: the runner (``python -m conformance run --spawn SANDBOXED_START``) over the
   rubric's server cases; failed timing-sensitive cases run again up to
   ``retries`` times (a pass then is marked flaky); then the client cases;
6. stop: every process of the submission is killed (by uid, marker and as
   descendants of the subreaper) and its listening ports checked;
7. write: result.json, feedback.md and the platform files.

Whatever happens, a result is written; an exception of the grader itself is a
"grader-error" result with the reason, never a missing file.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import isolate
from .exporters import FORMATS
from .feedback import feedback_markdown
from .result import case_record, compare, make_result, read_result
from .rubric import Rubric, load_rubric
from .sandbox import GRADER_ENV, wrap

__all__ = ["Job", "grade_submission", "write_outputs", "error_result", "tree_hashes", "runner_has_budget"]

OUTPUT_CAP = 64 * 1024      # bytes of build / server output kept
MIB = 1024 * 1024
STOP_GRACE = 2.0            # seconds between SIGTERM and SIGKILL
POLL = 0.05
WORKER_MARGIN = 60.0        # seconds the parent waits beyond the phases' own budgets
MAX_FILES = 10_000          # files hashed per submission
SOURCE_SUFFIXES = (".py", ".js", ".mjs", ".rb", ".pl", ".sh", ".jar", ".php", ".class")
SIGNAL_REASONS = {
    signal.SIGXFSZ: "it wrote a file (its own output included) past the file size limit of {fsize:g} MB",
    signal.SIGXCPU: "it used more than {cpu} CPU seconds",
    signal.SIGKILL: "it was killed (the memory limit of {mem:g} MB, or a time limit)",
    signal.SIGSEGV: "it crashed (segmentation fault)",
    signal.SIGABRT: "it aborted",
}


@dataclass
class Job:
    """What the worker is asked to do; written as JSON for it."""

    submission: str              # the folder as handed in
    name: str                    # the submission's id (its folder name)
    out: str                     # where result.json and feedback.md go
    rubric: str                  # rubric file or built-in name
    cases_dir: str | None = None
    slot: int = 0                # parallel slot (names the temporary folder)
    uid: int | None = None       # the submission's user, when the grader is root
    corpus_hash: str = ""
    runner_budget: bool = False  # the runner has --budget
    platform_files: dict = field(default_factory=dict)  # format -> path
    keep: bool = False
    marker: str = ""             # in the environment of every process of the submission


# ---------------------------------------------------------------------------
# Helpers shared by the parent and the worker


def tree_hashes(folder: Path) -> tuple[str, dict[str, str]]:
    """(sha256 over the whole tree, {relative path: sha256}) of regular files."""
    files: dict[str, str] = {}
    for path in sorted(Path(folder).rglob("*")):
        if len(files) >= MAX_FILES:
            break
        if path.is_file() and not path.is_symlink():
            digest = hashlib.sha256()
            with open(path, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(block)
            files[path.relative_to(folder).as_posix()] = digest.hexdigest()
    whole = hashlib.sha256("".join(f"{k}\0{v}\n" for k, v in files.items()).encode()).hexdigest()
    return whole, files


def runner_has_budget() -> bool:
    """Whether this runner's ``run`` takes ``--budget`` (asked once per class run)."""
    try:
        out = subprocess.run([sys.executable, "-m", "conformance", "run", "--help"], capture_output=True,
                             text=True, timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "--budget" in out


def write_outputs(result: dict, out: Path, platform_files: dict | None = None) -> None:
    """result.json and feedback.md in ``out`` (the previous result kept as result.prev.json)."""
    out.mkdir(parents=True, exist_ok=True)
    previous = out / "result.json"
    if previous.exists():
        try:
            old = read_result(previous)
            result["previous"] = compare(old, result)
            previous.replace(out / "result.prev.json")
        except ValueError:
            pass
    text = json.dumps(result, indent=1, ensure_ascii=False) + "\n"
    tmp = out / "result.json.tmp"
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(out / "result.json")
    (out / "feedback.md").write_text(feedback_markdown(result), encoding="utf-8")
    for fmt, path in (platform_files or {}).items():
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(FORMATS[fmt](result), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def error_result(rubric: Rubric, name: str, reason: str, **extra) -> dict:
    return make_result(rubric, name, status="grader-error", reason=reason, **extra)


# ---------------------------------------------------------------------------
# The worker


class _Worker:
    def __init__(self, job: Job, rubric: Rubric):
        self.job = job
        self.rubric = rubric
        self.limits = rubric.limits
        self.protections = isolate.Protections()
        self.marker = job.marker or uuid.uuid4().hex
        self.uid: int | None = None
        self.gid: int | None = None
        self.tmp: Path | None = None
        self.started = time.monotonic()
        self.leftovers: list[str] = []   # processes found after a phase ended, e.g. daemons
        self.killed = 0

    # -- setup ------------------------------------------------------------

    def isolate(self) -> None:
        p = self.protections
        p.note("temporary copy", True, "the submission and a fresh fixture root are copied to a folder of their own")
        p.note("session and process group", True, "every process starts its own session; its group is stopped")
        p.note("child subreaper", *isolate.set_subreaper())
        p.note("resource limits", True,
               f"no core files; {self.limits.cpu_seconds} CPU s, files up to {self.limits.file_size_mb:g} MB, "
               f"{self.limits.open_files} open files per process")
        p.note("memory watch", Path("/proc/self/status").exists(),
               f"all its processes together up to {self.limits.memory_mb:g} MB resident, checked every "
               f"{isolate.MEMORY_POLL:g} s (no RLIMIT_AS: it breaks JVMs and Go)")
        if os.geteuid() == 0 and self.job.uid is not None:
            self.uid = self.gid = self.job.uid
            p.note("unprivileged user", True,
                   f"uid {self.uid} (one per parallel slot), with {self.limits.processes} processes at most")
        elif os.geteuid() != 0:
            p.note("unprivileged user", False, "the grader is not root, so the submission runs as the grader's user "
                   "and RLIMIT_NPROC is not set (it would count the grader's own processes)")
        else:
            p.note("unprivileged user", False, "no uid was reserved for this slot, so the submission runs as root")
        p.note("network namespace", *isolate.enter_network_namespace())

    def prepare(self) -> tuple[Path, Path]:
        from ..docroot import Fixtures

        self.tmp = Path(tempfile.mkdtemp(prefix=f"conformance-grade-{self.job.slot}-"))
        os.chmod(self.tmp, 0o711)
        (self.tmp / "grader").mkdir(mode=0o700)
        copy = self.tmp / "submission"
        shutil.copytree(self.job.submission, copy, symlinks=True)
        root = Fixtures(self.job.cases_dir).materialise(self.tmp / "fixtures")
        os.chmod(self.tmp / "fixtures", 0o755)
        if self.uid is not None:
            for base in (copy, self.tmp / "fixtures"):
                for dirpath, dirnames, filenames in os.walk(base):
                    for name in [dirpath, *(os.path.join(dirpath, n) for n in dirnames + filenames)]:
                        os.lchown(name, self.uid, self.gid)
        return copy, root

    def sandbox(self, cwd: Path) -> list[str]:
        lim = self.limits
        return wrap(sys.executable, cwd=str(cwd), marker=self.marker, uid=self.uid, gid=self.gid,
                    home=str(self.tmp / "submission"), cpu=lim.cpu_seconds, fsize=int(lim.file_size_mb * MIB),
                    nofile=lim.open_files, nproc=lim.processes if self.uid is not None else None)

    # -- phases -----------------------------------------------------------

    def run_step(self, argv: list[str], cwd: Path, log: Path, timeout: float) -> dict:
        """Run a command to its end (build), bounded; its output kept."""
        start = time.monotonic()
        with open(log, "wb") as out:
            proc = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        timed_out = False
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
        self.stop(proc)
        return {"command": " ".join(argv[argv.index("--") + 1:]),
                "exit_status": None if timed_out else proc.returncode, "timed_out": timed_out,
                "output": _tail(log), "duration": round(time.monotonic() - start, 2)}

    def sweep(self) -> int:
        """Kill whatever of the submission is still running; remember what it was. Returns how many still run."""
        found, killed, still = isolate.sweep(self.marker, self.uid, below=os.getpid())
        self.leftovers.extend(f for f in found if f not in self.leftovers)
        self.killed += killed
        return still

    def stop(self, proc: subprocess.Popen) -> None:
        """SIGTERM the group, SIGKILL it after the grace, then sweep whatever escaped it."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                proc.wait(STOP_GRACE)
                break
            except subprocess.TimeoutExpired:
                continue
        self.sweep()

    def launch(self, template: str, root: Path) -> dict:
        """Start the server once and see whether it listens on the port it is given."""
        port = _free_port()
        argv = self.sandbox(root) + ["--", *self.render(template, port=str(port), host="127.0.0.1")]
        log = self.tmp / "grader" / "launch.log"
        start = time.monotonic()
        with open(log, "wb") as out:
            proc = subprocess.Popen(argv, cwd=root, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        deadline = start + self.limits.startup_seconds
        ok, status = False, None
        with isolate.MemoryWatch(self.marker, self.uid, int(self.limits.memory_mb * MIB)) as watch:
            while time.monotonic() < deadline:
                status = proc.poll()
                if status is not None:
                    break
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                        ok = True
                        break
                except OSError:
                    time.sleep(POLL)
            others = [] if ok or status is not None else self.listening()
        self.stop(proc)
        elapsed = time.monotonic() - start
        reason = ""
        if not ok:
            if status is not None:
                reason = self.exit_reason(status, port, elapsed, watch.exceeded)
                output = _tail(log, 4096)
                if (log.stat().st_size >= self.limits.file_size_mb * MIB - OUTPUT_CAP
                        or "File too large" in output or "SIGXFSZ" in output):
                    reason += (f"; it reached the file size limit of {self.limits.file_size_mb:g} MB "
                               "(a file it wrote, or its own output: does it write or print in a loop?)")
            elif [p for p in others if p != port]:
                listed = ", ".join(map(str, [p for p in others if p != port]))
                reason = (f"the server listens on port {listed}, not on the port it was given ({port}): "
                          "take the port from the command line")
            else:
                reason = (f"the server did not listen on the port it was given ({port}) within "
                          f"{self.limits.startup_seconds:g} s")
        return {"command": " ".join(argv[argv.index("--") + 1:]), "ok": ok, "reason": reason, "port": port,
                "listening_on": others, "output": _tail(log), "duration": round(elapsed, 2)}

    def listening(self) -> list[int]:
        if self.uid is not None:
            return isolate.listening_ports(uid=self.uid)
        return isolate.listening_ports(pids=isolate.submission_pids(self.marker))

    def exit_reason(self, status: int, port: int, elapsed: float, memory: bool) -> str:
        lim = self.limits
        if memory:
            return f"the server was stopped: its processes used more than {lim.memory_mb:g} MB of memory"
        if status < 0:
            sig = -status
            why = SIGNAL_REASONS.get(sig, "")
            why = why.format(fsize=lim.file_size_mb, cpu=lim.cpu_seconds, mem=lim.memory_mb)
            name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else f"signal {sig}"
            return f"the server was killed by {name}" + (f": {why}" if why else "")
        if status in (126, 127):
            return f"the server could not be started (status {status}); see its output"
        when = "at once" if elapsed < 1.0 else f"after {elapsed:.1f} s"
        return f"the server exited {when} with status {status}, before listening on the port it was given ({port})"

    def render(self, template: str, **values: str) -> list[str]:
        """Split a rubric command; fill {submission}, {root} and the given values; anchor its files."""
        copy = self.tmp / "submission"
        fill = {"submission": str(copy), "root": str(self.tmp / "fixtures" / "root"), **values}
        out = []
        for arg in shlex.split(template):
            for key, value in fill.items():
                arg = arg.replace("{" + key + "}", value)
            if not arg.startswith("-") and not os.path.isabs(arg) and (copy / arg).exists():
                arg = str(copy / arg)
            out.append(arg)
        return out

    def missing_sources(self, template: str) -> list[str]:
        copy = self.tmp / "submission"
        return [arg for arg in shlex.split(template)
                if arg.endswith(SOURCE_SUFFIXES) and "{" not in arg and not os.path.isabs(arg)
                and not (copy / arg).exists()]

    def runner(self, args: list[str], report: Path, timeout: float) -> tuple[int | None, dict | None, str]:
        """Run ``python -m conformance ARGS -o REPORT``; (exit status or None if killed, report, stderr)."""
        argv = [sys.executable, "-m", "conformance", *args, "--format", "json", "-o", str(report), "-q"]
        err = self.tmp / "grader" / (report.stem + ".stderr")
        with open(err, "wb") as errfh:
            proc = subprocess.Popen(argv, cwd=self.tmp / "grader", stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=errfh, start_new_session=True)
            try:
                status = proc.wait(max(1.0, timeout))
            except subprocess.TimeoutExpired:
                status = None
                self.stop(proc)
        self.sweep()
        data = None
        if report.exists():
            try:
                data = json.loads(report.read_text(encoding="utf-8"))
            except ValueError:
                data = None
        return status, data, _tail(err, 4000)

    def server_cases(self, root: Path) -> tuple[dict[str, dict], dict]:
        """Run the server cases (with retries); case id -> record, and the runner's summary."""
        rubric = self.rubric
        ids = rubric.server_cases()
        # The runner splits this like a shell and fills {port} and {host} itself.
        template = " ".join(shlex.quote(a) for a in [*self.sandbox(root), "--", *self.render(
            rubric.start, port="{port}", host="{host}")])
        budget_end = time.monotonic() + rubric.limits.run_seconds
        records: dict[str, dict] = {}
        info: dict = {"attempts": 0}
        todo = list(ids)
        first_reason: dict[str, str] = {}
        for attempt in range(1 + rubric.retries):
            remaining = budget_end - time.monotonic()
            if not todo or remaining <= 1:
                break
            args = ["run", "--spawn", template, "--jobs", str(rubric.jobs)]
            if self.job.runner_budget:
                args += ["--budget", f"{max(1, int(remaining)):d}"]
            for cid in todo:
                args += ["--id", cid]
            report = self.tmp / "grader" / f"server-{attempt + 1}.json"
            status, data, stderr = self.runner(args, report, remaining + (30 if self.job.runner_budget else 0))
            info["attempts"] = attempt + 1
            if attempt == 0:
                info.update(exit_status=status, stderr=stderr,
                            incomplete=status in (None, 4) or bool((data or {}).get("run", {}).get("incomplete")),
                            incomplete_reason=(data or {}).get("run", {}).get("incomplete_reason", "")
                            or ("the runner did not finish within the run budget" if status is None else ""),
                            duration=(data or {}).get("run", {}).get("duration"))
                if status in (2, 3) or data is None:
                    info["fatal"] = status
                    return records, info
            got = {r["id"]: r for r in (data or {}).get("results", [])}
            for cid in todo:
                raw = got.get(cid)
                if raw is None:
                    if attempt == 0:
                        records[cid] = case_record({"id": cid, "verdict": "skip",
                                                    "reason": "not run: " + (info["incomplete_reason"]
                                                                             or "the runner stopped early")},
                                                   "server", self.items_of(cid))
                    continue
                if attempt == 0:
                    records[cid] = case_record(raw, "server", self.items_of(cid))
                    first_reason[cid] = raw.get("reason", "")
                elif raw.get("verdict") in ("pass", "info"):
                    rec = case_record(raw, "server", self.items_of(cid), attempts=attempt + 1, flaky=True)
                    rec["reason"] = f"failed on the first attempt ({first_reason.get(cid) or 'no reason'}), " \
                                    f"passed on attempt {attempt + 1}"
                    records[cid] = rec
                else:
                    records[cid]["attempts"] = attempt + 1
            todo = [cid for cid in rubric.timing_sensitive
                    if cid in records and records[cid]["verdict"] in ("fail", "error") and not records[cid]["flaky"]]
        return records, info

    def client_cases(self) -> tuple[dict[str, dict], dict]:
        rubric = self.rubric
        ids = rubric.client_cases()
        if not ids:
            return {}, {}
        missing = self.missing_sources(rubric.client)
        if missing:
            reason = f"no {', '.join(missing)} in the submission"
            return {cid: case_record({"id": cid, "area": "client", "verdict": "fail", "reason": reason},
                                     "client", self.items_of(cid)) for cid in ids}, {"missing": missing}
        template = " ".join(shlex.quote(a) for a in [*self.sandbox(self.tmp / "submission"), "--", *self.render(
            rubric.client, host="{host}", port="{port}", client_port="{client_port}", path="{path}")])
        args = ["client", "--spawn", template]
        for cid in ids:
            args += ["--id", cid]
        status, data, stderr = self.runner(args, self.tmp / "grader" / "client.json", rubric.limits.run_seconds)
        got = {r["id"]: r for r in (data or {}).get("results", [])}
        reason = "not run: the client cases did not finish" if status is None else f"not run: {stderr[-300:]}"
        records = {cid: case_record(got.get(cid) or {"id": cid, "area": "client", "verdict": "error",
                                                     "reason": reason}, "client", self.items_of(cid))
                   for cid in ids}
        return records, {"exit_status": status, "stderr": stderr}

    def items_of(self, cid: str) -> list[str]:
        return [i.id for i in self.rubric.items if cid in i.cases]

    def cleanup(self) -> dict:
        still = self.sweep()
        leftovers, killed = self.leftovers, self.killed
        ports = isolate.listening_ports() if self.protections["network namespace"]["available"] else (
            isolate.listening_ports(uid=self.uid) if self.uid is not None else [])
        if self.protections["network namespace"]["available"] and ports:
            # The namespace is ours alone: any listener left is the submission's (or dies with it).
            detail = f"ports still listening in its namespace: {ports}"
        elif ports:
            detail = f"ports still listening as uid {self.uid}: {ports}"
        else:
            detail = "no process of the submission is left and none of its ports listens"
        if leftovers:
            detail = f"{len(leftovers)} process(es) outlived the run and were killed; " + detail
        return {"leftover_processes": leftovers, "killed": killed, "still_running": still, "marker": self.marker,
                "uid": self.uid,
                "ports_free": not ports, "detail": detail}

    # -- the whole -----------------------------------------------------------

    def grade(self) -> dict:
        job, rubric = self.job, self.rubric
        common = {"isolation": self.protections}
        self.isolate()
        if not Path(job.submission).is_dir():
            return make_result(rubric, job.name, status="incomplete-submission",
                               reason="the submission is not a folder", **common)
        copy, root = self.prepare()
        digest, files = tree_hashes(copy)
        common["hashes"] = {"corpus": job.corpus_hash, "rubric": rubric.sha256, "submission": digest, "files": files}
        if not files:
            return make_result(rubric, job.name, status="incomplete-submission", reason="the submission folder is empty",
                               **common)
        missing = [f for f in rubric.required_files if not (copy / f).exists()]
        if missing:
            return self.incomplete(missing, files, common)
        build = None
        if rubric.build:
            build = self.run_step(self.sandbox(copy) + ["--", "sh", "-c", rubric.build], copy,
                                  self.tmp / "grader" / "build.log", rubric.limits.build_seconds)
            build["command"] = rubric.build
            if build["timed_out"] or build["exit_status"] != 0:
                why = (f"the build ran out of its {rubric.limits.build_seconds:g} s" if build["timed_out"]
                       else f"the build command exited with status {build['exit_status']}")
                return make_result(rubric, job.name, status="did-not-build", reason=why, build=build,
                                   cleanup=self.cleanup(), **common)
        missing = self.missing_sources(rubric.start)  # after the build, which may make them
        if missing:
            return self.incomplete(missing, files, common, build=build)
        launch = self.launch(rubric.start, root)
        if not launch["ok"]:
            return make_result(rubric, job.name, status="did-not-start", reason=launch["reason"], build=build,
                               launch=launch, cleanup=self.cleanup(), **common)
        with isolate.MemoryWatch(self.marker, self.uid, int(rubric.limits.memory_mb * MIB)) as watch:
            records, info = self.server_cases(root)
            client_records, client_info = self.client_cases()
        runner = {**info, "client": client_info, "memory_peak_mb": round(watch.peak / MIB, 1)}
        cleanup = self.cleanup()
        if info.get("fatal") is not None or (not records and rubric.server_cases()):
            status = info.get("fatal")
            text = info.get("stderr", "").strip().splitlines()
            why = text[-1] if text else f"the runner exited with status {status}"
            kind = "did-not-start" if status == 3 else "grader-error"
            return make_result(rubric, job.name, status=kind, reason=why.removeprefix("conformance: "),
                               build=build, launch=launch, runner=runner, cleanup=cleanup, **common)
        records.update(client_records)
        reason = ""
        if watch.exceeded:
            reason = f"the server was stopped during the run: it used more than {rubric.limits.memory_mb:g} MB"
        elif info.get("incomplete"):
            reason = "the run did not finish: " + (info.get("incomplete_reason") or "budget reached")
        cases = [records[cid] for cid in dict.fromkeys([*rubric.server_cases(), *rubric.client_cases()])
                 if cid in records]
        return make_result(rubric, job.name, status="graded", reason=reason, cases=cases, build=build,
                           launch=launch, runner=runner, cleanup=cleanup, **common)

    def incomplete(self, missing: list[str], files: dict, common: dict, **extra) -> dict:
        return make_result(self.rubric, self.job.name, status="incomplete-submission",
                           reason=f"no {', '.join(missing)} in the submission (it has: "
                           f"{', '.join(sorted(files)[:8])})", **common, **extra)

    def finish(self) -> None:
        if self.tmp is not None and not self.job.keep:
            shutil.rmtree(self.tmp, ignore_errors=True)


def _tail(path: Path, cap: int = OUTPUT_CAP) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - cap))
            data = fh.read()
    except OSError:
        return ""
    text = data.decode("utf-8", "replace")
    return (f"... ({size - cap} earlier bytes not kept)\n" if size > cap else "") + text


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_job(job: Job) -> dict:
    """Grade in this process (the worker); always returns a result and writes it."""
    if job.marker:
        os.environ[GRADER_ENV] = job.marker  # inherited by the runner and every sandbox before its exec
    rubric = load_rubric(job.rubric, job.cases_dir)
    worker = _Worker(job, rubric)
    try:
        result = worker.grade()
    except Exception as exc:  # the grader's own failure is a result too
        result = error_result(rubric, job.name, f"the grader failed: {type(exc).__name__}: {exc}",
                              isolation=worker.protections)
        result["runner"] = {"traceback": traceback.format_exc()[-4000:]}
    finally:
        worker.finish()
    result["duration"] = round(time.monotonic() - worker.started, 2)
    write_outputs(result, Path(job.out), job.platform_files)
    return result


def worker_timeout(rubric: Rubric) -> float:
    lim = rubric.limits
    return lim.build_seconds + lim.startup_seconds + 2 * lim.run_seconds + WORKER_MARGIN


_LIVE: dict[int, tuple[subprocess.Popen, Job]] = {}
_LIVE_LOCK = threading.Lock()  # guards _LIVE: grading threads add and remove, stop_all reads


def stop_all() -> None:
    """Kill every running worker and whatever it started (on Ctrl-C or SIGTERM of the class run)."""
    with _LIVE_LOCK:
        live = list(_LIVE.values())
    for proc, job in live:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        isolate.sweep(job.marker, job.uid, reap=False, grader=True)


def grade_submission(job: Job, rubric: Rubric) -> dict:
    """Grade one submission in a worker process of its own; a result is always written and returned."""
    start = time.monotonic()
    out = Path(job.out)
    out.mkdir(parents=True, exist_ok=True)
    job.marker = job.marker or uuid.uuid4().hex
    fd, name = tempfile.mkstemp(prefix="conformance-grade-job-", suffix=".json")
    os.close(fd)
    spec = Path(name)
    spec.write_text(json.dumps(asdict(job)), encoding="utf-8")
    log = out / "grader.log"
    reason = ""
    marker_before = (out / "result.json").stat().st_mtime_ns if (out / "result.json").exists() else None
    try:
        with open(log, "wb") as logfh:
            proc = subprocess.Popen([sys.executable, "-m", "conformance.grade.submission", str(spec)],
                                    stdin=subprocess.DEVNULL, stdout=logfh, stderr=subprocess.STDOUT,
                                    start_new_session=True)
            with _LIVE_LOCK:
                _LIVE[proc.pid] = (proc, job)
            try:
                proc.wait(worker_timeout(rubric))
            except subprocess.TimeoutExpired:
                reason = f"grading took longer than {worker_timeout(rubric):g} s and was stopped"
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
            finally:
                with _LIVE_LOCK:
                    _LIVE.pop(proc.pid, None)
        if not reason and proc.returncode != 0:
            reason = f"the grading worker exited with status {proc.returncode}: {_tail(log, 600).strip()[-600:]}"
    finally:
        spec.unlink(missing_ok=True)
    # Whatever escaped a worker that was killed, its runner and a sandbox that had
    # not exec'd yet included (their orphans are not ours to reap).
    isolate.sweep(job.marker, job.uid, reap=False, grader=True)
    written = (out / "result.json").exists() and (out / "result.json").stat().st_mtime_ns != marker_before
    if reason or not written:
        result = error_result(rubric, job.name, reason or "the grading worker wrote no result")
        result["duration"] = round(time.monotonic() - start, 2)
        write_outputs(result, out, job.platform_files)
        return result
    return read_result(out)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    job = Job(**json.loads(Path(argv[0]).read_text(encoding="utf-8")))
    run_job(job)
    return 0


if __name__ == "__main__":
    sys.exit(main())
