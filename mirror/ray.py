"""``mirror.ray``: the Ray entry points (``pip install 'margen-mirror[ray]'``), at home in ``mirror.cluster``.

    import mirror.ray
    ds = mirror.ray.read_mirror("data/faces", columns=["id", "kind", "perturbation"], filters={"kind": "fake"})
    report = mirror.ray.run_score_ray("data/faces", "python:mypkg.detect:Detector", workers=4, gpus_per_worker=1)

Importing this module imports Ray; ``import mirror`` alone never does.
"""

from __future__ import annotations

from mirror.cluster import require_ray

require_ray()

from mirror.cluster.read import read_mirror  # noqa: E402
from mirror.cluster.score import run_score_ray  # noqa: E402

__all__ = ["read_mirror", "run_score_ray"]
