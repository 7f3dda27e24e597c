"""``margen-mirror compact DEST``: merge the manifest's parts into one file."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from mirror.cli.verbs import Subparsers, reader_verb

__all__ = ["register"]


def register(subparsers: Subparsers) -> argparse.ArgumentParser:
    return reader_verb(subparsers, "compact", "merge the manifest's parts into one file", _compact)


def _compact(dest: Path, given: str) -> tuple[dict[str, Any], list[str]]:
    from mirror.store import Layout, compact
    from mirror.store.destination import url_scheme

    if url_scheme(dest):                 # s3://…: pulled, compacted and pushed under the bucket's lock
        from mirror.store.remote import RemoteDest
        rows = RemoteDest.open(dest).compact()
    else:
        rows = compact(Layout(dest))
    return {"dest": given, "rows": rows}, [f"{given}: manifest compacted, {rows} rows"]
