"""Recipes that start third-party HTTP servers on loopback from servers.toml.

Library use (the conformance runner)::

    recipes = load_recipes(DEFAULT_TOML)
    r = recipes["nginx"]
    if (why := r.missing()) is None:
        argv, env = r.render(port, root, scratch, host="127.0.0.1", repo=REPO)
        # start argv with env, no shell, in its own process group; wait for the port
        version = r.version()

``render`` writes the recipe's config templates into ``scratch``, builds what the
recipe builds (the Go file server, once, into a cache folder) and returns the
argument list and the *complete* environment for the child process.

Command line (manual use)::

    python tools/servers/recipes.py list      (or python -m conformance.recipes list)
    python tools/servers/recipes.py run nginx --root DIR [--port N]
    python tools/servers/recipes.py build go-fileserver

Standard library only (tomllib, or tomli before Python 3.11).
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

# One port picker and one way to stop a process group, for the runner and the recipes.
from .spawn import free_port, stop_group  # noqa: E402

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

# The recipes and their templates live in a checkout's tools/servers/; this module is
# in the package so that the runner's `matrix` command can use it.
REPO = Path(__file__).resolve().parent.parent
DEFAULT_TOML = REPO / "tools" / "servers" / "servers.toml"
DEFAULT_HOST = "127.0.0.1"
# Folders that hold servers on Debian but are not on a normal user's PATH.
SBIN_PATH = ("/usr/local/sbin", "/usr/sbin", "/sbin")
PLACEHOLDERS = ("port", "root", "host", "scratch", "repo", "cache", "output")
_PLACEHOLDER_RE = re.compile(r"\{(" + "|".join(PLACEHOLDERS) + r")\}")
VERSION_TIMEOUT = 10.0
BUILD_TIMEOUT = 300.0

__all__ = [
    "Recipe", "RecipeError", "Setup", "Build", "load_recipes", "substitute",
    "cache_dir", "readable_by", "wait_for_port", "DEFAULT_TOML", "REPO",
]


class RecipeError(Exception):
    """A recipe file is malformed, or a recipe cannot be prepared."""


def cache_dir() -> Path:
    """Per-user build cache: $HTTP10_CACHE, else $XDG_CACHE_HOME/~/.cache + /http10-conformance."""
    if os.environ.get("HTTP10_CACHE"):
        return Path(os.environ["HTTP10_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "http10-conformance"


def substitute(text: str, values: Mapping[str, str]) -> str:
    """Replace ``{port}``, ``{root}``, ... in ``text``; any other braces stay as they are."""

    def one(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in values:
            raise RecipeError(f"placeholder {{{name}}} has no value here")
        return str(values[name])

    return _PLACEHOLDER_RE.sub(one, text)


@dataclass(frozen=True)
class Setup:
    template: Path  # absolute
    output: str     # relative to scratch


@dataclass(frozen=True)
class Build:
    command: tuple[str, ...]
    output: str
    sources: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Recipe:
    name: str
    language: str
    command: tuple[str, ...]
    setup: tuple[Setup, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    requires: tuple[str, ...] = ()
    requires_files: tuple[str, ...] = ()
    check: tuple[str, ...] = ()
    missing_hint: str = ""
    search_path: tuple[str, ...] = ()
    build: Build | None = None
    version_command: tuple[str, ...] = ()
    version_pattern: str = ""
    runs_as: str = ""
    notes: str = ""
    source: Path = DEFAULT_TOML

    # -- lookup --------------------------------------------------------------
    def _static_values(self, repo: Path | str | None = None) -> dict[str, str]:
        return {"repo": str(repo or REPO), "cache": str(cache_dir()), "host": DEFAULT_HOST}

    def _extra_path(self) -> list[str]:
        dirs: list[str] = []
        for pattern in self.search_path:
            dirs.extend(sorted(glob.glob(os.path.expanduser(pattern)), reverse=True))
        return [*SBIN_PATH, *dirs]

    def which(self, program: str) -> str | None:
        """Find ``program`` on PATH, then /usr/sbin, /sbin, then the recipe's search_path."""
        if os.sep in program:
            return program if os.access(program, os.X_OK) and os.path.isfile(program) else None
        found = shutil.which(program)
        if found:
            return found
        return shutil.which(program, path=os.pathsep.join(self._extra_path()))

    def _resolve_argv(self, argv: Sequence[str]) -> list[str]:
        argv = list(argv)
        if argv and os.sep not in argv[0]:
            found = self.which(argv[0])
            if found:
                argv[0] = found
        return argv

    def missing(self, repo: Path | str | None = None) -> str | None:
        """Why this recipe cannot run here (``None`` if it can)."""
        values = self._static_values(repo)
        reasons: list[str] = []
        for program in self.requires:
            if self.which(program) is None:
                reasons.append(f"{program} not found")
        for f in self.requires_files:
            path = substitute(f, values)
            if not os.path.exists(path):
                reasons.append(f"{path} not found")
        if not reasons and self.check:
            argv = self._resolve_argv([substitute(a, values) for a in self.check])
            try:
                proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                                      timeout=VERSION_TIMEOUT)
                if proc.returncode != 0:
                    reasons.append(f"check failed: {shlex.join(argv)}")
            except (OSError, subprocess.TimeoutExpired) as exc:
                reasons.append(f"check failed: {shlex.join(argv)}: {exc}")
        if not reasons:
            return None
        reason = "; ".join(reasons)
        return f"{reason} ({self.missing_hint})" if self.missing_hint else reason

    def version(self, repo: Path | str | None = None) -> str:
        """The server's version as its own tool reports it; "unknown" if it cannot say."""
        if not self.version_command:
            return "unknown"
        argv = self._resolve_argv([substitute(a, self._static_values(repo)) for a in self.version_command])
        try:
            proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                                  timeout=VERSION_TIMEOUT)
        except (OSError, subprocess.TimeoutExpired):
            return "unknown"
        out = (proc.stdout + b"\n" + proc.stderr).decode("utf-8", "replace")
        if self.version_pattern:
            m = re.search(self.version_pattern, out)
            if not m:
                return "unknown"
            return (m.group(1) if m.groups() else m.group(0)).strip()
        lines = [line.strip() for line in out.splitlines() if line.strip()]
        return lines[0] if lines else "unknown"

    def access_problem(self, root: str | os.PathLike[str]) -> str | None:
        """When started as root, a server with ``runs_as`` reads ``root`` as that user:
        the reason it could not (a 0700 folder on the way, such as /root or pytest's
        temporary folders), or None. Serving then gives 403 or 404 for every file."""
        if not self.runs_as or not hasattr(os, "geteuid") or os.geteuid() != 0:
            return None
        problem = readable_by(root, self.runs_as)
        return f"{self.name} serves as {self.runs_as}: {problem}" if problem else None

    # -- build and render ----------------------------------------------------
    def ensure_built(self, repo: Path | str | None = None) -> None:
        """Run the recipe's build if its output is missing or older than a source."""
        if self.build is None:
            return
        values = self._static_values(repo)
        output = Path(substitute(self.build.output, values))
        sources = [Path(substitute(s, values)) for s in self.build.sources]
        if output.exists():
            newest = max((s.stat().st_mtime for s in sources if s.exists()), default=0.0)
            if output.stat().st_mtime >= newest:
                return
        output.parent.mkdir(parents=True, exist_ok=True)
        # Build beside the output and rename it into place, so that two runs building
        # at once (pytest-xdist, parallel matrices) never start a half-written binary.
        partial = output.with_name(f".{output.name}.{os.getpid()}.partial")
        values = {**values, "output": str(partial)}
        env = dict(os.environ)
        env.update({k: substitute(v, values) for k, v in self.build.env.items()})
        argv = self._resolve_argv([substitute(a, values) for a in self.build.command])
        try:
            proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                                  env=env, timeout=BUILD_TIMEOUT)
            if proc.returncode != 0:
                raise RecipeError(f"{self.name}: build failed ({proc.returncode}): {shlex.join(argv)}\n"
                                  + proc.stderr.decode("utf-8", "replace"))
            if not partial.exists():
                raise RecipeError(f"{self.name}: build made no {{output}} ({partial}): {shlex.join(argv)}")
            os.replace(partial, output)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise RecipeError(f"{self.name}: build failed: {shlex.join(argv)}: {exc}") from exc
        finally:
            if partial.exists():
                partial.unlink()

    def render(self, port: int, root: str | os.PathLike[str], scratch: str | os.PathLike[str],
               host: str = DEFAULT_HOST, repo: str | os.PathLike[str] | None = None,
               ) -> tuple[list[str], dict[str, str]]:
        """Render config templates into ``scratch``; return (argv, full environment).

        ``root`` and ``scratch`` are made absolute. The environment is a copy of
        ``os.environ`` with the recipe's ``env`` on top.
        """
        values = {
            "port": str(int(port)),
            "root": os.path.abspath(root),
            "scratch": os.path.abspath(scratch),
            "host": host,
            "repo": os.path.abspath(repo) if repo else str(REPO),
            "cache": str(cache_dir()),
        }
        Path(values["scratch"]).mkdir(parents=True, exist_ok=True)
        self.ensure_built(values["repo"])
        for s in self.setup:
            try:
                text = s.template.read_text(encoding="utf-8")
            except OSError as exc:
                raise RecipeError(f"{self.name}: template {s.template}: {exc}") from exc
            out = Path(values["scratch"]) / s.output
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(substitute(text, values), encoding="utf-8")
        argv = self._resolve_argv([substitute(a, values) for a in self.command])
        env = dict(os.environ)
        env.update({k: substitute(v, values) for k, v in self.env.items()})
        return argv, env


