"""Without ``--ray`` nothing changes and Ray is never imported; without Ray installed, ``--ray`` says
how to get it in one line."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent("""
    import sys
    import anyio
    import mirror, mirror.cluster
    from mirror.cli import main
    from mirror.detectors import run_score
    dest, url, key, detector = sys.argv[1:5]
    report = mirror.sync_blocking(dest, benchmark="synthetic-face-v1", api_key=key, base_url=url,
                                  limits=mirror.Limits(rate_limit=100_000))
    assert report.status == "complete", report
    assert anyio.run(lambda: run_score(dest, detector, filters={"kind": ("real",)})).status == "complete"
    assert main(["score", dest, "--detector", detector, "kind=fake"]) == 0
    assert main(["score", dest, "--detector", detector, "--workers", "2"]) == 2     # a Ray flag without --ray
    loaded = sorted(name for name in sys.modules if name == "ray" or name.startswith("ray."))
    print("RAY MODULES:", loaded)
""")

BLOCKED = textwrap.dedent("""
    import sys
    sys.modules["ray"] = None                 # as if Ray were not installed
    from mirror.cli import main
    sys.exit(main(["score", sys.argv[1], "--detector", sys.argv[2], "--ray"]))
""")


def test_sync_and_score_never_import_ray(margen, tmp_path: Path, userdet: str) -> None:
    emulator, account = margen
    dest = tmp_path / "m"
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "userdet")}
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(dest), emulator.url, account.key,
                           f"python:{userdet}:by_path"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "RAY MODULES: []" in done.stdout
    assert account.key not in done.stdout + done.stderr


def test_without_ray_installed_ray_says_how_to_get_it(mirrored: Path, userdet: str, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "userdet")}
    done = subprocess.run([sys.executable, "-c", BLOCKED, str(mirrored), f"python:{userdet}:by_path"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip() == ("margen-mirror: error: Ray is not installed (--ray and mirror.ray need it): "
                                   "pip install 'margen-mirror[ray]'")
    assert not list((mirrored / "scores").rglob("*.parquet"))
