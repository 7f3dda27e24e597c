"""Scale out on Ray (the ``ray`` extra): score a mirror across a cluster, read it as a Ray Dataset.

    from mirror.cluster import read_mirror, run_score_ray       # or: import mirror.ray
    report = run_score_ray("data/faces", "python:mypkg.detect:Detector", workers=4, gpus_per_worker=1)
    ds = read_mirror("data/faces", columns=["id", "kind", "perturbation"], filters={"kind": "fake"})

Nothing here imports Ray until it is used: ``margen-mirror`` without ``--ray`` never loads it.
``session`` joins or starts a cluster, ``actors`` holds the shared pacer and the submission keeper,
``worker`` is the scoring actor, ``score`` the driver of a distributed run, ``read`` the reader.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from mirror.errors import UsageError

if TYPE_CHECKING:
    from mirror.cluster.read import read_mirror
    from mirror.cluster.score import run_score_ray

__all__ = ["read_mirror", "run_score_ray", "require_ray"]

_LAZY = {"read_mirror": "mirror.cluster.read", "run_score_ray": "mirror.cluster.score"}


def require_ray() -> None:
    """Raise a one-line UsageError when Ray (with Ray Data) is not installed."""
    try:
        importlib.import_module("ray.data")
    except ImportError:
        raise UsageError("Ray is not installed (--ray and mirror.ray need it): "
                         "pip install 'margen-mirror[ray]'") from None


def __getattr__(name: str) -> Any:
    home = _LAZY.get(name)
    if home is None:
        raise AttributeError(f"module 'mirror.cluster' has no attribute {name!r}")
    require_ray()
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
