"""A key typed on the command line is never printed back; key files are read the way ssh reads one.

Every verb's parser is enumerated from ``build_parser()`` (and the emulators' own parsers), so a
flag added later is fed a key-shaped value here without anyone remembering to add it.
"""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mirror.cli import build_parser, main
from mirror.config import load_api_key
from mirror.emulator.detectors.server import build_parser as build_detector_emulator_parser
from mirror.emulator.server import build_parser as build_emulator_parser
from mirror.errors import UsageError

BENCH = "synthetic-face-v1"
# Parsers the top-level one only names: ``main`` hands their argv on unparsed.
OWN_PARSERS = {"emulator": build_emulator_parser, "detector-emulator": build_detector_emulator_parser}


def _verb_parsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    verbs = dict(subs.choices)
    verbs.update({verb: build() for verb, build in OWN_PARSERS.items()})
    return verbs


def _all_parsers() -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield "margen-mirror", build_parser()
    yield from _verb_parsers().items()


def _invocations(verb: str, parser: argparse.ArgumentParser, key: str) -> Iterator[list[str]]:
    """Every way a user could put ``key`` in front of this verb: as each flag's value (spaced, with
    ``=``, and under an abbreviation of the flag), as each positional, and as ``--api-key``."""
    yield [verb, "--api-key", key]                          # the case: an abbreviation once
    yield [verb, "--api-key=" + key]
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        if not action.option_strings:
            yield [verb, key]
            continue
        for flag in action.option_strings:
            yield [verb, f"{flag}={key}"]
            if action.nargs != 0:
                yield [verb, flag, key]
            if flag.startswith("--") and len(flag) > 6:
                yield [verb, flag[:-2], key]


def _keys() -> list[str]:
    return [f"mgn_live_{secrets.token_hex(16)}", f"mgn_test_{secrets.token_urlsafe(18)}"]


@pytest.fixture
def bare(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh working folder, no key in the environment, and a base URL nothing listens on."""
    for name in [n for n in os.environ if n.startswith("MARGEN_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("MARGEN_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _run_main(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:     # argparse exits on its own errors (and on --help)
        return int(exc.code or 0)


def test_every_parser_refuses_abbreviated_flags():
    """``--api-key`` must not silently mean ``--api-key-file`` (nor any prefix any other flag)."""
    parsers = list(_all_parsers())
    assert {"sync", "score", "report", "emulator", "detector-emulator", "completion"} <= {n for n, _ in parsers}
    assert [name for name, p in parsers if p.allow_abbrev] == []


@pytest.mark.parametrize("verb", sorted(_verb_parsers()))
def test_a_key_given_to_any_flag_of_any_verb_is_never_printed(verb, bare, capfd):
    parser = _verb_parsers()[verb]
    for key in _keys():
        for argv in _invocations(verb, parser, key):
            code = _run_main(argv)
            out, err = capfd.readouterr()
            assert key not in out + err, (argv, out + err)
            assert code == 2, (argv, code, err)
            assert len(err.strip().splitlines()) == 1, (argv, err)
    assert list(bare.iterdir()) == [], "a refused run created something"


def test_the_refusal_says_what_to_do_instead(bare, capfd):
    key = _keys()[0]
    assert _run_main(["usage", "--api-key", key]) == 2
    err = capfd.readouterr().err
    assert "--api-key-file FILE" in err and "MARGEN_API_KEY" in err and key not in err
    assert _run_main(["usage", "--api-key-file", key]) == 2
    err = capfd.readouterr().err
    assert "--api-key-file takes a path to a file holding the key, not the key itself" in err and key not in err


@pytest.mark.parametrize("token", [secrets.token_hex(20), "sk-" + secrets.token_urlsafe(24)])
def test_a_key_file_argument_that_is_not_a_path_is_not_echoed(token, bare):
    """A key of another shape (not ``mgn_…``) given to --api-key-file: the message does not repeat it."""
    with pytest.raises(UsageError) as info:
        load_api_key(token)
    assert token not in str(info.value)
    assert "--api-key-file takes a path to a file holding the key, not the key itself" in str(info.value)
    with pytest.raises(UsageError) as info:   # a missing file that looks like a path is still named
        load_api_key("keys/margen.key")
    assert "keys/margen.key" in str(info.value) and "No such file" in str(info.value)
    empty = bare / "empty.key"
    empty.touch(mode=0o600)
    with pytest.raises(UsageError, match=r"empty\.key is empty"):
        load_api_key(empty)


def _cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("MARGEN_")}
    return subprocess.run([sys.executable, "-m", "mirror", *args], env={**base, **env}, cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def _key_file(path: Path, key: str, mode: int) -> Path:
    path.write_text(key + "\n")
    path.chmod(mode)
    return path


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_a_key_file_others_can_read_is_refused_like_ssh_does(emulator, tmp_path, mode):
    key = emulator.admin.create_key("live", balance=1000, rate_limit=100_000, account="acct_perm")
    path = _key_file(tmp_path / "margen.key", key, mode)
    dest = tmp_path / "d"
    for how in (["--api-key-file", str(path)], []):
        env = {} if how else {"MARGEN_API_KEY_FILE": str(path)}
        run = _cli("sync", "--benchmark", BENCH, "--dest", str(dest), "--base-url", emulator.url, *how,
                   env=env, cwd=tmp_path)
        assert run.returncode == 2, run.stderr
        assert len(run.stderr.strip().splitlines()) == 1 and f"chmod 600 {path}" in run.stderr, run.stderr
        assert key not in run.stdout + run.stderr
    assert not dest.exists()
    assert emulator.admin.ledger("acct_perm")["charge_count"] == 0
    path.chmod(0o600)
    ok = _cli("usage", "--base-url", emulator.url, "--api-key-file", str(path), env={}, cwd=tmp_path)
    assert ok.returncode == 0 and "balance 1000" in ok.stdout, ok.stderr


def test_margen_api_key_file_is_read_and_the_flag_wins_over_it(emulator, tmp_path):
    """--api-key-file > $MARGEN_API_KEY_FILE > $MARGEN_API_KEY."""
    keys = {name: emulator.admin.create_key("live", balance=balance, rate_limit=100_000, account=name)
            for name, balance in (("acct_flag", 11), ("acct_envfile", 22), ("acct_env", 33))}
    flag = _key_file(tmp_path / "flag.key", keys["acct_flag"], 0o600)
    envfile = _key_file(tmp_path / "env.key", keys["acct_envfile"], 0o600)
    args = ("usage", "--base-url", emulator.url)
    both_env = {"MARGEN_API_KEY_FILE": str(envfile), "MARGEN_API_KEY": keys["acct_env"]}
    assert "balance 33" in _cli(*args, env={"MARGEN_API_KEY": keys["acct_env"]}, cwd=tmp_path).stdout
    assert "balance 22" in _cli(*args, env=both_env, cwd=tmp_path).stdout
    assert "balance 11" in _cli(*args, "--api-key-file", str(flag), env=both_env, cwd=tmp_path).stdout
    missing = _cli(*args, env={"MARGEN_API_KEY_FILE": str(tmp_path / "nope.key")}, cwd=tmp_path)
    assert missing.returncode == 2 and "MARGEN_API_KEY_FILE" in missing.stderr and "nope.key" in missing.stderr

