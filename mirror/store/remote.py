"""A sync into ``s3://bucket/prefix``: the bucket holds the mirror, a local working folder its run state.

What lives where (the design choice for a remote DEST):

- In the bucket, under the prefix: ``images/…`` (each a single, complete PUT, never a temp object),
  ``manifest/*.parquet`` (uploaded only after every object its rows name exists) and
  ``.state/lock``, created with a conditional PUT (``If-None-Match: *``) so that two runs on one
  DEST, from two machines, cannot both hold it. A lock left by a killed run on the same machine is
  taken over (its process is gone); one from another machine is named in the error, with the
  command that removes it.
- In a local working folder (``~/.cache/margen-mirror/dests/…``, or ``$MARGEN_MIRROR_STATE``): the
  reservation journal, the selection records and a working copy of the manifest. A run killed
  mid-way resumes from the same machine as from a local DEST. On another machine the journal of
  the killed run is not there: the items it had paid for but not placed are reserved again, free
  (the account owns them), so nothing is paid twice, but they are downloaded again.

Guards: a manifest row is in the bucket only after its object; the bucket's manifest after a run
is the union of what every run placed (pulled at the start, pushed at the end, compacted).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mirror.errors import DestinationError, LockHeldError
from mirror.store.atomic import write_atomic
from mirror.store.layout import Layout
from mirror.store.manifest import manifest_files
from mirror.store.objectstore import StoreUrl, classify, parse_store_url, resolve_endpoint

__all__ = ["RemoteDest", "state_folder"]

_LOCK = ".state/lock"


def state_folder(url: StoreUrl) -> Path:
    """The local working folder of a remote DEST: one per URL, stable across runs on this machine."""
    root = os.environ.get("MARGEN_MIRROR_STATE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "margen-mirror", "dests")
    digest = hashlib.sha256(str(url).encode()).hexdigest()[:16]
    return Path(root) / f"{url.bucket}-{digest}"


@dataclass
class RemoteDest:
    """One remote DEST: its URL, an obstore client, and the local working folder's layout."""

    url: StoreUrl
    store: Any                                 # obstore.store.S3Store (rooted at the bucket)
    layout: Layout

    @classmethod
    def open(cls, dest: str | os.PathLike[str]) -> RemoteDest:
        """Parse DEST and build the client from the standard AWS environment; creates nothing yet."""
        url = parse_store_url(os.fspath(dest))
        try:
            from obstore.store import S3Store
        except ImportError:
            raise DestinationError(f"{url}: object-store destinations need the s3 extra: "
                                   "pip install 'margen-mirror[s3]'") from None
        endpoint = resolve_endpoint()
        config: dict[str, Any] = {}
        if endpoint:
            config["endpoint"] = endpoint
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        if region:
            config["region"] = region
        store = S3Store(url.bucket, config=config,
                        client_options={"allow_http": bool(endpoint and endpoint.startswith("http://")),
                                        "timeout": "30s", "connect_timeout": "5s"},
                        retry_config={"max_retries": 3, "retry_timeout": _seconds(20),
                                      "backoff": {"init_backoff": _seconds(0.1), "max_backoff": _seconds(2),
                                                  "base": 2}})
        return cls(url, store, Layout(state_folder(url)))

    # -- the lock ---------------------------------------------------------------------------------
    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold ``prefix/.state/lock`` (a conditional PUT) for the body; released at the end."""
        import obstore
        me = {"host": socket.gethostname(), "pid": os.getpid(), "since": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                                        time.gmtime())}
        body = json.dumps(me).encode()
        key = self.url.key(_LOCK)
        try:
            try:
                obstore.put(self.store, key, body, mode="create", use_multipart=False)
            except obstore.exceptions.AlreadyExistsError:
                self._take_over_dead_lock(key, body)
        except (DestinationError, LockHeldError):
            raise
        except Exception as exc:
            raise classify(self.url, "take the destination's lock", exc) from None
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                obstore.delete(self.store, key)

    def _take_over_dead_lock(self, key: str, body: bytes) -> None:
        import obstore
        found = obstore.get(self.store, key)
        try:
            holder = json.loads(bytes(found.bytes()))
        except ValueError:
            holder = {}
        if holder.get("host") == socket.gethostname() and not _alive(holder.get("pid")):
            try:      # If-Match: only if no other run took it over meanwhile
                obstore.put(self.store, key, body, mode={"e_tag": found.meta["e_tag"]}, use_multipart=False)
                return
            except obstore.exceptions.PreconditionError:
                holder = {}
        where = f"pid {holder.get('pid')} on {holder.get('host')}" if holder else "another run"
        raise LockHeldError(f"{self.url} is in use by another margen-mirror run ({where}); wait for it, or if "
                            f"that run is gone, delete {self.url}/{_LOCK} and run again")

    # -- the manifest -----------------------------------------------------------------------------
    def pull_manifest(self) -> int:
        """Copy the bucket's manifest files this working folder lacks into it; returns how many."""
        import obstore
        remote = self._remote_manifest_names()
        pushed = self._pushed()
        for path in manifest_files(self.layout):    # replaced by another machine's compaction
            if path.name in pushed and path.name not in remote:
                path.unlink(missing_ok=True)
        local = {p.name for p in manifest_files(self.layout)}
        pulled = 0
        for name in remote:
            if name in local:
                continue
            try:
                data = bytes(obstore.get(self.store, self.url.key(f"manifest/{name}")).bytes())
            except Exception as exc:
                raise classify(self.url, f"read manifest/{name}", exc) from None
            tmp = self.layout.tmp / f".pull-{name}"
            tmp.write_bytes(data)
            os.replace(tmp, self.layout.manifest / name)
            pulled += 1
        return pulled

    def compact(self) -> int:
        """``compact s3://…``: under both locks, merge the bucket's manifest files into one; returns rows."""
        from mirror.store.compaction import compact
        from mirror.store.lock import DestLock
        layout = Layout.prepare(self.layout.dest)
        with DestLock(layout), self.locked():
            self.pull_manifest()
            rows = compact(layout)
            self.push_manifest()
        return rows

    def push_manifest(self) -> None:
        """Make the bucket's manifest equal the working copy: upload new files first, then delete
        the ones compaction replaced (a kill in between leaves duplicates the index dedupes)."""
        import obstore
        local = {p.name: p for p in manifest_files(self.layout)}
        remote = set(self._remote_manifest_names())
        try:
            for name, path in sorted(local.items()):
                if name not in remote:
                    obstore.put(self.store, self.url.key(f"manifest/{name}"), path.read_bytes(), use_multipart=False)
            stale = [self.url.key(f"manifest/{n}") for n in sorted(remote - local.keys())]
            if stale:
                obstore.delete(self.store, stale)
            write_atomic(self.layout.state / "pushed.json", json.dumps(sorted(local)).encode())
        except Exception as exc:
            raise classify(self.url, "upload the manifest", exc) from None

    def _pushed(self) -> set[str]:
        """Manifest files this working folder knows to be in the bucket (as of its last push)."""
        try:
            return set(json.loads((self.layout.state / "pushed.json").read_text()))
        except (FileNotFoundError, ValueError):
            return set()

    def _remote_manifest_names(self) -> list[str]:
        import obstore
        try:
            found = obstore.list(self.store, self.url.key("manifest/")).collect()
        except Exception as exc:
            raise classify(self.url, "list the manifest", exc) from None
        names = [m["path"].rpartition("/")[2] for m in found]
        return sorted(n for n in names if n.endswith(".parquet") and not n.startswith("."))

    def present_images(self) -> set[str]:
        """The relative paths (``images/…``) of every image object under the prefix: one LIST per 1000."""
        import obstore
        start = len(self.url.key(""))
        try:
            return {m["path"][start:] for batch in obstore.list(self.store, self.url.key("images/"))
                    for m in batch}
        except Exception as exc:
            raise classify(self.url, "list the images", exc) from None


def _alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _seconds(s: float) -> Any:
    from datetime import timedelta
    return timedelta(seconds=s)
