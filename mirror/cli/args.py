"""How every verb reads its command line: whole flag names, one-line errors, positive paces, no key.

``Parser`` is the class of the top-level parser and, through argparse's ``parser_class``, of every
verb's: abbreviations are off (``--api-key`` must never be taken for ``--api-key-file``) and a
mistake is one line, not the usage block. A verb whose flags live in a heavy module (the
emulators') gives ``fill``: its parser is completed the first time it parses or prints help, so
the CLI starts without importing that module. ``refuse_key_shaped`` runs before any parsing, so a key
typed on the command line is refused without being printed back, whichever flag it was given to.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from mirror.config import KEY_SHAPE, looks_like_key
from mirror.errors import EXIT_USAGE, UsageError

__all__ = ["Parser", "add_common", "add_selection", "mirrored_dest", "positive_int", "positive_float",
           "refuse_key_shaped", "unrecognized"]

N = TypeVar("N", int, float)

_KEY_HELP = ("put it in a file only you can read (chmod 600) and pass --api-key-file FILE, "
             "or set $MARGEN_API_KEY_FILE or $MARGEN_API_KEY")


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose flags must be spelled out whole and whose errors are one line."""

    def __init__(self, *args: Any, fill: Callable[[argparse.ArgumentParser], None] | None = None,
                 **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)
        self._fill = fill

    def filled(self) -> Parser:
        """This parser with every flag on it (``fill`` has run, once)."""
        fill, self._fill = self._fill, None
        if fill is not None:
            fill(self)
        return self

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> tuple[argparse.Namespace, list[str]]:
        self.filled()
        return super().parse_known_args(args, namespace)

    def format_usage(self) -> str:
        self.filled()
        return super().format_usage()

    def format_help(self) -> str:
        self.filled()
        return super().format_help()

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def add_common(p: argparse.ArgumentParser) -> None:
    """The flags of every verb that talks to the API."""
    p.add_argument("--base-url", help="API host (default: $MARGEN_BASE_URL or https://www.margensoftware.com)")
    p.add_argument("--api-key-file", metavar="FILE", help="read the key from FILE, a file only you can read "
                   "(default: $MARGEN_API_KEY_FILE, else the key in $MARGEN_API_KEY)")
    p.add_argument("--json", action="store_true", help="print one machine-readable JSON result on stdout")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def add_selection(p: argparse.ArgumentParser, *, dest_required: bool) -> None:
    """The flags of a verb that selects items (``plan``, ``sync``); ``selection.job_from_args`` reads them."""
    p.add_argument("words", nargs="*", metavar="JOB.toml | KEY=V1,V2",
                   help="a job file and/or filters (OR within a key, AND across keys), e.g. kind=fake")
    p.add_argument("--benchmark", help="benchmark id (optional when the key sees exactly one)")
    p.add_argument("--dest", required=False, help="destination folder" + (" (required)" if dest_required else ""))
    p.add_argument("--lineage", action="store_true", help="whole lineages of the matching items")
    p.add_argument("--distinct-identities", action="store_true", help="one representative item per person")
    p.add_argument("--include-metadata", action="store_true", help="store the full label object in the manifest")
    p.add_argument("--max-credits", type=int, metavar="N", help="never spend more than N credits in this run")


def mirrored_dest(dest: str) -> Path:
    """DEST of a verb that reads a mirror (status, verify, compact): a typo must not read as "all ok".

    An ``s3://`` DEST must hold a manifest (returned as a Path that ``url_scheme`` still recognises);
    any other URL is refused in one line."""
    from mirror.store.destination import local_dest, url_scheme
    if url_scheme(dest) == "s3":
        from mirror.store.objectstore import remote_mirror
        return Path(remote_mirror(dest))
    path = local_dest(dest)
    if not path.is_dir():
        what = "is a file, not a folder" if path.exists() else "does not exist"
        raise UsageError(f"{dest} {what}: nothing is mirrored there; check the path (sync creates a destination)")
    return path


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
