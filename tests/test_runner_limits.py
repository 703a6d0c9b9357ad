"""How the runner bounds its waits: the watchdog learns from the server (pure: no sockets)."""

from __future__ import annotations

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

