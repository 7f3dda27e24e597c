"""``margen-mirror usage``: the key's tier, credit balance and owner."""

from __future__ import annotations

import argparse
import dataclasses
from typing import TYPE_CHECKING

from mirror.cli.verbs import Shown, Subparsers, api_verb, ask_and_show

if TYPE_CHECKING:
    from mirror.api.models import Usage

__all__ = ["register"]


def register(subparsers: Subparsers) -> argparse.ArgumentParser:
    return api_verb(subparsers, "usage", "show the key's tier and credit balance",
                    lambda args: ask_and_show(args, lambda client: client.usage(), _show))


def _show(usage: Usage) -> Shown:
    return dataclasses.asdict(usage), [f"tier {usage.tier}, balance {usage.balance}, owner {usage.owner or '-'}"]
