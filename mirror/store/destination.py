"""What kind of place a DEST names: a local folder, or a URL (``s3://…``, ``gs://…``, ``file://…``).

Guards one invariant: a DEST written as a URL is never taken for a relative local path. Without
this check ``--dest s3://bucket/prefix`` becomes the local folder ``s3:/bucket/prefix`` and a sync
charges every image into it. Every entry point that turns DEST text into a local ``Path`` (flags,
job files, the library, the reading verbs) goes through :func:`local_dest`, which refuses a URL in
one line before anything is created or spent.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from mirror.errors import UsageError

__all__ = ["url_scheme", "local_dest", "check_local_dest", "sync_dest", "check_sync_dest", "shown_dest",
           "SYNC_SCHEMES"]

SYNC_SCHEMES = ("s3",)           # the URL schemes a sync can write to (mirror.store.remote)

# "s3://b/x" as typed, or "s3:/b/x" once pathlib has collapsed the double slash.
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):/")


def url_scheme(dest: str | os.PathLike[str]) -> str | None:
    """The URL scheme DEST is written with (``"s3"``), or None for a plain local path."""
    found = _URL.match(os.fspath(dest))
    return found.group(1).lower() if found else None


def check_local_dest(dest: str | os.PathLike[str]) -> None:
    """Refuse a DEST written as a URL, in one line that says what to do instead."""
    scheme = url_scheme(dest)
    if scheme is None:
        return
    shown = shown_dest(dest)
    if scheme == "file":
        raise UsageError(f"DEST {shown}: file:// URLs are not supported yet; give the folder as a plain path "
                         f"(e.g. {shown[len('file://'):] or '/path/to/folder'})")
    raise UsageError(f"DEST {shown}: {scheme}:// destinations are not supported yet; give a local folder "
                     f"(write ./{shown} if you really mean a local folder named '{scheme}:')")


def local_dest(dest: str | os.PathLike[str]) -> Path:
    """DEST as a local ``Path`` (``~`` expanded); a URL is refused (see :func:`check_local_dest`)."""
    check_local_dest(dest)
    return Path(dest).expanduser()


def check_sync_dest(dest: str | os.PathLike[str]) -> None:
    """A sync's DEST: a local folder or an ``s3://bucket/prefix``; any other URL is refused in one line."""
    scheme = url_scheme(dest)
    if scheme in SYNC_SCHEMES:
        from mirror.store.objectstore import parse_store_url
        parse_store_url(os.fspath(dest))
    else:
        check_local_dest(dest)


def sync_dest(dest: str | os.PathLike[str]) -> Path:
    """DEST of a sync as a ``Path``: a local folder (``~`` expanded), or an ``s3://`` URL kept as a
    Path that the store layer parses back (``shown_dest`` prints it as the user wrote it)."""
    check_sync_dest(dest)
    return Path(dest) if url_scheme(dest) else Path(dest).expanduser()


def shown_dest(dest: str | os.PathLike[str]) -> str:
    """DEST for messages: ``s3://b/p`` rather than the ``s3:/b/p`` pathlib made of it."""
    text = os.fspath(dest)
    found = _URL.match(text)
    if found and not text.startswith(f"{found.group(1)}://"):
        return f"{found.group(1)}://{text[len(found.group(0)):]}"
    return text
