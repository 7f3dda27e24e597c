"""A DEST in an S3-compatible bucket (``s3://bucket/prefix``): where its objects are, and how to read them.

Credentials and the endpoint come only from the store's standard sources: ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_PROFILE`` and the profile files (read by
the AWS SDK inside pyarrow), ``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL`` for an S3-compatible
server, ``AWS_REGION``/``AWS_DEFAULT_REGION``. Nothing here takes a secret as an argument, and an
error line names the bucket and the failing operation, never a credential (the SDK's own messages
carry none; they are cut to their first line).

Guards: a URL of an object store never reaches code that would read it as a local path; a bucket
that cannot be reached or read is one ``DestinationError`` line, never an empty "all ok" answer
(an existing prefix with no manifest yet is an empty manifest, as a new local folder is).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

from mirror.errors import EXIT_PARTIAL, DestinationError, MirrorError, UsageError
from mirror.store.rows import MANIFEST_SCHEMA

if TYPE_CHECKING:
    import pyarrow.dataset as ds
    from pyarrow import fs

__all__ = ["StoreUrl", "parse_store_url", "arrow_filesystem", "open_remote_manifest", "remote_manifest_files",
           "remote_mirror", "storage_options", "resolve_endpoint", "store_error", "error_detail", "classify",
           "StoreUnavailable",
           "SUPPORTED_SCHEMES"]

SUPPORTED_SCHEMES = ("s3",)
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):(?://|/)(.*)$", re.DOTALL)
# Settings a user may pass as --storage-option KEY=VALUE: none of them is a secret.
_NON_SECRET = {"region", "endpoint_override", "scheme", "request_timeout", "connect_timeout"}


@dataclass(frozen=True)
class StoreUrl:
    """``s3://bucket/some/prefix`` split into its parts; ``key(rel)`` is the object key of DEST/rel."""

    scheme: str
    bucket: str
    prefix: str                       # no leading or trailing "/"; "" for the bucket's root

    def __str__(self) -> str:
        return f"{self.scheme}://{self.bucket}/{self.prefix}".rstrip("/")

    def key(self, rel: str) -> str:
        return f"{self.prefix}/{rel}" if self.prefix else rel

    def path(self, rel: str = "") -> str:
        """``bucket/prefix/rel`` as pyarrow's S3FileSystem names it."""
        return "/".join(p for p in (self.bucket, self.prefix, rel) if p)


def parse_store_url(text: str) -> StoreUrl:
    """Split an object-store DEST; an unsupported scheme or a missing bucket is a one-line UsageError."""
    found = _URL.match(text)         # "s3://b/p", or "s3:/b/p" once pathlib has collapsed the slashes
    if found is None:
        raise UsageError(f"{text} is not an object-store URL (write s3://bucket/prefix)")
    scheme, rest = found.group(1).lower(), found.group(2)
    if scheme not in SUPPORTED_SCHEMES:
        raise UsageError(f"DEST {text}: {scheme}:// destinations are not supported yet "
                         f"(supported: {', '.join(s + '://' for s in SUPPORTED_SCHEMES)}, or a local folder)")
    bucket, _, prefix = rest.partition("/")
    prefix = prefix.strip("/")
    if not bucket or any(part in ("", ".", "..") for part in prefix.split("/") if prefix):
        raise UsageError(f"DEST {text}: write s3://BUCKET/PREFIX (a bucket name, then an optional prefix "
                         "without empty, '.' or '..' parts)")
    return StoreUrl(scheme, bucket, prefix)


def storage_options(pairs: Mapping[str, str] | None) -> dict[str, str]:
    """Validate non-secret store settings (``--storage-option KEY=VALUE``); a credential is refused."""
    out = dict(pairs or {})
    for key in out:
        if key not in _NON_SECRET:
            raise UsageError(f"unknown storage option {key!r}; allowed: {', '.join(sorted(_NON_SECRET))} "
                             "(credentials come from AWS_* variables or profile files, never from a flag)")
    return out


