"""``helpers.wait_until``, the one way the tests wait for asynchronous results (issue 12)."""

from __future__ import annotations

import itertools
import time

import pytest
from helpers import WaitTimeout, wait_until


def test_returns_the_first_value_that_satisfies_the_condition() -> None:
    counter = itertools.count(1)
    assert (
        wait_until(lambda: next(counter), lambda n: n >= 3, timeout=5, describe="3", interval=0)
        == 3
    )
    assert next(counter) == 4  # no probe after the condition held


def test_gives_up_after_the_timeout_showing_what_was_last_seen() -> None:
    values = iter(["partial log", "still partial"] + ["the last reading"] * 1000)
    start = time.monotonic()
    with pytest.raises(WaitTimeout) as failure:
        wait_until(
            lambda: next(values),
            lambda text: "summary" in text,
            timeout=0.3,
            describe="the summary line",
            interval=0.05,
            context=lambda: "worker log tail",
        )
    assert 0.3 <= time.monotonic() - start < 5
    message = str(failure.value)
    assert message.startswith("the summary line: not so after 0.3 s; last seen: 'the last reading'")
    assert message.endswith("\nworker log tail")
    assert isinstance(failure.value, AssertionError)  # pytest reports it as a failed check


def test_listed_errors_mean_not_yet_and_others_stop_the_wait() -> None:
    attempts = itertools.count(1)

    def flaky_server() -> str:
        if next(attempts) < 3:
            raise ConnectionRefusedError(111, "Connection refused")
        return "ready"

    assert wait_until(flaky_server, timeout=5, describe="up", interval=0, retry_on=(OSError,)) == (
        "ready"
    )

    def died() -> str:
        raise AssertionError("the worker exited (1)")

    with pytest.raises(AssertionError, match="the worker exited") as failure:
        wait_until(died, timeout=60, describe="never", interval=0, retry_on=(OSError,))
    assert not isinstance(failure.value, WaitTimeout)

    def refused() -> str:
        raise ConnectionRefusedError(111, "Connection refused")

    with pytest.raises(WaitTimeout, match=r"last seen: ConnectionRefusedError: \[Errno 111\]"):
        wait_until(refused, timeout=0.1, describe="up", interval=0.02, retry_on=(OSError,))
