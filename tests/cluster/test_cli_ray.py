"""``margen-mirror score ... --ray``, run the way a user runs it: one summary line, exit codes, ``report``
unchanged afterwards; refused requests say so in one line and leave no verdict behind."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from mirror.detectors import open_scores
from mirror.store import open_manifest


def _cli(*args: str, pythonpath: Path | None = None, env: dict[str, str] | None = None,
         timeout: float = 180) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("MARGEN_", "RAY_ADDRESS"))}
    if pythonpath is not None:
        environ["PYTHONPATH"] = os.pathsep.join([str(pythonpath), environ.get("PYTHONPATH", "")])
    environ.update(env or {})
    return subprocess.run([sys.executable, "-m", "mirror", *args], env=environ, capture_output=True, text=True,
                          timeout=timeout)


def _no_verdicts(dest: Path) -> bool:
    return not list((dest / "scores").rglob("*.parquet"))


def test_score_on_a_local_cluster_from_the_command_line_then_report(mirrored: Path, userdet: str,
                                                                    tmp_path: Path) -> None:
    detector = f"python:{userdet}:by_path"
    done = _cli("score", str(mirrored), "--detector", detector, "--ray", "--workers", "2", "--batch-size", "8",
                pythonpath=tmp_path / "userdet")          # --ray alone: this run starts (and stops) its own cluster
    manifest = open_manifest(mirrored).to_table().to_pylist()
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"margen-mirror score {detector} complete: {len(manifest)} "
                                                   f"selected, {len(manifest)} scored"), done.stderr
    assert done.stdout == "" and (mirrored / ".state" / "ray.log").stat().st_size > 0     # Ray's own words went here
    assert sorted(r["id"] for r in open_scores(mirrored, detector).to_table().to_pylist()) == \
        sorted(m["id"] for m in manifest)
    report = _cli("report", str(mirrored), "--json")
    assert report.returncode == 0, report.stderr
    assert userdet in report.stdout and (mirrored / "reports").is_dir()


def test_refused_on_the_command_line_in_one_line(ray_address: str, mirrored: Path, userdet: str,
                                                  tmp_path: Path) -> None:
    detector = f"python:{userdet}:by_path"
    with socket.socket() as probe:                     # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"127.0.0.1:{probe.getsockname()[1]}"
    dfd = {"DEEPFAKE_DETECTION_URL": "http://127.0.0.1:9", "DEEPFAKE_DETECTION_TOKEN": "dfd-secret-token-xyz"}
    cases = [
        (("--detector", detector, "--ray", "kind=fake"), {}, "put KEY=V filters before --ray"),
        (("--detector", detector, "--ray", closed), {}, "no Ray cluster answers"),
        (("--detector", detector, "--ray", ray_address, "--workers", "3"), {}, "has 2 CPUs"),
        (("--detector", "deepfake-detection", "--url-mode", "--ray", ray_address), dfd, "--url-mode does not work"),
    ]
    for args, env, says in cases:
        done = _cli("score", str(mirrored), *args, pythonpath=tmp_path / "userdet", env=env, timeout=60)
        lines = done.stderr.splitlines()
        assert done.returncode == 2 and len(lines) == 1 and says in lines[0], (args, done.stderr)
        assert "dfd-secret-token-xyz" not in done.stderr + done.stdout
    assert _no_verdicts(mirrored)
