"""A real local Ray cluster for the whole session (2 CPUs, no dashboard), a mirrored corpus, user detectors.

The cluster is started once (``ray.init`` in this process, which is its driver) and shut down at
the end; every test that scores on Ray uses it, and CLI runs join it by address. Worker processes
are this process's descendants, which is how a test finds one to kill.
"""

from __future__ import annotations

import logging
import shutil
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))
sys.path.insert(0, str(Path(__file__).resolve().parent))          # ray_kit, for the test modules

from mirror_testkit import Account, do_sync

DETECTORS = textwrap.dedent('''
    import hashlib, os, time
    from pathlib import Path

    LOG = Path(__file__).with_name("calls.log")     # beside this module: Ray's workers see it too

    def by_path(path):
        """Per file: P(fake) from the file's bytes, deterministic."""
        return int(hashlib.sha256(Path(path).read_bytes()).hexdigest()[:4], 16) / 65535

    def slow(path):
        with open(LOG, "a") as fh:
            fh.write(f"{os.getpid()}\\n")
        time.sleep(0.1)
        return by_path(path)

    class Model:
        """A batch detector on decoded arrays; each construction is logged with its pid."""
        batch_input = "array"

        def __init__(self):
            with open(LOG, "a") as fh:
                fh.write(f"init {os.getpid()}\\n")

        def __call__(self, images):
            with open(LOG, "a") as fh:
                fh.write(f"call {os.getpid()} {len(images)}\\n")
            return [float(image.mean()) / 255 for image in images]

    class PerFile:
        def __init__(self):
            self.scale = 1.0

        def __call__(self, data: bytes) -> float:
            return (len(data) % 100) / 100 * self.scale
''')


@pytest.fixture(scope="session")
def ray_address() -> Iterator[str]:
    """The session's Ray cluster; its address lets a CLI run join it."""
    import ray
    context = ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False,
                       logging_level=logging.WARNING)
    try:
        yield context.address_info["address"]
    finally:
        ray.shutdown()


@pytest.fixture
def margen(emulator_factory):
    """A small Margen corpus (40 items, reals and fakes) and a live key on it."""
    emulator = emulator_factory(items=40)
    key = emulator.admin.create_key("live", balance=100_000, rate_limit=100_000, account="scorer")
    return emulator, Account(key, "scorer")


@pytest.fixture
async def mirrored(margen, tmp_path: Path) -> Path:
    emulator, account = margen
    dest = tmp_path / "mirror"
    report = await do_sync(emulator, account, dest)
    assert report.status == "complete" and report.mirrored > 0
    return dest


@pytest.fixture
def twin(mirrored: Path, tmp_path: Path) -> Path:
    """A byte-for-byte copy of ``mirrored`` (same manifest, same files), scored separately."""
    copy = tmp_path / "twin"
    shutil.copytree(mirrored, copy)
    return copy


@pytest.fixture
def userdet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The module name of DETECTORS, importable here (and, through the run, by Ray's workers); its
    functions log their calls with the process id in ``userdet/calls.log``."""
    name = f"userdet_{tmp_path.name.replace('-', '_')}"
    folder = tmp_path / "userdet"
    folder.mkdir()
    (folder / f"{name}.py").write_text(DETECTORS)
    monkeypatch.syspath_prepend(str(folder))
    yield name
    sys.modules.pop(name, None)
