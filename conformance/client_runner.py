"""Judges an HTTP/1.0 client: the runner listens, plays the server, and watches.

For each client case a loopback port is opened, the client under test is started
with ``{host}``, ``{port}``, ``{client_port}``, ``{path}`` (and ``{output}``, a file
it may write the body to) substituted in its command, the scripted response is
played on the first connection, and the client's request, exit status and output
are judged by ``client_cases.judge_client``. Sockets, processes and clocks live
here only; every wait is bounded.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from . import escape, match
from .client_cases import ClientCase, ClientObservation, judge_client
from .model import Result
from .spawn import anchor, free_port, render_command, stop_group
from .wire import send_part

__all__ = ["run_client_case", "run_client_cases", "command_problem"]


# Endings of the script files an interpreter is given: such an argument that names
# no file means the command cannot work (python3 would exit 2 on every case).
SCRIPT_ENDINGS = (".py", ".js", ".mjs", ".rb", ".pl", ".php", ".sh", ".jar", ".class", ".lua", ".tcl")


def command_problem(template: str) -> str | None:
    """Why a client command cannot start at all, found before any case runs; None if it may.

    The program must be found (on PATH or as a path), and an argument that names a
    script must name an existing file, relative to where the runner was started.
    """
    argv = render_command(template, host="127.0.0.1", port="1", client_port="2", path="/", output="o")
    program = argv[0]
    if os.sep in program:
        if not os.path.exists(program):
            return f"the client command starts {program!r}, which does not exist"
        if not os.access(program, os.X_OK):
            return f"the client command starts {program!r}, which is not executable (chmod +x, or name its interpreter)"
    elif shutil.which(program) is None:
        return f"the client command starts {program!r}, which is not on PATH"
    for arg in argv[1:]:
        if arg.lower().endswith(SCRIPT_ENDINGS) and not arg.startswith("-") and not os.path.exists(arg):
            return (f"the client command names {arg!r}, which does not exist here "
                    f"({os.getcwd()}); relative paths are taken from where you run the command")
    return None

# A request head bigger than this is not a GET from a lab client.
MAX_REQUEST = 64 * 1024


# How often the scripted server looks up from accept() to see whether the client
# has already exited (then nobody will connect, and the case ends at once).
ACCEPT_POLL = 0.05


def _accept(listener: socket.socket, deadline: float, gone: threading.Event):
    while not gone.is_set():
        try:
            listener.settimeout(max(0.01, min(ACCEPT_POLL, deadline - time.monotonic())))
            return listener.accept()
        except socket.timeout:
            if time.monotonic() >= deadline:
                return None
        except OSError:
            return None
    return None


def _serve(case: ClientCase, listener: socket.socket, obs: ClientObservation, deadline: float,
           gone: threading.Event) -> None:
    """Accept one connection, read its request head, play the script (server side)."""
    accepted = _accept(listener, deadline, gone)
    if accepted is None:
        return
    conn, peer = accepted
    with conn:
        obs.connected = True
        obs.peer_port = peer[1]
        request = bytearray()
        try:
            while case.server.wait_for_head and b"\r\n\r\n" not in request and b"\n\n" not in request:
                conn.settimeout(max(0.1, min(2.0, deadline - time.monotonic())))
                chunk = conn.recv(4096)
                if not chunk:
                    break
                request += chunk
                if len(request) > MAX_REQUEST:
                    break
        except OSError:
            pass
        try:
            for part in case.server.parts:
                if part.pause_ms:
                    time.sleep(min(part.pause_ms / 1000, max(0.0, deadline - time.monotonic())))
                send_part(conn, part.payload, part.chunk, part.chunk_pause_ms / 1000, deadline)
            if case.server.ending == "stall":
                # Keep the connection open, sending nothing, until the client gives up.
                conn.settimeout(max(0.1, deadline - time.monotonic()))
                while conn.recv(4096):
                    pass
            elif case.server.ending == "reset":
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        except OSError:
            pass
        # Whatever else the client sent after its head (a body it should not send).
        try:
            conn.setblocking(False)
            while len(request) < MAX_REQUEST:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                request += chunk
        except OSError:
            pass
        obs.request = bytes(request)


def run_client_case(case: ClientCase, template: str, host: str = "127.0.0.1", scale: float = 1.0,
                    strict: bool = False) -> Result:
    """Run one client case; never raises on what the client does."""
    started = time.monotonic()
    limit = case.timeout * scale
    deadline = started + limit
    obs = ClientObservation(client_port=free_port(host))
    listener = None
    if case.server.listen:
        listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, 0))
        listener.listen(8)
        port = listener.getsockname()[1]
    else:
        port = free_port(host)  # nothing will listen there
    with tempfile.TemporaryDirectory(prefix="conformance-client-") as scratch:
        output = Path(scratch) / "body.out"
        argv = render_command(template, host=host, port=str(port), client_port=str(obs.client_port),
                              path=case.request_path, output=str(output))
        argv = [anchor(arg) for arg in argv]
        server = None
        gone = threading.Event()  # the client has exited
        if listener is not None:
            server = threading.Thread(target=_serve, args=(case, listener, obs, deadline, gone), daemon=True)
            server.start()
        try:
            proc = subprocess.Popen(argv, cwd=scratch, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, start_new_session=True)
        except OSError as exc:
            if listener is not None:
                listener.close()
            return _error_result(case, f"cannot start the client {argv[0]!r}: {exc.strerror or exc}")
        try:
            out, err = proc.communicate(timeout=max(0.1, deadline - time.monotonic()))
            obs.exit_status = proc.returncode
        except subprocess.TimeoutExpired:
            stop_group(proc, 2.0)
            out, err = proc.communicate()
        obs.stdout, obs.stderr = out, err
        gone.set()
        if server is not None:
            server.join(max(0.1, deadline + 1 - time.monotonic()))
        if listener is not None:
            listener.close()
        if "{output}" in template and output.exists():
            obs.output = output.read_bytes()
    obs.duration = time.monotonic() - started
    judgement = judge_client(case, obs)
    if case.server.listen and not obs.connected:
        said = obs.stderr.decode("utf-8", "replace").strip().splitlines()
        judgement.verdict = "fail"
        judgement.findings.insert(0, "the client never connected to the server it was given"
                                  + (f" (it said {said[-1][:200]!r})" if said else ""))
    return Result(
        id=case.id,
        title=case.title,
        area=case.area,
        level=case.level,
        requirements=list(case.requirements),
        verdict=match.final_verdict(judgement.verdict, case.level, strict),
        reason=judgement.findings[0] if judgement.findings else "",
        expected=[", ".join(case.checks)],
        actual=_summary(obs),
        findings=judgement.findings,
        duration=round(obs.duration, 3),
        sent=escape.show(b"".join(p.payload for p in case.server.parts), 2000),
        received=escape.show(obs.request, 2000),
        reproducer=" ".join(argv),
        hint=case.hint,
    )


def _summary(obs: ClientObservation) -> str:
    status = "was stopped at the deadline" if obs.exit_status is None else f"exited {obs.exit_status}"
    first = obs.request.split(b"\n", 1)[0][:120]
    said = obs.stderr.decode("utf-8", "replace").strip().splitlines()
    message = f", said {said[-1][:160]!r}" if said else ""
    request = f"sent {escape.show(first, 120)!r}" if obs.request else "sent nothing"
    return f"{request}, {status} after {obs.duration:.2f} s, wrote {len(obs.stdout)} bytes to stdout{message}"


def _error_result(case: ClientCase, message: str) -> Result:
    return Result(id=case.id, title=case.title, area=case.area, level=case.level,
                  requirements=list(case.requirements), verdict="error", reason=message, findings=[message])


def run_client_cases(cases, template: str, host: str = "127.0.0.1", scale: float = 1.0, strict: bool = False,
                     progress=None) -> list[Result]:
    results = []
    for number, case in enumerate(cases, 1):
        result = run_client_case(case, template, host, scale, strict)
        results.append(result)
        if progress:
            progress(result, number, len(cases))
    return results
