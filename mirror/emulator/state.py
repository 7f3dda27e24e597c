"""Configuration and the shared per-server state every handler works on."""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from pathlib import Path

from mirror.emulator.benchmarks import BENCHMARKS, FACES, PASSPORT
from mirror.emulator.corpus import Corpus
from mirror.emulator.faults import Faults, FaultSettings
from mirror.emulator.image_store import ImageStore
from mirror.emulator.ledger import Ledger
from mirror.emulator.ratelimit import RateLimiter
from mirror.emulator.signing import Signer

API_ROUTES = ("benchmarks", "catalog", "items", "download", "usage", "release")
DEMO_ACCOUNT = "acct_demo"
DEMO_KEYS = (  # (key, tier, balance): created idempotently at every start
    ("mgn_live_demo", "live", 1_000_000),
    ("mgn_test_demo", "test", None),
)
DEMO_RATE_LIMIT = 6000
DEFAULT_RATE_LIMIT = 60


@dataclass
class EmulatorConfig:
    host: str = "127.0.0.1"
    port: int = 0
    items: int = 500
    seed: int = 0
    data_dir: Path | None = None  # None -> a temp dir, removed on stop
    admin: bool = False
    latency_ms: float = 0.0
    fail_rate: float = 0.0  # api_500 probability; on /download half before, half after the debit
    url_ttl: int = 300
    image_cache_bytes: int = 256 * 1024 * 1024


@dataclass
class Counters:
    """What the admin ``/counters`` route reports; reset by ``/counters/reset``."""

    api_requests: int = 0
    api_requests_by_route: dict[str, int] = field(default_factory=lambda: dict.fromkeys(API_ROUTES, 0))
    api_requests_by_account: dict[str, int] = field(default_factory=dict)
    rate_limited: int = 0
    downloads: int = 0
    charges: int = 0
    storage_requests: int = 0
    storage_ok: int = 0
    storage_forbidden: int = 0
    auth_header_refusals: int = 0
    connections: int = 0        # TCP connections that carried an API or storage request since the reset


class EmulatorState:
    """Everything one running emulator owns: corpora, ledger, secrets, limiter, faults."""

    def __init__(self, config: EmulatorConfig, data_dir: Path) -> None:
        self.config, self.data_dir = config, data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        self.ledger = Ledger(data_dir / "ledger.sqlite3")
        self.signer = Signer(data_dir)
        self.limiter = RateLimiter()
        self.faults = Faults(config.seed, FaultSettings(
            api_500=config.fail_rate, latency_ms=config.latency_ms, url_ttl=config.url_ttl))
        self.counters = Counters()
        self._seen_connections: weakref.WeakSet[object] = weakref.WeakSet()
        sizes = {FACES: config.items, PASSPORT: BENCHMARKS[PASSPORT].default_items}
        self.corpora = {bid: Corpus(BENCHMARKS[bid], config.seed, sizes[bid], self.ledger.appends(bid))
                        for bid in BENCHMARKS}
        self.images = ImageStore(cache_dir=data_dir / "images", max_memory_bytes=config.image_cache_bytes)
        for key, tier, balance in DEMO_KEYS:
            self.ledger.create_key(key, tier, DEMO_ACCOUNT, DEMO_RATE_LIMIT, (FACES,), balance, if_missing=True)

    def find_item(self, item_id: str) -> tuple[Corpus, int] | None:
        for corpus in self.corpora.values():
            index = corpus.index_of(item_id)
            if index is not None:
                return corpus, index
        return None

    def count_connection(self, transport: object) -> None:
        """Count a connection (its asyncio transport) the first time it carries a request."""
        if transport is not None and transport not in self._seen_connections:
            self._seen_connections.add(transport)
            self.counters.connections += 1

    def reset_counters(self) -> None:
        self.counters = Counters()
        self._seen_connections.clear()
        self.faults.counts.clear()

    def close(self) -> None:
        self.ledger.close()
