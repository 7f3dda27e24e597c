"""Fixtures for the mirror engine's tests: a fresh account per test on the emulator."""

from __future__ import annotations

import itertools

import pytest
from mirror_testkit import Account

_accounts = itertools.count()


@pytest.fixture
def account(emulator) -> Account:
    """A live key on a fresh account with plenty of credits and a rate limit tests never hit."""
    name = f"acct_test_{next(_accounts)}"
    key = emulator.admin.create_key("live", balance=100_000, rate_limit=100_000, account=name)
    return Account(key, name)
