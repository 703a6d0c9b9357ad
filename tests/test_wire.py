"""wire against tiny scripted servers on loopback: what it records, and that it is bounded."""

from __future__ import annotations

import socket
import threading
import time

from conformance.model import Connection, Part
from conformance.wire import HEAD_KEEP, CloseGrace, EventBoard, Target, play


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


def _read_head(conn) -> None:
    request = b""
    while b"\r\n\r\n" not in request:
        chunk = conn.recv(4096)
        if not chunk:
            return
        request += chunk


def test_a_complete_response_left_open_ends_after_the_grace_not_the_timeout():
    def script(conn):
        _read_head(conn)
        conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
        time.sleep(6)  # and never closes

    port, thread = serve_once(script)
    conn = Connection(parts=(Part(data=b"GET / HTTP/1.0\r\n\r\n"),), timeout=5.0)
    started = time.monotonic()
    obs = play(conn, Target("127.0.0.1", port), EventBoard([conn.name]))
    took = time.monotonic() - started
    assert obs.end == "open"
    assert obs.received.endswith(b"\r\n\r\nok")
    assert "main.complete" in obs.events
    assert CloseGrace.FULL <= took < 5.0


def test_a_head_answer_is_complete_at_its_empty_line():
    def script(conn):
        _read_head(conn)
        conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 1000\r\n\r\n")
        time.sleep(4)

    port, thread = serve_once(script)
    conn = Connection(parts=(Part(data=b"HEAD / HTTP/1.0\r\n\r\n"),), timeout=3.0)
    obs = play(conn, Target("127.0.0.1", port), EventBoard([conn.name]), grace=CloseGrace(0.2))
    assert obs.end == "open"


def test_without_framing_the_runner_reads_to_the_deadline():
    def script(conn):
        _read_head(conn)
        conn.sendall(b"HTTP/1.0 200 OK\r\n\r\nno length")
        time.sleep(3)

    port, thread = serve_once(script)
    conn = Connection(parts=(Part(data=b"GET / HTTP/1.0\r\n\r\n"),), timeout=1.0)
    obs = play(conn, Target("127.0.0.1", port), EventBoard([conn.name]))
    assert obs.end == "timeout"


def test_the_grace_shortens_once_a_server_shows_it_never_closes():
    grace = CloseGrace(1.0)
    for _ in range(CloseGrace.LEARN_AFTER):
        assert grace.seconds() == CloseGrace.FULL
        grace.record(False)
    assert grace.seconds() == CloseGrace.LEARNED
    # A server that closes as often as it leaves connections open keeps the full grace.
    for _ in range(CloseGrace.LEARN_AFTER):
        grace.record(True)
    assert grace.seconds() == CloseGrace.FULL


def test_the_grace_is_a_moment_once_a_server_has_closed_nothing():
    grace = CloseGrace(1.0)
    for _ in range(CloseGrace.NEVER_AFTER):
        grace.record(False)
    assert grace.seconds() == CloseGrace.NEVER
    grace.record(True)  # it does close, sometimes: the close may just be late
    assert grace.seconds() == CloseGrace.LEARNED


def test_an_unframed_response_waits_for_the_close_until_the_server_shows_it_never_closes():
    fresh = CloseGrace(1.0)
    assert fresh.idle() is None
    learned = CloseGrace(1.0)
    for _ in range(CloseGrace.LEARN_AFTER):
        learned.record(False)
    assert learned.idle() == CloseGrace.IDLE

    def script(conn):
        conn.recv(100)
        conn.sendall(b"a Simple-Response, ended by no close")
        time.sleep(12)

    port, thread = serve_once(script)
    conn = Connection(parts=(Part(data=b"GET /file.txt\r\n"),), timeout=10.0)
    obs = play(conn, Target("127.0.0.1", port), EventBoard([conn.name]), grace=learned)
    assert obs.end == "timeout"
    assert obs.received == b"a Simple-Response, ended by no close"
    # Ended by the pause after the last byte, far from the 10 s deadline.
    assert obs.events["main.done"] < 5.0


