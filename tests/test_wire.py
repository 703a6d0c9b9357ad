"""wire against tiny scripted servers on loopback: what it records, and that it is bounded."""

from __future__ import annotations

import socket
import threading
import time

from conformance.model import Connection, Part
from conformance.wire import EventBoard, Target, play


def serve_once(script) -> tuple[int, threading.Thread]:
    """Listen on a free port; run ``script(conn)`` for the first connection."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def run():
        with listener:
            listener.settimeout(10)
            conn, _ = listener.accept()
            with conn:
                script(conn)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return port, thread


def test_an_early_answer_is_kept_when_sending_uses_up_the_deadline():
    # The server answers at once, then neither reads nor closes: our 16 MiB request
    # cannot be sent, and the deadline passes while sending.
    def script(conn):
        conn.sendall(b"HTTP/1.0 413 Too Large\r\n\r\n")
        time.sleep(3)

    port, thread = serve_once(script)
    conn = Connection(parts=(Part(data=b"x" * 65536, repeat=256),), timeout=1.0)
    started = time.monotonic()
    obs = play(conn, Target("127.0.0.1", port), EventBoard([conn.name]))
    assert time.monotonic() - started < 2.5
    assert obs.received.startswith(b"HTTP/1.0 413")
    assert obs.end == "timeout"
    thread.join(5)


def test_events_and_half_close():
    def script(conn):
        request = b""
        while not request.endswith(b"\r\n\r\n"):
            request += conn.recv(100)
        assert conn.recv(100) == b""  # the client half-closed
        conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")

    port, thread = serve_once(script)
    conn = Connection(parts=(Part(data=b"GET / HTTP/1.0\r\n"), Part(data=b"\r\n", pause_ms=50)),
                      half_close=True, timeout=5.0)
    obs = play(conn, Target("127.0.0.1", port), EventBoard([conn.name]))
    assert obs.end == "closed"
    assert obs.received.endswith(b"\r\n\r\nok")
    events = obs.events
    assert events["main.connected"] <= events["main.part-1"] <= events["main.part-2"] <= events["main.sent"]
    assert events["main.sent"] <= events["main.first_byte"] <= events["main.complete"] <= events["main.done"]
    thread.join(5)


def test_a_refused_connection_is_an_outcome():
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()
    conn = Connection(parts=(Part(data=b"GET / HTTP/1.0\r\n\r\n"),), timeout=2.0)
    obs = play(conn, Target("127.0.0.1", port), EventBoard([conn.name]))
    assert obs.end == "refused"
    assert "refused" in obs.error
