"""The detectors inside the emulators: they separate clean fakes from reals by pixels alone, and
lose that ability when the corpus's own perturbations wear the generator fingerprint down."""

from __future__ import annotations

import aiohttp
import pytest

from mirror.emulator.detectors import BandDetector, PeakDetector

N = 16  # per class


def _auc(reals: list[float], fakes: list[float]) -> float:
    wins = sum((f > r) + 0.5 * (f == r) for f in fakes for r in reals)
    return wins / (len(reals) * len(fakes))


@pytest.fixture(scope="module")
def scores(media) -> dict[tuple[str, str], tuple[list[float], list[float]]]:
    out = {}
    for name, detector in (("peak", PeakDetector()), ("band", BandDetector())):
        for condition in ("clean", "jpeg_q30", "blur_4", "resize_0.75"):
            reals = [detector.analyse(media["face"](i, "real", condition)).p_fake for i in range(N)]
            fakes = [detector.analyse(media["face"](i, "fake", condition)).p_fake for i in range(N)]
            out[name, condition] = reals, fakes
    return out


@pytest.mark.parametrize("name", ["peak", "band"])
def test_clean_fakes_are_separated(scores, name):
    reals, fakes = scores[name, "clean"]
    assert _auc(reals, fakes) > 0.9
    assert sum(fakes) / N > 0.75 and sum(reals) / N < 0.3


@pytest.mark.parametrize("name", ["peak", "band"])
def test_heavy_perturbations_wear_the_detectors_down(scores, name):
    clean = sum(scores[name, "clean"][1]) / N
    assert sum(scores[name, "jpeg_q30"][1]) / N < clean - 0.2  # fakes look far less fake after JPEG q30
    assert _auc(*scores[name, "blur_4"]) < 0.75  # blur removes the fingerprint: near chance
    assert _auc(*scores[name, "jpeg_q30"]) < _auc(*scores[name, "clean"])


def test_the_two_services_degrade_differently(scores):
    """A resize moves the grid off the known frequencies: the peak detector loses it, the band one does not."""
    band, peak = _auc(*scores["band", "resize_0.75"]), _auc(*scores["peak", "resize_0.75"])
    assert band > 0.8 and band > peak + 0.1


def test_padding_does_not_change_the_statistic(media):
    image = media["face"](3, "fake")
    for detector in (PeakDetector(), BandDetector()):
        assert detector.analyse(image).statistic == pytest.approx(detector.analyse(media["padded"](image)).statistic)


def test_verdict_is_deterministic_and_from_pixels_only(media):
    image = media["face"](5, "fake")
    assert PeakDetector().analyse(image) == PeakDetector().analyse(image)
    same_pixels_other_bytes = media["padded"](image, (256, 256), "PNG")
    assert PeakDetector().analyse(same_pixels_other_bytes).statistic == pytest.approx(
        PeakDetector().analyse(image).statistic)


async def test_the_service_reports_its_detector(dfd_emulator, media):
    image = media["face"](6, "fake")
    form = aiohttp.FormData()
    form.add_field("file", image, filename="a.jpg", content_type="image/jpeg")
    async with aiohttp.ClientSession() as s, s.post(
            dfd_emulator.url + "/detect", data=form,
            headers={"Authorization": f"Bearer {dfd_emulator.token}", "Prefer": "wait"}) as r:
        score = (await r.json())["item"]["image_metrics"]["score"]
    assert score == round(BandDetector(salt="deepfake-detection/0").analyse(image).p_fake, 4)