def _learned_grace() -> CloseGrace:
    grace = CloseGrace(1.0)
    for _ in range(CloseGrace.LEARN_AFTER):
        grace.record(False)
    return grace


def test_a_half_closed_connection_left_silent_ends_after_the_idle_time_once_learned():
    def script(conn):
        conn.recv(100)
        time.sleep(12)  # EOF not noticed: no answer, no close

    port, thread = serve_once(script)
    conn = Connection(parts=(Part(data=b"\r\n"),), half_close=True, timeout=10.0)
    obs = play(conn, Target("127.0.0.1", port), EventBoard([conn.name]), grace=_learned_grace())
    assert (obs.end, obs.received) == ("timeout", b"")
    assert obs.events["main.done"] < 5.0  # the idle time, far from the 10 s deadline


def test_a_half_closed_connection_is_waited_on_while_the_grace_has_learned_nothing():
    def script(conn):
        conn.recv(100)
        time.sleep(2.5)  # slow, but it answers
        conn.sendall(b"HTTP/1.0 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        time.sleep(3)

    port, thread = serve_once(script)
    conn = Connection(parts=(Part(data=b"\r\n"),), half_close=True, timeout=6.0)
    obs = play(conn, Target("127.0.0.1", port), EventBoard([conn.name]), grace=CloseGrace(0.2))
    assert obs.received.startswith(b"HTTP/1.0 400")


def test_an_answer_that_has_begun_is_not_cut_by_the_half_close_idle_time():
    def script(conn):
        conn.recv(100)
        conn.sendall(b"HTTP/1.0 400 Bad Request\r\nContent-Length: 4\r\n\r\n")
        time.sleep(1.5)  # longer than the idle time, shorter than the deadline
        conn.sendall(b"done")
        time.sleep(3)

    port, thread = serve_once(script)
    conn = Connection(parts=(Part(data=b"\r\n"),), half_close=True, timeout=6.0)
    obs = play(conn, Target("127.0.0.1", port), EventBoard([conn.name]), grace=_learned_grace())
    assert obs.received.endswith(b"\r\n\r\ndone")
    assert obs.end == "open"


def test_an_aborted_connection_is_reset_so_a_blocked_server_is_freed():
    tcp_close, tcp_close_wait = 7, 8  # Linux's TCP states, first byte of TCP_INFO
    listener = socket.create_server(("127.0.0.1", 0))
    with listener:
        client = socket.create_connection(listener.getsockname())
        server_side, _ = listener.accept()
    with server_side:
        board = EventBoard(["main"])
        board.register(client)
        board.abort("the test ends it")
        client.close()
        # After a FIN alone the server's socket waits in CLOSE_WAIT, and a server
        # blocked sending into a full window waits for its zero-window probes; the
        # reset closes it at once.
        state = tcp_close_wait
        for _ in range(100):
            state = server_side.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0]
            if state == tcp_close:
                break
            time.sleep(0.05)
        assert state == tcp_close


def test_an_endless_body_costs_no_memory_past_the_keep_limit():
    total = 8 * 1024 * 1024

    def script(conn):
        _read_head(conn)
        conn.sendall(b"HTTP/1.0 200 OK\r\n\r\n")
        block = b"x" * 65536
        for _ in range(total // len(block)):
            conn.sendall(block)

    port, thread = serve_once(script)
    conn = Connection(parts=(Part(data=b"GET / HTTP/1.0\r\n\r\n"),), timeout=10.0)
    obs = play(conn, Target("127.0.0.1", port), EventBoard([conn.name]), keep=HEAD_KEEP)
    assert obs.end == "closed"
    assert len(obs.received) == HEAD_KEEP
    assert obs.received_total == total + len(b"HTTP/1.0 200 OK\r\n\r\n")
    thread.join(5)
