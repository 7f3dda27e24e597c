"""Where everything lives inside DEST, and how hostile server ids become safe file names.

Item ids, benchmark names and ``source_real_id`` values come from the server, so they are
untrusted input that ends up in file paths.  The rule here is simple and total: an id that is
already a boring file name is kept verbatim (so the tree stays readable and greppable);
anything else becomes a readable slug plus a hash of the raw id.  The two families cannot meet
because ``~`` is never part of a kept name, and ``resolve_inside`` re-checks every final path
against DEST in case a future change breaks that reasoning.

DEST layout::

    DEST/
      images/<benchmark>/<source_real_id>/<item_id>.jpg
                           (and, while it is written, a hidden ``.<token>-<n>.part`` beside it)
      manifest/            the Parquet dataset (only complete ``*.parquet`` files ever appear here)
      .state/lock          the destination lock (see lock.py)
      .state/tmp/          other temp files (spilled bodies, manifest parts); on DEST's file
                           system so os.replace into place is atomic
      reports/  scores/    outputs of later features
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mirror.errors import DestinationError

__all__ = ["safe_component", "image_relpath", "partial_image_path", "resolve_inside", "destination_error", "Layout"]

# Kept verbatim: ASCII only, starts alphanumeric (so never ".", "..", a hidden file, or an option
# like "-rf"), at most 100 characters.  Windows-reserved names such as "CON" or "NUL" and names
# ending in "." are kept too: the mirror targets POSIX file systems, where they are ordinary.
# Case-insensitive file systems (macOS, Windows defaults) would fold "Abc" and "abc" together;
# the corpus ids are not expected to differ only by case, so this is accepted rather than hashed.
_KEEP = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_UNSAFE_RUN = re.compile(r"[^A-Za-z0-9._-]+")
_SLUG_MAX = 60
_HASH_HEX = 16  # 64 bits: a collision among a few million ids is ~1e-7, and it needs equal slugs too
_NONE = "_none"  # kept names start alphanumeric, hashed ones contain "~": no collision


def safe_component(raw: str | None) -> str:
    """Map a server-supplied id to one path component; injective, never ``.``/``..``, no ``/``.

    Kept names match ``_KEEP``.  Everything else becomes ``<slug>~<sha256[:16]>`` where the slug
    is the safe characters of ``raw`` (unsafe runs folded to ``_``, trimmed of leading/trailing
    ``._-``, at most 60 characters; ``_`` when nothing is left, so a name never starts with ``~``
    and invites shell tilde expansion).  Lone surrogates (possible in JSON) are hashed with
    ``surrogatepass`` so that every distinct ``str`` hashes distinctly.
    """
    if raw is None:
        return _NONE
    if _KEEP.fullmatch(raw):
        return raw
    slug = _UNSAFE_RUN.sub("_", raw).strip("._-")[:_SLUG_MAX].rstrip("._-") or "_"
    digest = hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()[:_HASH_HEX]
    return f"{slug}~{digest}"


def image_relpath(benchmark: str, source_real_id: str | None, item_id: str) -> str:
    """The POSIX path of an item's JPEG relative to DEST; stored as-is in the manifest.

    Grouping by benchmark and then by the real source image keeps a real and all its fakes in
    one folder, which is how people browse and how detectors are evaluated.
    """
    parts = (safe_component(benchmark), safe_component(source_real_id), safe_component(item_id))
    return f"images/{parts[0]}/{parts[1]}/{parts[2]}.jpg"


def partial_image_path(folder: str, token: str, serial: int) -> str:
    """Where an image is written before its rename into place: hidden, in its own folder.

    A rename within one folder is the cheap kind (one from ``.state/tmp`` takes the file system's
    rename lock; figures in docs/design.md). Image names never start
    with ".", so this name cannot be one; ``token`` is 12 hex digits (see ``_PARTIAL``).
    """
    return f"{folder}.{token}-{serial}.part"


_PARTIAL = re.compile(r"\.[0-9a-f]{12}-[0-9]+\.part")


def resolve_inside(dest: Path, relpath: str) -> Path:
    """Join ``relpath`` onto DEST and refuse any result that is not strictly inside DEST.

    ``safe_component`` already makes escapes impossible; this is the independent second check
    on the one operation that would turn a bug into writing outside the user's folder.
    Symlinks are resolved, so a symlinked DEST works but a symlink inside DEST that points
    elsewhere is refused.
    """
    try:
        root = Path(dest).resolve()
        target = (root / relpath).resolve()
    except (OSError, ValueError) as exc:  # ValueError: embedded NUL; OSError: symlink loop
        raise DestinationError(f"refusing unusable path {relpath!r} inside {dest}: {exc}") from exc
    if target == root or not target.is_relative_to(root):
        raise DestinationError(f"refusing path {relpath!r}: it leads outside the destination {dest}")
    return target


def destination_error(exc: OSError, path: Path) -> DestinationError:
    """Turn an OSError on DEST into a one-line DestinationError that says what to do."""
    reason = exc.strerror or str(exc)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        hint = "free some space or choose another destination"
    elif exc.errno == errno.EROFS:
        hint = "the file system is read-only: choose another destination"
    elif exc.errno in (errno.EACCES, errno.EPERM):
        hint = "fix its permissions or choose a folder you can write to"
    elif exc.errno == errno.EFBIG:
        hint = "a file-size limit stops the writes (ulimit -f): raise it or choose another destination"
    elif exc.errno in (errno.ENOTDIR, errno.EEXIST):
        hint = "a file is in the way of a folder: move it or choose another destination"
    else:
        hint = "check the destination and run again"
    return DestinationError(f"cannot use {path} ({reason}): {hint}")


@dataclass(frozen=True)
class Layout:
    """Names every place inside DEST; the only code that knows the folder structure."""

    dest: Path

    def __post_init__(self) -> None:
        # Absolute once, so a later chdir cannot silently move the mirror.
        object.__setattr__(self, "dest", Path(self.dest).absolute())

    @property
    def images(self) -> Path:
        return self.dest / "images"

    @property
    def manifest(self) -> Path:
        return self.dest / "manifest"

    @property
    def state(self) -> Path:
        return self.dest / ".state"

    @property
    def tmp(self) -> Path:
        return self.state / "tmp"

    @property
    def lock_path(self) -> Path:
        return self.state / "lock"

    @property
    def reports(self) -> Path:
        return self.dest / "reports"

    @property
    def scores(self) -> Path:
        return self.dest / "scores"

    @classmethod
    def prepare(cls, dest: Path | str) -> Layout:
        """Create DEST and its folders, or explain in one line why DEST cannot be used.

        Checks up front what would otherwise fail mid-run after credits were spent: DEST is a
        file, a folder is in the way, it is not writable, or temp files could not be renamed
        atomically into ``images/``/``manifest/`` because one of them is another file system.
        """
        layout = cls(Path(dest))
        if layout.dest.exists() and not layout.dest.is_dir():
            raise DestinationError(
                f"destination {layout.dest} is a file, not a folder: choose another path or move the file"
            )
        current = layout.dest
        try:
            for current in (layout.dest, layout.images, layout.manifest, layout.state, layout.tmp,
                            layout.reports, layout.scores):
                current.mkdir(parents=True, exist_ok=True)
            current = layout.tmp
            fd, probe = tempfile.mkstemp(dir=layout.tmp, prefix="probe-")
            os.close(fd)
            os.unlink(probe)
            tmp_dev = layout.tmp.stat().st_dev
            for current in (layout.images, layout.manifest):
                if current.stat().st_dev != tmp_dev:
                    raise DestinationError(
                        f"{current} is on another file system than {layout.tmp}, so files cannot be "
                        "moved into place atomically: keep all of the destination on one file system"
                    )
        except FileExistsError as exc:  # mkdir(exist_ok=True) says this when a file is in the way
            raise DestinationError(
                f"{current} is a file, not a folder: move it away or choose another destination"
            ) from exc
        except OSError as exc:
            raise destination_error(exc, current) from exc
        return layout

    def clean_partial_images(self) -> int:
        """Delete images a killed run left half-written beside their final path; returns how many.

        A walk of every image folder: the caller does it only when a run was cut short (the
        journal has pending items). Only call this while holding the DestLock.
        """
        removed = 0
        for folder, _, names in os.walk(self.images):
            for name in names:
                if _PARTIAL.fullmatch(name):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(os.path.join(folder, name))
                    removed += 1
        return removed

    def clean_tmp(self) -> int:
        """Delete leftovers of a killed run in ``.state/tmp``; returns how many were removed.

        Only call this while holding the DestLock: another live run's temp files look the same.
        """
        if not self.tmp.is_dir():
            return 0
        removed = 0
        for entry in self.tmp.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink(missing_ok=True)
            removed += 1
        return removed
