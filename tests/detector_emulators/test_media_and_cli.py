"""Container sniffing/probing and the ``detector-emulator`` CLI (READY line, token file, signals)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from mirror.emulator.detectors import DetectorEmulatorConfig
from mirror.emulator.detectors.media import BadContainer, probe_video, sniff


def test_sniff_and_probe(media):
    for name, kind in (("mp4", "mp4"), ("webm", "webm"), ("avi", "avi")):
        info = probe_video(media[name](width=800, height=600, fps=25.0, seconds=4.0), kind)
        assert (info.width, info.height, round(info.fps), round(info.duration)) == (800, 600, 25, 4)
        assert sniff(media[name]()) == kind
    assert sniff(media["wav"]()) == "wav" and sniff(media["face"](0, "real")) == "jpeg" and sniff(b"hello") is None
    with pytest.raises(BadContainer):
        probe_video(b"\x00\x00\x00\x18ftypisom" + bytes(12), "mp4")


def test_config_is_strict():
    with pytest.raises(ValueError):
        DetectorEmulatorConfig(service="other")
    with pytest.raises(ValueError):
        DetectorEmulatorConfig(service="synthetiq", host="0.0.0.0")
    assert DetectorEmulatorConfig(service="synthetiq").api_token == "stq_demo_token"
    assert DetectorEmulatorConfig(service="deepfake-detection").api_token == "dfd_demo_token"


def test_cli_ready_token_file_and_sigterm(tmp_path: Path):
    token_file = tmp_path / "token"
    token_file.write_text("secret-token\n")
    code = "import sys; from mirror.emulator.detectors import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.Popen([sys.executable, "-c", code, "--service", "deepfake-detection", "--port", "0",
                             "--token-file", str(token_file), "--processing-seconds", "0"],
                            stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("READY http://127.0.0.1:")
        url = line.split()[1]
        req = urllib.request.Request(url + "/detect?page=1", headers={"Authorization": "Bearer secret-token"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert json.loads(resp.read())["total_count"] == 0
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_cli_rejects_a_bad_service():
    code = "import sys; from mirror.emulator.detectors import main; sys.exit(main(sys.argv[1:]))"
    done = subprocess.run([sys.executable, "-c", code, "--service", "nope", "--port", "0"], capture_output=True)
    assert done.returncode == 2