# -- loading ---------------------------------------------------------------------
_KEYS = {"language", "command", "setup", "env", "requires", "requires_files", "check",
         "missing_hint", "search_path", "build", "version_command", "version_pattern",
         "runs_as", "notes"}


def _strings(where: str, value: object, key: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RecipeError(f"{where}: '{key}' must be a list of strings")
    return tuple(value)


def _table_of_strings(where: str, value: object, key: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise RecipeError(f"{where}: '{key}' must be a table of strings")
    return dict(value)


def _recipe(name: str, t: dict, source: Path) -> Recipe:
    where = f"{source}: [server.{name}]"
    unknown = set(t) - _KEYS
    if unknown:
        raise RecipeError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    for key in ("language", "command"):
        if key not in t:
            raise RecipeError(f"{where}: '{key}' is required")
    command = _strings(where, t["command"], "command")
    if not command:
        raise RecipeError(f"{where}: 'command' is empty")
    setups = []
    for i, s in enumerate(t.get("setup", [])):
        if not isinstance(s, dict) or set(s) != {"template", "output"}:
            raise RecipeError(f"{where}: setup[{i}] must be {{ template = ..., output = ... }}")
        if os.path.isabs(s["output"]) or ".." in Path(s["output"]).parts:
            raise RecipeError(f"{where}: setup[{i}].output must stay inside the scratch folder")
        setups.append(Setup(template=(source.parent / s["template"]).resolve(), output=s["output"]))
    build = None
    if "build" in t:
        b = t["build"]
        if not isinstance(b, dict) or not {"command", "output"} <= set(b) or set(b) - {"command", "output", "sources", "env"}:
            raise RecipeError(f"{where}: build must be {{ command, output[, sources, env] }}")
        build = Build(command=_strings(where, b["command"], "build.command"), output=str(b["output"]),
                      sources=_strings(where, b.get("sources", []), "build.sources"),
                      env=_table_of_strings(where, b.get("env", {}), "build.env"))
    for key in ("language", "missing_hint", "version_pattern", "runs_as", "notes"):
        if key in t and not isinstance(t[key], str):
            raise RecipeError(f"{where}: '{key}' must be a string")
    if t.get("version_pattern"):
        try:
            re.compile(t["version_pattern"])
        except re.error as exc:
            raise RecipeError(f"{where}: version_pattern: {exc}") from exc
    return Recipe(
        name=name,
        language=t["language"],
        command=command,
        setup=tuple(setups),
        env=_table_of_strings(where, t.get("env", {}), "env"),
        requires=_strings(where, t.get("requires", []), "requires"),
        requires_files=_strings(where, t.get("requires_files", []), "requires_files"),
        check=_strings(where, t.get("check", []), "check"),
        missing_hint=t.get("missing_hint", ""),
        search_path=_strings(where, t.get("search_path", []), "search_path"),
        build=build,
        version_command=_strings(where, t.get("version_command", []), "version_command"),
        version_pattern=t.get("version_pattern", ""),
        runs_as=t.get("runs_as", ""),
        notes=t.get("notes", "").strip(),
        source=source,
    )


def load_recipes(path: str | os.PathLike[str] = DEFAULT_TOML) -> dict[str, Recipe]:
    """Read a servers.toml; recipes keep the file's order. Raises RecipeError naming file and key."""
    source = Path(path).resolve()
    try:
        with open(source, "rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        raise RecipeError(f"{source}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError(f"{source}: {exc}") from exc
    servers = data.get("server")
    if not isinstance(servers, dict) or not servers:
        raise RecipeError(f"{source}: no [server.NAME] tables")
    return {name: _recipe(name, t, source) for name, t in servers.items()}


# -- helpers for whoever starts the servers ---------------------------------------
def readable_by(path: str | os.PathLike[str], user: str) -> str | None:
    """Whether ``user`` could read ``path`` (by mode bits along the way); a reason if not.

    Only meaningful when the server is started as root and drops to ``user``.
    """
    try:
        import grp
        import pwd
        pw = pwd.getpwnam(user)
    except (ImportError, KeyError):
        return None
    uid, gids = pw.pw_uid, {pw.pw_gid, *(g.gr_gid for g in grp.getgrall() if user in g.gr_mem)}

    def allowed(st: os.stat_result, bits: int) -> bool:  # bits: r=4, x=1 (other position)
        if st.st_uid == uid:
            return st.st_mode & (bits << 6) != 0
        if st.st_gid in gids:
            return st.st_mode & (bits << 3) != 0
        return st.st_mode & bits != 0

    p = Path(os.path.abspath(path))
    for d in [*reversed(p.parents), p]:
        try:
            st = d.stat()
        except OSError as exc:
            return f"{d}: {exc}"
        need = 1 if d != p else (5 if stat.S_ISDIR(st.st_mode) else 4)
        if not allowed(st, need):
            return f"{d} is not {'readable' if need != 1 else 'searchable'} by {user} (mode {stat.filemode(st.st_mode)})"
    return None


def wait_for_port(host: str, port: int, deadline: float, proc: subprocess.Popen | None = None) -> bool:
    """Poll connect() until the port accepts, the process exits, or time.monotonic() passes deadline."""
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.02)
    return False


# -- command line ----------------------------------------------------------------
def _cmd_list(recipes: dict[str, Recipe]) -> int:
    rows = []
    for r in recipes.values():
        why = r.missing()
        rows.append((r.name, r.language, "installed" if why is None else "missing",
                     r.version() if why is None else why))
    w = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print(f"{row[0]:<{w[0]}}  {row[1]:<{w[1]}}  {row[2]:<{w[2]}}  {row[3]}")
    return 0


def _interrupt(signum, frame):  # SIGTERM/SIGHUP stop the server like Ctrl-C does
    raise KeyboardInterrupt


def _cmd_run(recipes: dict[str, Recipe], args: argparse.Namespace) -> int:
    # A shell's background job inherits SIGINT ignored: take it back, and SIGTERM too,
    # so that any of them stops the server's process group before we exit.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)
    r = recipes[args.name]
    why = r.missing()
    if why:
        print(f"{r.name}: cannot run: {why}", file=sys.stderr)
        return 2
    root = os.path.abspath(args.root)
    if not os.path.isdir(root):
        print(f"{root}: not a folder", file=sys.stderr)
        return 2
    port = args.port or free_port(args.host)
    own_scratch = args.scratch is None
    scratch = args.scratch or tempfile.mkdtemp(prefix=f"http10-{r.name}-")
    proc: subprocess.Popen | None = None
    stopping = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    try:
        os.chmod(scratch, 0o777)
        problem = r.access_problem(root)
        if problem:
            print(f"warning: {problem}", file=sys.stderr)
        argv, env = r.render(port, root, scratch, host=args.host)
        print(f"{r.name} {r.version()}: {shlex.join(argv)}", file=sys.stderr)
        # No signal may land between the start and `proc` being set: hold them.
        signal.pthread_sigmask(signal.SIG_BLOCK, stopping)
        try:
            proc = subprocess.Popen(argv, env=env, cwd=scratch, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, stopping)
        if not wait_for_port(args.host, port, time.monotonic() + args.timeout, proc):
            print(f"{r.name}: not listening on {args.host}:{port} after {args.timeout}s"
                  f" (exit code {proc.poll()}); scratch folder kept: {scratch}", file=sys.stderr)
            own_scratch = False
            return 1
        print(f"http://{args.host}:{port}/   (Ctrl-C stops it)", flush=True)
        while proc.poll() is None:
            time.sleep(0.2)
        print(f"{r.name} exited with {proc.returncode}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        for signum in stopping:
            signal.signal(signum, signal.SIG_IGN)  # a second Ctrl-C must not orphan it
        if proc is not None:
            stop_group(proc)
        if own_scratch:
            shutil.rmtree(scratch, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--recipes", default=str(DEFAULT_TOML), help="recipe file (default: %(default)s)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="each recipe, installed or missing, and its version")
    run = sub.add_parser("run", help="start one server in the foreground on loopback")
    run.add_argument("name")
    run.add_argument("--root", required=True, help="document root to serve")
    run.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    run.add_argument("--host", default=DEFAULT_HOST)
    run.add_argument("--scratch", help="scratch folder (default: a temporary one, removed after)")
    run.add_argument("--timeout", type=float, default=20.0, help="seconds to wait for the port")
    build = sub.add_parser("build", help="run a recipe's build step (e.g. go-fileserver)")
    build.add_argument("name")
    args = ap.parse_args(argv)
    try:
        recipes = load_recipes(args.recipes)
        if args.cmd == "list":
            return _cmd_list(recipes)
        if args.name not in recipes:
            print(f"unknown recipe {args.name!r}; known: {', '.join(recipes)}", file=sys.stderr)
            return 2
        if args.cmd == "build":
            why = recipes[args.name].missing()
            if why:
                print(f"{args.name}: cannot build: {why}", file=sys.stderr)
                return 2
            recipes[args.name].ensure_built()
            return 0
        return _cmd_run(recipes, args)
    except RecipeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
