"""An API error becomes one line that says what to use instead, whatever the server put in it."""

from __future__ import annotations

from mirror.errors import InvalidParam, UnknownBenchmark, api_error_from_body, first_mirror_error


def test_the_line_names_the_benchmarks_the_key_can_use():
    error = api_error_from_body(404, {"error": "Unknown benchmark 'x'.", "code": "unknown_benchmark",
                                      "available": [{"id": "synthetic-face-v1", "title": "Faces"},
                                                    {"id": "passport-pad-v1"}]})
    assert isinstance(error, UnknownBenchmark) and error.exit_code == 2
    assert str(error) == "Unknown benchmark 'x'. (unknown_benchmark); available: synthetic-face-v1, passport-pad-v1"


def test_hostile_choices_stay_one_short_printable_line():
    values = ["ok", "bad\nline", "\x1b[31mred", "x" * 65, 7, None, *[f"v{i}" for i in range(20)]]
    error = api_error_from_body(400, {"error": "Bad value.", "code": "invalid_param", "allowed": values,
                                      "available": "not a list"})
    text = str(error)
    assert isinstance(error, InvalidParam)
    assert text == "Bad value. (invalid_param); allowed: ok, v0, v1, v2, v3, v4, v5, v6, v7, v8 (+11 more)"
    assert text.isprintable()


def test_no_choices_no_suffix():
    assert str(api_error_from_body(401, {"error": "Bad key.", "code": "unauthorized"})) == "Bad key. (unauthorized)"
    assert str(api_error_from_body(500, "<html>oops</html>")) == "HTTP 500 (server_error)"


def test_a_fatal_error_of_one_worker_reaches_the_caller_as_itself():
    revoked = api_error_from_body(401, {"error": "Revoked key.", "code": "unauthorized"})
    group = BaseExceptionGroup("workers", [ExceptionGroup("inner", [ValueError("x"), revoked]), KeyError("k")])
    assert first_mirror_error(group) is revoked
    bug = KeyError("k")
    assert first_mirror_error(ExceptionGroup("workers", [ExceptionGroup("inner", [bug])])) is bug
