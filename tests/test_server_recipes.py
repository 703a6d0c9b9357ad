"""Every installed third-party server recipe starts on loopback and serves a file.

For each recipe in tools/servers/servers.toml whose server is installed (skipped with
the reason otherwise): render it for a small document root, start it in its own
process group on a free loopback port, wait for the port, GET /file.txt over a raw
socket, stop the group and check that nothing of it is left.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
START_DEADLINE = 30.0   # seconds to wait for the port (Java/Ruby/Node start in ~0.15 s)
IO_TIMEOUT = 10.0       # per socket operation
STOP_GRACE = 5.0


import conformance.recipes as recipes_mod  # noqa: E402
RECIPES = recipes_mod.load_recipes(recipes_mod.DEFAULT_TOML)


@pytest.fixture
def docroot_and_scratch(tmp_path_factory):
    """A document root and a scratch folder that a server dropping to www-data or
    nobody (as root) can read and write. pytest's own temporary folders are mode
    0700, so build them in a fresh world-searchable folder and remove it after."""
    base = Path(tempfile.mkdtemp(prefix="http10-recipes-"))
    try:
        os.chmod(base, 0o755)
        root = base / "root"
        (root / "dir").mkdir(parents=True)
        (root / "file.txt").write_bytes(b"hello\n")
        (root / "dir" / "index.html").write_bytes(b"<p>index</p>\n")
        for p in (root, root / "dir"):
            os.chmod(p, 0o755)
        for p in (root / "file.txt", root / "dir" / "index.html"):
            os.chmod(p, 0o644)
        scratch = base / "scratch"
        scratch.mkdir()
        os.chmod(scratch, 0o777)
        yield root, scratch
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _get(port: int, path: str, host_header: bool = True) -> bytes:
    """One HTTP/1.0 GET over a raw socket; everything until EOF (bounded)."""
    headers = f"Host: {HOST}:{port}\r\n" if host_header else ""
    with socket.create_connection((HOST, port), timeout=IO_TIMEOUT) as s:
        s.sendall(f"GET {path} HTTP/1.0\r\n{headers}\r\n".encode())
        chunks, total, deadline = [], 0, time.monotonic() + IO_TIMEOUT
        while time.monotonic() < deadline and total < 1 << 20:
            data = s.recv(65536)
            if not data:
                break
            chunks.append(data)
            total += len(data)
        return b"".join(chunks)


from conformance.spawn import group_alive as _group_alive  # noqa: E402


@pytest.mark.parametrize("name", list(RECIPES))
def test_recipe_serves_a_file(name, docroot_and_scratch):
    recipe = RECIPES[name]
    why = recipe.missing()
    if why:
        pytest.skip(f"{name}: {why}")
    root, scratch = docroot_and_scratch
    port = _free_port()
    argv, env = recipe.render(port, root, scratch, host=HOST, repo=REPO)
    log = open(scratch / "server-output.log", "wb")
    proc = subprocess.Popen(argv, env=env, cwd=scratch, stdin=subprocess.DEVNULL,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    pgid = proc.pid
    try:
        ok = recipes_mod.wait_for_port(HOST, port, time.monotonic() + START_DEADLINE, proc)
        if not ok:
            log.flush()
            output = (scratch / "server-output.log").read_text(errors="replace")
            errlog = scratch / "error.log"
            if errlog.exists():
                output += "\n--- error.log ---\n" + errlog.read_text(errors="replace")
            pytest.fail(f"{name} did not listen on {HOST}:{port} within {START_DEADLINE}s "
                        f"(exit code {proc.poll()}): {argv}\n{output}")
        # With a Host header, without one (plain HTTP/1.0, as the conformance cases
        # send it: Caddy answers an empty 200 if its site address names the host),
        # and a folder whose index.html is served.
        for path, host_header, expected in (("/file.txt", True, b"hello\n"),
                                            ("/file.txt", False, b"hello\n"),
                                            ("/dir/", False, b"<p>index</p>\n")):
            response = _get(port, path, host_header)
            what = f"{name}: GET {path} {'with' if host_header else 'without'} Host"
            head, sep, body = response.partition(b"\r\n\r\n")
            assert sep, f"{what}: no header block in {response[:200]!r}"
            status = head.split(b"\r\n", 1)[0].split()
            assert status[1:2] == [b"200"], f"{what}: status line {head.splitlines()[0]!r}"
            assert body == expected, f"{what}: body {body[:200]!r}"
    finally:
        try:
            os.killpg(pgid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=STOP_GRACE)
        except subprocess.TimeoutExpired:
            pass
        deadline = time.monotonic() + STOP_GRACE
        while _group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.02)
        if _group_alive(pgid):
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=STOP_GRACE)
        log.close()
    # Outside finally so a failure above is not masked: the whole group is gone.
    deadline = time.monotonic() + STOP_GRACE
    while _group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _group_alive(pgid), f"{name}: process group {pgid} survived SIGTERM"
    with pytest.raises(OSError):
        socket.create_connection((HOST, port), timeout=1).close()


# -- the recipe module itself, no server needed ------------------------------------
def test_placeholders_leave_other_braces_alone():
    text = "server { listen {host}:{port}; root {root}; } #{RUBY_VERSION} ${Version}"
    out = recipes_mod.substitute(text, {"host": "127.0.0.1", "port": "8080", "root": "/d"})
    assert out == "server { listen 127.0.0.1:8080; root /d; } #{RUBY_VERSION} ${Version}"


def test_every_recipe_has_the_required_keys():
    assert len(RECIPES) >= 13
    languages = {r.language for r in RECIPES.values()}
    assert {"Python", "C", "Go", "JavaScript", "Java", "Ruby"} <= languages
    for r in RECIPES.values():
        assert r.command and r.version_command and r.notes, r.name
        assert r.requires or r.requires_files, r.name
        for s in r.setup:
            assert s.template.is_file(), f"{r.name}: {s.template}"


def test_render_writes_templates_and_substitutes(tmp_path):
    r = RECIPES["nginx"]
    argv, env = r.render(8080, tmp_path / "root", tmp_path / "scratch", host=HOST, repo=REPO)
    conf = (tmp_path / "scratch" / "nginx.conf").read_text()
    assert f"listen {HOST}:8080" in conf and f"root {tmp_path / 'root'};" in conf
    assert "{" in conf and "{port}" not in conf and "{scratch}" not in conf
    assert argv[-1] == str(tmp_path / "scratch" / "nginx.conf")
    assert env["PATH"] == os.environ["PATH"]
    argv, env = RECIPES["caddy"].render(8081, tmp_path / "root", tmp_path / "s2", repo=REPO)
    assert env["XDG_DATA_HOME"] == str(tmp_path / "s2" / "data")


def test_missing_names_the_reason(tmp_path):
    toml = tmp_path / "servers.toml"
    toml.write_text('[server.ghost]\nlanguage = "C"\ncommand = ["no-such-httpd-xyz", "{port}"]\n'
                    'requires = ["no-such-httpd-xyz"]\nmissing_hint = "not packaged"\n'
                    'version_command = ["no-such-httpd-xyz", "-v"]\n')
    r = recipes_mod.load_recipes(toml)["ghost"]
    assert r.missing() == "no-such-httpd-xyz not found (not packaged)"
    assert r.version() == "unknown"


def test_a_bad_recipe_file_names_file_and_key(tmp_path):
    toml = tmp_path / "servers.toml"
    toml.write_text('[server.bad]\nlanguage = "C"\ncomand = ["x"]\n')
    with pytest.raises(recipes_mod.RecipeError, match=r"servers\.toml: \[server\.bad\]: unknown key\(s\) comand"):
        recipes_mod.load_recipes(toml)
