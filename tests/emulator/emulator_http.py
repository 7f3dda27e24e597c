"""A tiny synchronous HTTP helper for the emulator tests (urllib, no retries, no magic)."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

FACES = "synthetic-face-v1"
PASSPORT = "passport-pad-v1"


@dataclass
class Reply:
    status: int
    headers: Any
    raw: bytes

    @property
    def body(self) -> Any:
        return json.loads(self.raw)


def request(url: str, *, key: str | None = None, headers: dict[str, str] | None = None,
            timeout: float = 30) -> Reply:
    hdrs = dict(headers or {})
    if key is not None:
        hdrs["Authorization"] = f"Bearer {key}"
    req = urllib.request.Request(url, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return Reply(resp.status, resp.headers, resp.read())
    except urllib.error.HTTPError as err:
        return Reply(err.code, err.headers, err.read())


class Api:
    """Calls ``<base>/api/v1/data/<path>`` with one key."""

    def __init__(self, base_url: str, key: str | None, prefix: str = "/api/v1/data") -> None:
        self.base_url, self.key, self.prefix = base_url, key, prefix

    def get(self, path: str, headers: dict[str, str] | None = None, **params: Any) -> Reply:
        query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
        url = f"{self.base_url}{self.prefix}/{path}" + (f"?{query}" if query else "")
        return request(url, key=self.key, headers=headers)

    def ok(self, path: str, headers: dict[str, str] | None = None, **params: Any) -> Any:
        reply = self.get(path, headers=headers, **params)
        assert reply.status == 200, (reply.status, reply.raw[:500])
        return reply.body

    def download(self, item_id: str, idem: str | None = None, **params: Any) -> Reply:
        return self.get(f"download/{item_id}", headers={"Idempotency-Key": idem} if idem else None, **params)

    def all_items(self, **params: Any) -> list[dict]:
        """Every item of a selection, paged with offset/limit."""
        out: list[dict] = []
        while True:
            page = self.ok("items", limit=500, offset=len(out), **params)
            out.extend(page["data"])
            if not page["has_more"]:
                return out


def fetch(url: str, headers: dict[str, str] | None = None) -> Reply:
    return request(url, headers=headers)
