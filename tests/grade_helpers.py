"""The test class for `conformance grade`: one folder per submission, built at run time.

Broken variants of tests/student_server.py (each a folder with a server.py that
passes its --defect), the reference server and client (full marks), and the bad
submissions every grader meets: a server that forks a daemon which keeps a port,
one that never listens, a syntax error, a hard-coded port, an empty folder, one
that exits at once, one that prints megabytes.

Slow or mis-diagnosed defects (no-close, never-answers, crash-on-empty-request)
are left out until the runner's per-case budget and server-log changes land.
"""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RUBRIC = HERE / "grade_class" / "rubric.toml"

# defect -> the item of tests/grade_class/rubric.toml its mistake belongs to
VARIANTS = {
    "no-404": "not-found",
    "head-sends-body": "protocol",
    "traversal": "security",
    "sequential": "concurrency",
    "crash-on-bad-request-line": "robustness",
    "lf-line-ends": "protocol",
    "no-lab-form": "files",
    "text-mode": "files",
    "truncate-large": "files",
    # Classic mistakes that once set the run time or killed the server at start-up;
    # the runner now bounds and attributes them.
    "no-close": "files",
    "crash-on-empty-request": "robustness",
    "answers-once": "files",
}

WRAPPER = """\
import os, runpy, sys
sys.argv = [sys.argv[0], *sys.argv[1:], "--defect", {defect!r}]
runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)), "student_server.py"), run_name="__main__")
"""

# Serves correctly, but first forks a daemon (double fork + setsid) that keeps a
# listening socket of its own and the inherited one, and outlives the server.
DAEMON = """\
import os, runpy, socket, sys, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        keep = socket.socket()
        keep.bind(("127.0.0.1", 0))
        keep.listen(1)
        for _ in range(3000):
            time.sleep(0.1)
        os._exit(0)
    os._exit(0)
os.wait()
runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)), "student_server.py"), run_name="__main__")
"""

NEVER_LISTENS = """\
import time
print("starting up...", flush=True)
for _ in range(6000):
    time.sleep(0.1)
"""

SYNTAX_ERROR = """\
import socket

def main(:
    pass
"""

HARD_CODED = """\
import os, runpy, sys
sys.argv = [sys.argv[0], "8080"]   # ignores the port it is given
runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)), "student_server.py"), run_name="__main__")
"""

EXITS_AT_ONCE = """\
import sys
print("usage: server.py", file=sys.stderr)
sys.exit(3)
"""

CHATTY = """\
import sys
line = "x" * 1023 + "\\n"
for _ in range(200 * 1024):   # 200 MB to stdout, past the file size limit
    sys.stdout.write(line)
"""

MEMORY_HOG = """\
import time
hog = bytearray(400 * 1024 * 1024)   # 400 MB, touched, before it ever listens
for i in range(0, len(hog), 4096):
    hog[i] = 1
for _ in range(600):
    time.sleep(0.1)
"""

FILLS_DISK = """\
block = b"x" * (1 << 20)
with open("big.bin", "wb") as out:
    for _ in range(100_000):          # until the file size limit stops it
        out.write(block)
"""

# Sequential (a stalled client blocks everyone) on its first two starts (the
# grader's launch check and the first run), correct from the third: the stalled-
# client case fails once and passes on the retry, so it must be marked flaky.
FLAKY = """\
import os, runpy, sys
here = os.path.dirname(os.path.abspath(__file__))
count_file = os.path.join(here, "starts.txt")
starts = int(open(count_file).read()) if os.path.exists(count_file) else 0
with open(count_file, "w") as fh:
    fh.write(str(starts + 1))
extra = ["--defect", "sequential"] if starts < 2 else []
sys.argv = [sys.argv[0], *sys.argv[1:], *extra]
runpy.run_path(os.path.join(here, "student_server.py"), run_name="__main__")
"""

# name -> (expected status, a phrase its reason contains)
BAD = {
    "daemon": ("graded", ""),
    "never-listens": ("did-not-start", "did not listen"),
    "syntax-error": ("did-not-start", "exited at once with status 1"),
    "hard-coded-port": ("did-not-start", "8080"),
    "empty": ("incomplete-submission", "empty"),
    "no-server-py": ("incomplete-submission", "no server.py"),
    "exits-at-once": ("did-not-start", "exited at once with status 3"),
    "chatty": ("did-not-start", "file size limit"),
    "memory-hog": ("did-not-start", "more than 200 MB of memory"),
    "fills-disk": ("did-not-start", "file size limit"),
    "flaky": ("graded", ""),
}


def _student(folder: Path, main: str) -> None:
    folder.mkdir(parents=True)
    shutil.copy(HERE / "student_server.py", folder / "student_server.py")
    (folder / "server.py").write_text(main, encoding="utf-8")


def build_class(dest: Path, variants=tuple(VARIANTS), bad=tuple(BAD), reference: bool = True) -> Path:
    """Write the class under ``dest``; returns it."""
    dest.mkdir(parents=True, exist_ok=True)
    if reference:
        ref = dest / "reference"
        ref.mkdir()
        shutil.copy(ROOT / "reference" / "server.py", ref / "server.py")
        shutil.copy(ROOT / "reference" / "client.py", ref / "client.py")
    for defect in variants:
        _student(dest / f"defect-{defect}", WRAPPER.format(defect=defect))
    sources = {"daemon": DAEMON, "never-listens": NEVER_LISTENS, "syntax-error": SYNTAX_ERROR,
               "hard-coded-port": HARD_CODED, "exits-at-once": EXITS_AT_ONCE, "chatty": CHATTY,
               "memory-hog": MEMORY_HOG, "fills-disk": FILLS_DISK, "flaky": FLAKY}
    for name in bad:
        folder = dest / name
        if name == "empty":
            folder.mkdir()
        elif name == "no-server-py":
            folder.mkdir()
            (folder / "README.txt").write_text("my server is in the other folder\n")
            (folder / "myserver.py").write_text("print('hi')\n")
        else:
            _student(folder, textwrap.dedent(sources[name]))
    return dest
