"""Section 6 of ``scripts/bench.py``: scoring on Ray against scoring in-process.

The detector is ``model`` below: a fixed amount of numpy work per image (many small array
operations, so it holds the GIL as a pure-Python model does), about 4 ms a call here. One mirror
(synced by bench.py) is scored three times from scratch, each in a fresh process: in-process
(``margen-mirror score``, its default thread pool), then on a local Ray cluster with 1 and with 2
workers (``run_score_ray`` in one process that started the cluster once; the start is timed apart).
Each Ray run's time includes its actor pool's start. Ray's overhead per image is stated twice: the
1-worker run's time per image less the model's own (called directly in a loop, in a fresh process
with the same environment), and less the in-process run's; the driver's CPU per image says how
many images a second one driver can take in.

    python scripts/bench_ray.py ray DEST --out FILE   |   model DEST     (what bench.py runs, in fresh processes)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DETECTOR = "python:bench_ray:model"
ROUNDS = 1600           # tiny matrix products per image: ~4 ms of CPU here
_WEIGHTS = None


def model(path: str) -> float:
    """P(fake) from a fixed amount of numpy work on the file's first bytes (deterministic)."""
    import numpy as np

    global _WEIGHTS
    if _WEIGHTS is None:
        _WEIGHTS = np.random.default_rng(0).standard_normal((16, 16)) / 4
    with open(path, "rb") as fh:
        head = fh.read(256).ljust(256, b"\0")
    x = np.frombuffer(head, dtype=np.uint8).astype(np.float64).reshape(16, 16) / 255
    for _ in range(ROUNDS):
        x = np.tanh(x @ _WEIGHTS)
    return float(1 / (1 + np.exp(-x.mean())))


def _env() -> dict[str, str]:
    """One thread per process for numpy's libraries, so a worker is one core (Ray sets this for its own)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MARGEN_", "RAY_ADDRESS"))}
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")])
    env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return env


def _forget_scores(dest: Path) -> None:
    shutil.rmtree(dest / "scores" / DETECTOR.removeprefix("python:").replace(":", "."), ignore_errors=True)


def measure(dest: Path, work: Path) -> dict:
    """The section's figures for the mirror at ``dest`` (its verdicts for ``model`` are removed after)."""
    import pyarrow.parquet as pq

    items = sum(pq.read_metadata(part).num_rows for part in (dest / "manifest").glob("*.parquet"))
    done = subprocess.run([sys.executable, str(Path(__file__)), "model", str(dest)], env=_env(), capture_output=True,
                          text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"timing the model failed ({done.returncode}): {done.stderr[-2000:]}")
    model_ms = float(done.stdout)

    _forget_scores(dest)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "mirror", "score", str(dest), "--detector", DETECTOR, "--json"],
                          env=_env(), capture_output=True, text=True, timeout=3600)
    in_process_s = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"in-process score failed ({done.returncode}): {done.stderr[-2000:]}")
    report = json.loads(done.stdout)
    assert report["scored"] == items, report

    out = work / "ray-figures.json"
    done = subprocess.run([sys.executable, str(Path(__file__)), "ray", str(dest), "--out", str(out)], env=_env(),
                          capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"ray score failed ({done.returncode}): {done.stderr[-2000:]}")
    ray_runs = json.loads(out.read_text())
    out.unlink()
    _forget_scores(dest)
    one, two = ray_runs["runs"][0]["wall_s"], ray_runs["runs"][1]["wall_s"]
    return {"items": items, "model_ms": model_ms, "in_process_s": in_process_s, "in_process_report_s":
            report["elapsed_s"], "ray_init_s": ray_runs["init_s"], "runs": ray_runs["runs"],
            "speedup": one / two, "target": 1.7, "overhead_ms": 1000 * one / items - model_ms,
            "over_in_process_ms": 1000 * (one - in_process_s) / items,
            "batch_size": ray_runs["batch_size"], "cores": os.cpu_count()}


def _time_model(dest: Path, count: int = 300) -> float:
    """Milliseconds per call of ``model`` on the first ``count`` files, in this (fresh) process."""
    import pyarrow.parquet as pq

    paths = pq.read_table(dest / "manifest", columns=["path"]).column("path").to_pylist()[:count]
    model(str(dest / paths[0]))
    start = time.perf_counter()
    for path in paths:
        model(str(dest / path))
    return 1000 * (time.perf_counter() - start) / len(paths)


def _ray(dest: Path, out: Path, batch_size: int = 64) -> None:
    """In a fresh process: start a local cluster once, then score from scratch with 1 and 2 workers."""
    import logging

    import ray

    from mirror.cluster import run_score_ray

    start = time.perf_counter()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    init_s = time.perf_counter() - start
    runs = []
    for workers in (1, 2):
        _forget_scores(dest)
        start, cpu = time.perf_counter(), time.process_time()
        report = run_score_ray(dest, DETECTOR, workers=workers, batch_size=batch_size)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        assert report.status == "complete" and report.failed == 0, report
        runs.append({"workers": workers, "wall_s": wall, "scored": report.scored,
                     "driver_cpu_ms": 1000 * cpu / report.scored})
    ray.shutdown()
    out.write_text(json.dumps({"init_s": init_s, "runs": runs, "batch_size": batch_size}))


if __name__ == "__main__":
    p = argparse.ArgumentParser(description="bench.py's Ray runs and model timing (section 6)")
    p.add_argument("what", choices=["ray", "model"])
    p.add_argument("dest", type=Path)
    p.add_argument("--out", type=Path)
    a = p.parse_args()
    if a.what == "model":
        print(f"{_time_model(a.dest):.6f}")
    else:
        _ray(a.dest, a.out)
