"""What the README promises ``import mirror`` gives, it gives."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import mirror
import mirror.errors

README = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")


def test_every_mirror_name_the_readme_uses_exists():
    names = set(re.findall(r"\bmirror\.([A-Za-z_]\w*)", README))
    assert {"sync", "open_manifest", "MirrorError"} <= names
    assert [n for n in sorted(names) if not hasattr(mirror, n)] == []


def test_every_error_class_the_readme_names_is_importable_from_mirror():
    """The error hierarchy paragraph names classes bare (`UsageError`, `InvalidParam`): each is mirror.X."""
    paragraph = README[README.index("Errors form one hierarchy"):].split("\n\n", 1)[0]
    named = set(re.findall(r"`(?:mirror\.)?([A-Z]\w+)`", paragraph))
    assert {"InvalidParam", "Unauthorized", "ApiError"} <= named
    assert [n for n in sorted(named) if not hasattr(mirror, n)] == []


def test_every_exception_class_of_mirror_errors_is_exported():
    classes = [n for n in mirror.errors.__all__
               if inspect.isclass(getattr(mirror.errors, n)) and issubclass(getattr(mirror.errors, n), Exception)]
    assert "InvalidParam" in classes
    assert [n for n in classes if n not in mirror.__all__ or getattr(mirror, n) is not getattr(mirror.errors, n)] == []
    assert set(mirror.__all__) == set(dir(mirror))
