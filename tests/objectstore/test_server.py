"""The test server is a real S3 server: objects round-trip, the reader identity cannot write."""

from __future__ import annotations

import os

import pytest
from pyarrow import fs
from seaweed import READER


def _fs(seaweed, **creds) -> fs.S3FileSystem:
    return fs.S3FileSystem(endpoint_override=seaweed.endpoint, scheme="http", region="us-east-1", **creds)


def test_put_get_list(seaweed, bucket):
    store = _fs(seaweed)             # credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY
    body = os.urandom(50_000)
    with store.open_output_stream(f"{bucket}/a/b.jpg") as out:
        out.write(body)
    with store.open_input_stream(f"{bucket}/a/b.jpg") as src:
        assert src.read() == body
    found = store.get_file_info(fs.FileSelector(bucket, recursive=True))
    assert [i.path for i in found if i.type == fs.FileType.File] == [f"{bucket}/a/b.jpg"]


def test_reader_identity_cannot_write(seaweed, bucket):
    store = _fs(seaweed, access_key=READER[0], secret_key=READER[1])
    with pytest.raises(OSError), store.open_output_stream(f"{bucket}/nope") as out:
        out.write(b"x")
