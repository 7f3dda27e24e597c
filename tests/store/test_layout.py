"""Hostile ids never escape DEST and never collide; Layout.prepare explains unusable DESTs."""

from __future__ import annotations

import errno
import os
import random
import re
import tempfile
from pathlib import Path

import pytest

from mirror.errors import DestinationError
from mirror.store import Layout, image_relpath, partial_image_path, resolve_inside, safe_component

HOSTILE = [
    "../../x", "..", ".", "", "/", "/etc/passwd", "a/b", "a\\b", "%2F", "..%2F..%2Fetc", "a\x00b", "\x00",
    "x" * 300, "é", "café", "😀", "\ud800", "ＡＢＣ", " ", "a b", "a\nb", "-rf", ".hidden", "~", "~root",
    "a~b", "_none", "K\u212a", "CON:", "a" * 101,
]


def _generated_ids(n: int) -> list[str]:
    """Random ids built from the characters most likely to break a path, plus near-twins."""
    rng = random.Random(1234)
    alphabet = ["a", "Z", "0", ".", "..", "-", "_", "/", "\\", "%2F", "\x00", "~", " ", "é", "😀", "\ud800", ":"]
    ids = {rng.choice(["", "a"]) + "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
           for _ in range(n)}
    for base in ("img1", "real.2", "A-b_c"):  # ids that differ only by one unsafe character
        ids.update(f"{base}{ch}x" for ch in "/\\\x00 ~%:?*é")
        ids.add(f"{base}_x")
    ids.update(HOSTILE)
    return sorted(ids)


def test_safe_ids_are_kept_verbatim() -> None:
    for raw in ("img_000123", "a", "A.b-c_d", "0" * 100, "CON", "nul", "x.jpg"):
        assert safe_component(raw) == raw


def test_none_has_its_own_name() -> None:
    assert safe_component(None) == "_none"
    assert safe_component("_none") != "_none"


@pytest.mark.parametrize("raw", HOSTILE)
def test_hostile_ids_are_hashed_into_one_plain_component(raw: str) -> None:
    name = safe_component(raw)
    assert re.fullmatch(r"[A-Za-z0-9._-]{1,60}~[0-9a-f]{16}", name), name
    assert not name.startswith((".", "-", "~"))


def test_generated_ids_never_collide_or_escape(tmp_path: Path) -> None:
    ids = _generated_ids(4000)
    assert len(ids) > 3000
    names: dict[str, str] = {}
    for raw in ids:
        name = safe_component(raw)
        assert names.setdefault(name, raw) == raw, f"{raw!r} and {names[name]!r} both map to {name!r}"
        assert name not in (".", "..") and "/" not in name and "\x00" not in name
        assert len(name.encode()) <= 251  # room for ".jpg" within NAME_MAX
        assert ("~" in name) == (name != raw)
        target = resolve_inside(tmp_path, image_relpath(raw, raw, raw))
        assert target.is_relative_to(tmp_path.resolve())
        assert target.relative_to(tmp_path.resolve()).parts == ("images", name, name, f"{name}.jpg")
    flat = tmp_path / "flat"  # the OS accepts every name, and none folds onto another
    flat.mkdir()
    for name in names:
        (flat / f"{name}.jpg").touch(exist_ok=False)
    assert len(os.listdir(flat)) == len(names)


def test_image_relpath_is_posix_and_groups_by_real() -> None:
    assert image_relpath("ff++", None, "../../x") == (
        f"images/ff~{safe_component('ff++')[-16:]}/_none/{safe_component('../../x')}.jpg"
    )
    assert image_relpath("bench", "real_1", "fake_9") == "images/bench/real_1/fake_9.jpg"


@pytest.mark.parametrize("relpath", ["../x", "images/../../x", "/etc/passwd", "", ".", "images/a\x00b"])
def test_resolve_inside_refuses_escapes(tmp_path: Path, relpath: str) -> None:
    with pytest.raises(DestinationError):
        resolve_inside(tmp_path, relpath)


def test_resolve_inside_refuses_symlink_out(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "images").symlink_to(tmp_path)
    with pytest.raises(DestinationError):
        resolve_inside(dest, "images/x.jpg")


def test_prepare_creates_every_folder(tmp_path: Path) -> None:
    layout = Layout.prepare(tmp_path / "new" / "dest")
    for folder in (layout.images, layout.manifest, layout.state, layout.tmp, layout.reports, layout.scores):
        assert folder.is_dir()
    assert layout.tmp.parent == layout.state and layout.lock_path.parent == layout.state
    assert list(layout.tmp.iterdir()) == []  # the write probe cleaned up after itself
    assert Layout.prepare(layout.dest) == layout  # idempotent


def test_layout_dest_is_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert Layout(Path("d")).dest == tmp_path / "d"


def test_dest_that_is_a_file_is_refused(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    dest.write_text("not a folder")
    with pytest.raises(DestinationError, match="is a file, not a folder"):
        Layout.prepare(dest)
    with pytest.raises(DestinationError):
        Layout.prepare(dest / "below")  # a file in the middle of the path


def test_file_in_the_way_of_a_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "images").write_text("oops")
    with pytest.raises(DestinationError, match="images is a file") as info:
        Layout.prepare(tmp_path)
    assert "\n" not in str(info.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores permission bits")
def test_unwritable_dest_is_refused(tmp_path: Path) -> None:
    dest = tmp_path / "ro"
    dest.mkdir()
    dest.chmod(0o500)
    try:
        with pytest.raises(DestinationError, match="permissions"):
            Layout.prepare(dest)
    finally:
        dest.chmod(0o700)


@pytest.mark.parametrize(("err", "hint"), [(errno.EACCES, "permissions"), (errno.ENOSPC, "free some space"),
                                           (errno.EROFS, "read-only")])
def test_write_probe_failure_says_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, err: int, hint: str
) -> None:
    """Works as root too: simulate what a read-only, full or foreign folder does to the probe."""

    def refuse(**_: object) -> None:
        raise OSError(err, os.strerror(err))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(DestinationError, match=hint) as info:
        Layout.prepare(tmp_path)
    assert "\n" not in str(info.value)


def test_clean_tmp_removes_leftovers(tmp_path: Path) -> None:
    layout = Layout.prepare(tmp_path)
    (layout.tmp / "half.jpg.part").write_bytes(b"\xff\xd8")
    (layout.tmp / "dir").mkdir()
    (layout.tmp / "dir" / "f").touch()
    assert layout.clean_tmp() == 2
    assert list(layout.tmp.iterdir()) == []
    assert Layout(tmp_path / "missing").clean_tmp() == 0


def test_partial_images_are_hidden_beside_their_image_and_cleaned_without_touching_anything_else(tmp_path: Path):
    layout = Layout.prepare(tmp_path)
    folder = layout.images / "bench" / "real_1"
    folder.mkdir(parents=True)
    partial = Path(partial_image_path(f"{folder}/", "0123456789ab", 7))
    assert partial.parent == folder and partial.name.startswith(".") and not partial.name.endswith(".jpg")
    partial.write_bytes(b"\xff\xd8 half")
    kept = [folder / "item.jpg", folder / ".DS_Store", folder / "notes.part", folder / ".0123-1.part",
            layout.images / "bench" / ".0123456789ab-x.part"]
    for path in kept:
        path.write_bytes(b"x")
    assert layout.clean_partial_images() == 1
    assert not partial.exists() and all(path.exists() for path in kept)
    assert Layout(tmp_path / "missing").clean_partial_images() == 0
