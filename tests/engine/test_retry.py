"""The one retry loop (``mirror.api.retry``): what is retried, how often, how long 429s are waited out.

The attempts here are plain coroutines that end the way an HTTP answer would be sorted; the HTTP
callers themselves are tested against the emulators (test_fault_tolerance, test_deadlines,
test_unreachable, the detector tests).
"""

from __future__ import annotations

import random
import socket

import aiohttp
import pytest

from mirror.api.retry import Contact, Retry, Throttled, attempt_loop, retry_after
from mirror.config import Retries
from mirror.errors import TransportError

FAST = Retries(attempts=3, backoff=0.001, max_backoff=0.004, rate_limit_patience=0.2)


def test_the_back_off_doubles_up_to_its_cap_with_jitter():
    retries = Retries(backoff=0.25, max_backoff=15.0)
    rng = random.Random(5)
    for failures in range(1, 12):
        cap = min(15.0, 0.25 * 2 ** failures)
        delays = [retries.delay(failures, rng) for _ in range(200)]
        assert all(cap / 2 <= d <= cap for d in delays)
        assert max(delays) - min(delays) > cap / 4            # jittered: callers do not retry in step


class Attempts:
    """An attempt that ends each time the way the next entry says (an exception to raise, or a value)."""

    def __init__(self, *outcomes: object) -> None:
        self.outcomes = list(outcomes)
        self.calls = 0

    async def __call__(self) -> object:
        self.calls += 1
        outcome = self.outcomes.pop(0) if len(self.outcomes) > 1 else self.outcomes[0]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


async def test_retryable_answers_are_tried_attempts_times_then_their_own_error_is_raised():
    server_error = ValueError("the 5xx error itself")
    attempt = Attempts(Retry("HTTP 500", server_error))
    with pytest.raises(ValueError, match="the 5xx error itself"):
        await attempt_loop(attempt, FAST, what="/usage")
    assert attempt.calls == 3

    attempt = Attempts(Retry("HTTP 502"), Retry("HTTP 503"), "body")
    assert await attempt_loop(attempt, FAST, what="/usage") == "body" and attempt.calls == 3


async def test_network_failures_end_in_one_line_naming_the_request_and_the_attempts():
    attempt = Attempts(aiohttp.ServerDisconnectedError(), TimeoutError())
    with pytest.raises(TransportError) as failed:
        await attempt_loop(attempt, FAST, what="/items mgn_live_secret",
                           redact=lambda text: text.replace("mgn_live_secret", "***"))
    assert str(failed.value) == "/items ***: no answer before the deadline after 3 attempts; try again later"


async def test_a_fatal_answer_is_not_retried():
    attempt = Attempts(KeyError("bad key"), "never")
    with pytest.raises(KeyError):
        await attempt_loop(attempt, FAST, what="/usage")
    assert attempt.calls == 1


async def test_429s_are_waited_out_within_patience_and_are_not_failures():
    limited = RuntimeError("still rate limited")
    attempt = Attempts(*[Throttled(limited)] * 5, "ok")
    assert await attempt_loop(attempt, Retries(attempts=1, backoff=0.001, max_backoff=0.002), what="/x") == "ok"
    assert attempt.calls == 6

    forever = Attempts(Throttled(limited, retry_after=0.05))
    with pytest.raises(RuntimeError, match="still rate limited"):
        await attempt_loop(forever, FAST, what="/x")
    assert 2 <= forever.calls <= 6                              # Retry-After spaced them ~0.05 s apart


async def test_an_unsafe_request_stops_with_the_callers_error_instead_of_resending():
    attempt = Attempts(aiohttp.ClientPayloadError("cut short"), "never")
    with pytest.raises(LookupError, match="may have been taken"):
        await attempt_loop(attempt, FAST, what="/upload",
                           on_network_error=lambda exc: LookupError(f"may have been taken: {exc}"))
    assert attempt.calls == 1


def test_retry_after_reads_seconds_and_ignores_the_rest():
    assert retry_after("3") == 3.0 and retry_after("0.5") == 0.5 and retry_after("-2") == 0.0
    assert retry_after(None) is None and retry_after("Wed, 21 Oct 2015 07:28:00 GMT") is None


async def test_a_host_name_that_does_not_exist_is_one_line_at_first_contact():
    try:
        socket.getaddrinfo("margen-mirror-test.invalid", 80)
    except socket.gaierror as exc:
        if exc.errno != socket.EAI_NONAME:
            pytest.skip(f"this machine's resolver cannot say a name does not exist ({exc})")
    else:
        pytest.skip("this machine's resolver answers for .invalid names")
    contact = Contact("http://margen-mirror-test.invalid", "check --base-url")
    async with aiohttp.ClientSession() as session:
        async def attempt() -> None:
            async with session.get("http://margen-mirror-test.invalid/"):
                pass
        with pytest.raises(TransportError) as failed:
            await attempt_loop(attempt, FAST, what="/benchmarks", contact=contact)
    assert str(failed.value) == "cannot reach http://margen-mirror-test.invalid: no such host; check --base-url"
