"""Section 8 of ``scripts/bench.py``: a whole corpus through a bulk release, against per image and a bare loop.

* Wall time of an N-item corpus through ``sync --source release`` at a key rate of 60/min and
  600/min, each run for real (a fresh account), against the per-image sync at the same rate. The
  per-image figure is computed from section 3's measured rate-limited regime (its achieved/limit
  ratio): ``2 + ceil(N/500) + N`` API calls at ``limit × ratio`` a minute, since running it would
  take days.
* Explode throughput on loopback (no rate limit): images placed per second and CPU ms per image of
  the release sync, against ``bench_worker.py bare-release`` (the same parts fetched 8 at once, read
  with pyarrow, the images written to files by 2 threads: no checks, no hashing, no manifest), in
  alternating order; target ≥ 0.8 of the bare loop.
* Peak RSS of the release sync at two corpus sizes: it should not grow with the corpus.

The emulator builds each part on its first fetch and keeps it on disk, so a throwaway pull warms
every part before anything is timed.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench_report import _met, _table, fmt

__all__ = ["bench_release", "release_lines"]

RATES = (60, 600)


def _release_run(ctx: Any, emu: Any, work: Path, dest: Path, rate: float, concurrency: int) -> dict:
    key, _ = emu.key(rate_limit=int(rate) if rate < ctx.UNLIMITED else ctx.UNLIMITED)
    r = ctx.run_worker("mirror", emu, key, work, sync=["--dest", str(dest), "--rate-limit", str(rate),
                                                       "--concurrency", str(concurrency), "--source", "release"])
    report = r["report"]
    if report["status"] != "complete" or report["failed"] or report.get("source") != "release":
        raise RuntimeError(f"release sync did not complete: {report}")
    ctx.discard(dest)
    return r


def _bare_run(ctx: Any, emu: Any, work: Path, dest: Path) -> dict:
    key, _ = emu.key()
    r = ctx.run_worker("bare-release", emu, key, work, "--dest", str(dest))
    ctx.discard(dest)
    return r


def bench_release(ctx: Any, data: Path, work: Path, sizes: dict[str, Any], concurrency: int,
                  per_image_ratio: float | None) -> dict:
    """``ctx``: scripts/bench.py itself (its emulator, run_worker, discard, log and UNLIMITED)."""
    log: Callable[[str], None] = ctx.log
    n, pairs = sizes["release_items"], sizes["release_pairs"]
    out: dict[str, Any] = {"items": n, "per_image_ratio": per_image_ratio}
    log(f"release: {n:,} items")
    with ctx.emulator(data, n) as emu:
        warm = _bare_run(ctx, emu, work, work / "dest-release-warm")
        log(f"  warmed {warm['items']:,} images in {warm['parts']} parts in {warm['wall_s']:.1f} s")
        out["parts"], out["mb"] = warm["parts"], warm["bytes"] / 1e6
        rounds = []
        for i in range(pairs):
            first_bare = i % 2 == 0
            bare = _bare_run(ctx, emu, work, work / "dest-release-bare") if first_bare else None
            mirror = _release_run(ctx, emu, work, work / "dest-release", ctx.UNLIMITED, concurrency)
            bare = bare or _bare_run(ctx, emu, work, work / "dest-release-bare")
            rounds.append({"bare_ips": n / bare["wall_s"], "mirror_ips": n / mirror["wall_s"],
                           "ratio": bare["wall_s"] / mirror["wall_s"],
                           "bare_cpu_ms": 1000 * bare["cpu_s"] / n, "mirror_cpu_ms": 1000 * mirror["cpu_s"] / n,
                           "bare_rss_mb": bare["rss_mb"], "mirror_rss_mb": mirror["rss_mb"],
                           "mirror_api_calls": mirror["report"]["api_calls"]})
            log(f"  round {i + 1}: mirror {rounds[-1]['mirror_ips']:.0f}/s, bare {rounds[-1]['bare_ips']:.0f}/s, "
                f"ratio {rounds[-1]['ratio']:.2f}")
        out["explode"] = rounds
        out["ratio"] = statistics.median(r["ratio"] for r in rounds)
        out["mirror_ips"] = statistics.median(r["mirror_ips"] for r in rounds)
        out["mirror_cpu_ms"] = statistics.median(r["mirror_cpu_ms"] for r in rounds)
        ways = []
        for rate in RATES:
            r = _release_run(ctx, emu, work, work / "dest-release-rate", rate, concurrency)
            calls = 2 + math.ceil(n / 500) + n
            per_image_s = calls * 60 / (rate * per_image_ratio) if per_image_ratio else None
            ways.append({"rate": rate, "release_s": r["wall_s"], "release_api_calls": r["report"]["api_calls"],
                         "per_image_api_calls": calls, "per_image_s": per_image_s,
                         "speedup": per_image_s / r["wall_s"] if per_image_s else None})
            log(f"  at {rate}/min: release {r['wall_s']:.1f} s, per image {fmt(per_image_s, 0)} s (computed)")
        out["ways"] = ways
    rss = []
    for m in sizes["release_rss"]:
        with ctx.emulator(data, m) as emu:
            warm = _bare_run(ctx, emu, work, work / "dest-release-warm")
            r = _release_run(ctx, emu, work, work / "dest-release-rss", ctx.UNLIMITED, concurrency)
            rss.append({"items": m, "parts": warm["parts"], "part_kb": warm["bytes"] / warm["parts"] / 1024,
                        "rss_mb": r["rss_mb"], "ips": m / r["wall_s"]})
            log(f"  {m:,} items: peak RSS {r['rss_mb']:.0f} MB")
    out["rss"] = rss
    out["rss_growth"] = rss[-1]["rss_mb"] / rss[0]["rss_mb"]
    return out


def release_lines(figures: dict[str, Any]) -> list[str]:
    """The section's Markdown (nothing for figures from before it existed)."""
    r = figures.get("release")
    if not r:
        return []
    lines = ["", "## 8. Bulk release", "",
             f"A {r['items']:,}-item corpus ({r['parts']:,} parts, {fmt(r['mb'], 0)} MB) through `sync --source "
             "release` (a fresh account each run) against the per-image sync at the same key rate. The "
             "per-image times are computed, not run: `2 + ⌈N/500⌉ + N` API calls at the rate section 3 achieved "
             f"(achieved/limit {fmt(r['per_image_ratio'], 3)}).", ""]
    lines += _table(["case", "key rate/min", "release s", "release API calls", "per-image API calls",
                     "per-image s (computed)", "speed-up"],
                    [[f"at {w['rate']}/min", w["rate"], w["release_s"], w["release_api_calls"],
                      w["per_image_api_calls"], w["per_image_s"], w["speedup"]] for w in r["ways"]])
    lines += ["", "Explode throughput on loopback, no rate limit: the release sync against a bare loop that fetches "
              "the same parts (8 at once), reads them with pyarrow and writes each image to a file from 2 threads, "
              "with no verification, hashing, temp file and rename, or manifest; alternating order.", ""]
    lines += _table(["case", "bare img/s", "mirror img/s", "ratio", "bare CPU ms/img", "mirror CPU ms/img",
                     "bare peak RSS MB", "mirror peak RSS MB"],
                    [[f"round {i + 1}", x["bare_ips"], x["mirror_ips"], x["ratio"], x["bare_cpu_ms"],
                      x["mirror_cpu_ms"], x["bare_rss_mb"], x["mirror_rss_mb"]] for i, x in enumerate(r["explode"])])
    lines += ["", f"Median ratio **{fmt(r['ratio'])}** (target ≥ 0.8: {_met(r['ratio'], 0.8)}); the mirror placed "
              f"{fmt(r['mirror_ips'], 0)} images/s at {fmt(r['mirror_cpu_ms'])} ms CPU per image.", ""]
    lines += _table(["case", "items", "parts", "mean part KB", "peak RSS MB", "img/s"],
                    [[f"{x['items']:,} items", x["items"], x.get("parts"), x.get("part_kb"), x["rss_mb"], x["ips"]]
                     for x in r["rss"]])
    lines += ["", f"Peak RSS × {fmt(r['rss_growth'])} from {r['rss'][0]['items']:,} to {r['rss'][-1]['items']:,} "
              f"items (independent of corpus size = 1.00; target ≤ 1.25: {_met(r['rss_growth'], 1.25, at_most=True)}). "
              "The emulator's parts grow with its shard sets up to 256 rows, so here a bigger corpus also means "
              "bigger parts; what a run holds is bounded by the parts in hand, not by the corpus."]
    return lines
