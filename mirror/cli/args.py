"""How every verb reads its command line: whole flag names, one-line errors, positive paces, no key.

``Parser`` is the class of the top-level parser and, through argparse's ``parser_class``, of every
verb's: abbreviations are off (``--api-key`` must never be taken for ``--api-key-file``) and a
mistake is one line, not the usage block. ``refuse_key_shaped`` runs before any parsing, so a key
typed on the command line is refused without being printed back, whichever flag it was given to.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, TypeVar

from mirror.config import KEY_SHAPE, looks_like_key
from mirror.errors import EXIT_USAGE, UsageError

__all__ = ["Parser", "positive_int", "positive_float", "refuse_key_shaped", "unrecognized"]

N = TypeVar("N", int, float)

_KEY_HELP = ("put it in a file only you can read (chmod 600) and pass --api-key-file FILE, "
             "or set $MARGEN_API_KEY_FILE or $MARGEN_API_KEY")


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose flags must be spelled out whole and whose errors are one line."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _positive(kind: type[N], what: str) -> Callable[[str], N]:
    def parse(text: str) -> N:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"takes {what}, not {text!r}") from None
        if not (math.isfinite(value) and value > 0):
            raise argparse.ArgumentTypeError(f"must be more than 0, not {text}; leave the flag out for its default")
        return value

    parse.__name__ = f"positive_{kind.__name__}"
    return parse


positive_int = _positive(int, "a whole number")
positive_float = _positive(float, "a number")


def refuse_key_shaped(argv: Sequence[str]) -> None:
    """Raise ``UsageError`` if any argument holds something shaped like a Margen key (``mgn_live_…``,
    ``mgn_test_…``); the message names the flag it was given to, never the value."""
    for i, word in enumerate(argv):
        if not KEY_SHAPE.search(word):
            continue
        flag = word.split("=", 1)[0] if word.startswith("-") else (argv[i - 1] if i and argv[i - 1][:1] == "-"
                                                                     else "")
        if flag == "--api-key-file":
            raise UsageError(f"--api-key-file takes a path to a file holding the key, not the key itself; {_KEY_HELP}")
        where = f"the value of {flag}" if flag.startswith("-") else f"argument {i + 1}"
        raise UsageError(f"{where} looks like an API key, and no flag takes the key itself (command lines end up in "
                         f"shell history and process lists); {_KEY_HELP}")


def unrecognized(extra: Sequence[str]) -> str:
    """The message for arguments no verb takes; a value that may be a key is not repeated."""
    shown = " ".join("(a value not shown)" if looks_like_key(w) else w for w in extra)
    hint = ""
    if any(w.startswith("-") and w.lstrip("-").split("=")[0] in ("api-key", "key", "token") for w in extra):
        hint = f"; no flag takes the key itself: {_KEY_HELP}"
    return f"unrecognized arguments: {shown}{hint}"
