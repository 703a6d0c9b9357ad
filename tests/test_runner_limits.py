"""How the runner bounds its waits and its memory: the watchdog learns from the server, the
dead server's log is read to its end, freed buffers go back (no sockets)."""

from __future__ import annotations

import os
import platform
import sys

import pytest

from conformance.runner import PROBE_TIMEOUT, StallWatch


def test_the_limits_shorten_after_the_server_answered_nobody_twice():
    stall = StallWatch(1.0)
    for _ in range(StallWatch.LEARN_AFTER):
        assert (stall.limit(), stall.probe_timeout()) == (StallWatch.FULL, PROBE_TIMEOUT)
        stall.record(answered=False)
    assert (stall.limit(), stall.probe_timeout()) == (StallWatch.LEARNED, StallWatch.LEARNED)


def test_a_server_that_answers_the_probe_as_often_keeps_the_full_limits():
    stall = StallWatch(1.0)
    for _ in range(StallWatch.LEARN_AFTER):
        stall.record(answered=False)
        stall.record(answered=True)
    assert stall.limit() == StallWatch.FULL


def test_the_limit_scales_with_the_timeout_scale():
    assert StallWatch(3.0).limit() == 3.0 * StallWatch.FULL



# -- the dying server's last words are read before its case is blamed ------------------------


def test_the_log_is_drained_once_every_writer_has_closed_the_pipe():
    from conformance.spawn import ServerLog

    log = ServerLog()
    read_end, write_end = os.pipe()
    log.follow(read_end)
    os.write(write_end, b"Traceback (most recent call last):\n")
    assert not log.drained(0.05)  # a writer still holds the pipe: bounded, not ended
    os.write(write_end, b"IndexError: list index out of range\n")
    os.close(write_end)
    assert log.drained(5)
    assert log.lines(0) == ["Traceback (most recent call last):", "IndexError: list index out of range"]


def test_a_log_that_never_followed_a_pipe_is_drained():
    from conformance.spawn import ServerLog

    assert ServerLog().drained(0)


# -- large response buffers go back to the system (tools/bench_broken.py prints the peak) -----


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the threshold is glibc's")
def test_glibc_takes_the_fixed_mmap_threshold():
    from conformance.memory import return_large_buffers

    assert return_large_buffers() is True


@pytest.mark.skipif(sys.platform.startswith("linux"), reason="elsewhere the call is not made")
def test_other_systems_are_left_alone():
    from conformance.memory import return_large_buffers

    assert return_large_buffers() is False
