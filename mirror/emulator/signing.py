"""HMAC-SHA256 signing of storage URLs and of keyset cursors.

The secret lives in ``data_dir/secret.key`` so signed URLs and cursors issued before a
restart stay valid after it (a resumed mirror run must not see every cursor rejected).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
from pathlib import Path
from urllib.parse import quote

_TAG = 16  # bytes of HMAC kept on a cursor


class Signer:
    def __init__(self, data_dir: Path) -> None:
        path = data_dir / "secret.key"
        if not path.exists():
            tmp = path.with_suffix(".tmp")
            tmp.write_text(os.urandom(32).hex())
            os.replace(tmp, path)
        self._secret = bytes.fromhex(path.read_text().strip())

    def _mac(self, purpose: bytes, message: bytes) -> bytes:
        return hmac.new(self._secret, purpose + b"\0" + message, hashlib.sha256).digest()

    # -- storage URLs -----------------------------------------------------------------------

    def sign_path(self, path: str, ttl: int, now: float | None = None) -> str:
        """``path`` (e.g. ``/_storage/<bench>/<id>.jpg``) plus ``?exp=…&sig=…``."""
        exp = int((time.time() if now is None else now) + ttl)
        sig = self._mac(b"url", f"{path}\n{exp}".encode()).hex()
        return f"{quote(path)}?exp={exp}&sig={sig}"

    def check_path(self, path: str, exp: str, sig: str) -> str | None:
        """None when valid, else why not ("tampered" | "expired")."""
        if not exp.isdigit():
            return "tampered"
        want = self._mac(b"url", f"{path}\n{exp}".encode()).hex()
        if not hmac.compare_digest(want, sig):
            return "tampered"
        return "expired" if int(exp) < time.time() else None

    # -- cursors ----------------------------------------------------------------------------

    def make_cursor(self, last_index: int, binding: str) -> str:
        """An opaque keyset cursor: the last index returned, bound to a filter set."""
        payload = json.dumps({"v": 1, "after": last_index, "f": binding}, separators=(",", ":")).encode()
        blob = payload + self._mac(b"cursor", payload)[:_TAG]
        return base64.urlsafe_b64encode(blob).rstrip(b"=").decode()

    def read_cursor(self, cursor: str, binding: str) -> int | None:
        """The index the cursor resumes after, or None if it is garbage, forged, or was
        issued for a different filter set."""
        try:
            blob = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        except (ValueError, TypeError):
            return None
        payload, tag = blob[:-_TAG], blob[-_TAG:]
        if len(blob) <= _TAG or not hmac.compare_digest(tag, self._mac(b"cursor", payload)[:_TAG]):
            return None
        try:
            data = json.loads(payload)
        except ValueError:
            return None
        if data.get("v") != 1 or data.get("f") != binding or not isinstance(data.get("after"), int):
            return None
        return data["after"]
