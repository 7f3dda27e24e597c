"""One SeaweedFS S3 server per test session (see ``seaweed.py``), its credentials in the standard
AWS environment variables while the session runs, and a fresh bucket per test."""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from seaweed import SeaweedS3

_buckets = itertools.count()


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    """The running server; the AWS_* variables point at it (as writer) until the session ends."""
    server = SeaweedS3(tmp_path_factory.mktemp("seaweedfs"))
    server.start()
    saved = {k: os.environ.get(k) for k in server.env()}
    os.environ.update(server.env())
    try:
        yield server
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        server.stop()


@pytest.fixture
def bucket(seaweed: SeaweedS3) -> str:
    """A new, empty bucket's name."""
    from pyarrow import fs
    name = f"t{os.getpid()}-{next(_buckets)}"
    store = fs.S3FileSystem(endpoint_override=seaweed.endpoint, scheme="http", region="us-east-1",
                            allow_bucket_creation=True)
    store.create_dir(name)
    return name
