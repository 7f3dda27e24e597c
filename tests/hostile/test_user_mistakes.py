"""Hostile or mistaken user input: each a one-line error, the right exit code, zero credits (ledger-checked).

The CLI is run as a user runs it; ``user_mistake`` (shared with scripts/chaos.py) checks the
stderr line, the exit code, the account's ledger before and after, and that the key is absent.
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "chaos"))

from chaos_scenarios import BENCH, user_mistake

from mirror.store import DestLock, Layout

_names = itertools.count()


@pytest.fixture
def acct(emulator):
    name = f"acct_user_{next(_names)}"
    return emulator.admin.create_key("live", balance=1000, rate_limit=100_000, account=name), name


def _sync(emulator, dest: Path, *words: str, benchmark: str = BENCH) -> list[str]:
    return ["sync", "--benchmark", benchmark, "--dest", str(dest), "--base-url", emulator.url, "--quiet", *words]


def _assert_held(outcome) -> None:
    assert outcome.held, outcome.failures()


def test_unknown_benchmark(emulator, acct, tmp_path):
    args = _sync(emulator, tmp_path / "d", benchmark="nope-v9")
    _assert_held(user_mistake("unknown benchmark", emulator, *acct, args, want_exit=2, want_text="nope-v9"))
    # ... and the same line names what the key can use instead
    _assert_held(user_mistake("unknown benchmark", emulator, *acct, args, want_exit=2,
                              want_text=f"available: {BENCH}"))


@pytest.mark.parametrize(("word", "text"), [("colour=red", "unknown filter"), ("kind=alien", "unknown value")])
def test_unknown_filter_key_or_value(emulator, acct, tmp_path, word, text):
    _assert_held(user_mistake(f"filter {word}", emulator, *acct, _sync(emulator, tmp_path / "d", word),
                              want_exit=2, want_text=text))


@pytest.mark.parametrize("body", ['dest = "x"\nbenchmark = [', 'dest = "x"\nspeed = 3\n', 'benchmark = "b"\n'])
def test_malformed_job_file(emulator, acct, tmp_path, body):
    job = tmp_path / "job.toml"
    job.write_text(body)
    args = ["sync", str(job), "--base-url", emulator.url, "--quiet"]
    _assert_held(user_mistake("malformed job file", emulator, *acct, args, want_exit=2, want_text="job file"))


def test_dest_that_is_a_file(emulator, acct, tmp_path):
    dest = tmp_path / "afile"
    dest.write_text("not a folder")
    _assert_held(user_mistake("DEST is a file", emulator, *acct, _sync(emulator, dest), want_exit=2,
                              want_text="is a file"))
    assert dest.read_text() == "not a folder"


def test_second_run_on_a_locked_dest(emulator, acct, tmp_path):
    dest = tmp_path / "d"
    with DestLock(Layout.prepare(dest)):
        _assert_held(user_mistake("locked DEST", emulator, *acct, _sync(emulator, dest), want_exit=6,
                                  want_text="in use by another"))


def test_revoked_key(emulator, acct, tmp_path):
    emulator.admin.revoke_key(acct[0])
    _assert_held(user_mistake("revoked key", emulator, *acct, _sync(emulator, tmp_path / "d"), want_exit=3,
                              want_text="unauthorized"))


def test_key_scoped_to_another_benchmark(emulator, tmp_path):
    name = f"acct_user_{next(_names)}"
    key = emulator.admin.create_key("live", balance=1000, rate_limit=100_000, account=name,
                                    benchmarks=["passport-pad-v1"])
    out = user_mistake("key of the wrong scope", emulator, key, name, _sync(emulator, tmp_path / "d"),
                       want_exit=2, want_text="unknown benchmark")
    _assert_held(out)


def test_test_tier_key_on_live_only_items(emulator, tmp_path):
    name = f"acct_user_{next(_names)}"
    key = emulator.admin.create_key("test", account=name, rate_limit=100_000)
    args = _sync(emulator, tmp_path / "d", "--rate-limit", "100000")
    out = user_mistake("test-tier key, live-only items", emulator, key, name, args,
                       want_exit=0, want_text="0 charged")   # not an error: a test key mirrors the free sample
    _assert_held(out)


@pytest.mark.parametrize("flag", ["--concurrency", "--rate-limit", "--retries", "--timeout"])
@pytest.mark.parametrize("value", ["0", "-4"])
def test_zero_or_negative_pace_flags_are_refused(emulator, acct, tmp_path, flag, value):
    """Zero is not "the default": it is a mistake, refused before a credit or a folder."""
    dest = tmp_path / "d"
    _assert_held(user_mistake(f"sync {flag} {value}", emulator, *acct, _sync(emulator, dest, flag, value),
                              want_exit=2, want_text=flag))
    assert not dest.exists()


@pytest.mark.parametrize("line", ["rate_limit = 0", "concurrency = 0", "rate_limit = -1", "concurrency = -8"])
def test_zero_or_negative_pace_in_a_job_file_is_refused(emulator, acct, tmp_path, line):
    dest = tmp_path / "d"
    job = tmp_path / "job.toml"
    job.write_text(f'benchmark = "{BENCH}"\ndest = "{dest}"\n{line}\n')
    args = ["sync", str(job), "--base-url", emulator.url, "--quiet"]
    _assert_held(user_mistake(f"job file {line}", emulator, *acct, args, want_exit=2,
                              want_text=line.split(" ")[0]))
    assert not dest.exists()


@pytest.mark.parametrize("args", [["verify", "{dest}", "--repair", "--rate-limit", "0"],
                                  ["score", "{dest}", "--detector", "synthetiq", "--concurrency", "0"],
                                  ["score", "{dest}", "--detector", "synthetiq", "--rate-limit", "0"],
                                  ["score", "{dest}", "--detector", "synthetiq", "--retries", "0"],
                                  ["score", "{dest}", "--detector", "synthetiq", "--timeout", "0"]])
def test_zero_pace_on_verify_and_score_is_refused(emulator, acct, tmp_path, args):
    dest = tmp_path / "d"
    dest.mkdir()
    argv = [a.format(dest=dest) for a in args] + ["--base-url", emulator.url]
    _assert_held(user_mistake(" ".join(args[:1] + args[-2:]), emulator, *acct, argv, want_exit=2,
                              want_text=args[-2]))
    assert list(dest.iterdir()) == []