def arrow_filesystem(options: Mapping[str, str] | None = None) -> fs.S3FileSystem:
    """pyarrow's S3 client configured from the standard environment (plus non-secret ``options``)."""
    from pyarrow import fs

    opts = storage_options(options)
    endpoint = opts.get("endpoint_override") or resolve_endpoint()
    kwargs: dict[str, object] = {
        "connect_timeout": float(opts.get("connect_timeout", 5)),
        "request_timeout": float(opts.get("request_timeout", 30)),
        "retry_strategy": fs.AwsStandardS3RetryStrategy(max_attempts=3),
    }
    region = opts.get("region") or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        kwargs["region"] = region
    if endpoint:
        scheme, sep, host = endpoint.partition("://")
        kwargs["endpoint_override"] = host if sep else endpoint
        kwargs["scheme"] = opts.get("scheme") or (scheme if sep else "https")
    return fs.S3FileSystem(**kwargs)


def resolve_endpoint() -> str | None:
    """The S3 endpoint from the standard variables (an S3-compatible server); None: AWS itself."""
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


def error_detail(exc: BaseException, limit: int = 240) -> str:
    """The first line of a store client's error, cut short (it names the request, never a credential)."""
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:limit]


class StoreUnavailable(MirrorError):
    """The object store could not be reached (or kept failing) after its retries: run again later."""

    exit_code = EXIT_PARTIAL


def classify(url: StoreUrl, what: str, exc: BaseException) -> MirrorError:
    """A store client's error as one line: refused credentials, permission or a missing bucket are a
    DestinationError (fix the input, exit 2); anything else is StoreUnavailable (run again, exit 5)."""
    permanent: tuple[type[BaseException], ...] = (PermissionError, FileNotFoundError)   # obstore raises these
    try:
        from obstore import exceptions as oe
        permanent += (oe.PermissionDeniedError, oe.UnauthenticatedError, oe.NotFoundError)
    except ImportError:
        pass
    if isinstance(exc, permanent):
        return store_error(url, what, exc)
    return StoreUnavailable(f"{url}: cannot {what}, the store is not answering ({error_detail(exc)}); what is "
                            "placed is kept: run the same command again once the store is back")


def store_error(url: StoreUrl, what: str, exc: BaseException) -> DestinationError:
    """One line for a store operation that failed: the bucket, the operation, the store's first line."""
    return DestinationError(f"{url}: cannot {what}: {error_detail(exc)}; check the bucket name, AWS_ENDPOINT_URL "
                            "and that the credentials in the environment may use it")


def remote_manifest_files(url: StoreUrl, store: fs.S3FileSystem) -> list[str]:
    """Manifest files under ``prefix/manifest/`` in the local tie-break order (compacted, then parts)."""
    from pyarrow import fs

    try:
        bucket = store.get_file_info(url.bucket)
        if bucket.type == fs.FileType.NotFound:
            raise DestinationError(f"{url}: bucket {url.bucket!r} does not exist; check the name "
                                   "(a sync creates the prefix, not the bucket)")
        found = store.get_file_info(fs.FileSelector(url.path("manifest"), allow_not_found=True))
    except OSError as exc:
        raise store_error(url, "list the manifest", exc) from None
    return sorted(i.path for i in found
                  if i.type == fs.FileType.File and i.base_name.endswith(".parquet")
                  and not i.base_name.startswith("."))


def open_remote_manifest(dest: str, options: Mapping[str, str] | None = None) -> ds.Dataset:
    """The manifest of a mirror in a bucket as a pyarrow Dataset over the bucket (nothing downloaded
    up front); empty when the prefix holds no manifest yet, as for a new local folder."""
    import pyarrow.dataset as ds

    url = parse_store_url(dest)
    store = arrow_filesystem(options)
    files = remote_manifest_files(url, store)
    for path in files:              # a footer that cannot be read is named here, not deep in a scan
        try:
            pq.read_metadata(path, filesystem=store)
        except (OSError, pa.ArrowException) as exc:
            raise store_error(url, f"read {path.rpartition('/')[2]}", exc) from None
    return ds.dataset(files, schema=MANIFEST_SCHEMA, format="parquet", filesystem=store)


def remote_mirror(dest: str, options: Mapping[str, str] | None = None) -> str:
    """DEST of a verb that reads a mirror in a bucket: one with no manifest there is an error, as a
    missing local folder is (a typo must not read as "all ok")."""
    url = parse_store_url(dest)
    if not remote_manifest_files(url, arrow_filesystem(options)):
        raise DestinationError(f"{dest}: no manifest under {url}/manifest/: nothing is mirrored there; "
                               "check the bucket and prefix")
    return str(url)
