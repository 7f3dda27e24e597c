"""Replaying the append-only JSON-lines records of .state: whole records only, in flat memory."""

from __future__ import annotations

from pathlib import Path

import pytest

from mirror.store.records import replay_records
from mirror.store.reservations import ReservationLog, read_pending


def test_replay_skips_torn_foreign_and_incomplete_lines(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    assert list(replay_records(path, "op")) == []           # absent: nothing, no error
    path.write_text('{"op":"a","id":"1"}\n[1,2]\n"text"\n{"id":"2"}\n\n{"op":"b","id":"3"}\n{"op":"c","id')
    assert [r["op"] for r in replay_records(path, "op", "id")] == ["a", "b"]


def test_a_killed_runs_journal_replays_what_is_pending(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    journal = ReservationLog(path)
    journal.reserving("paid", "bench", "tok-paid")
    journal.reserved("paid", charged=True)
    journal.reserving("unanswered", "bench", "tok-unanswered")
    journal.reserving("finished", "bench", "tok-finished")
    journal.reserved("finished", charged=True)
    journal.done(["finished"])
    with path.open("a") as fh:                                 # a kill in the middle of a write
        fh.write('{"op":"reserve","id":"torn"')
    pending = read_pending(path)                               # what the next run sees; nothing closed
    assert set(pending) == {"paid", "unanswered"}
    assert pending["paid"].charged is True and pending["unanswered"].charged is None
    assert pending["unanswered"].token == "tok-unanswered"    # so its very request can be sent again
    journal.close()                                            # a run that ends keeps only what is pending
    again = read_pending(path)
    assert set(again) == {"paid", "unanswered"}
    assert again["unanswered"].token == "tok-unanswered" and again["paid"].token == "tok-paid"
    assert len(path.read_text().splitlines()) == 3
    reopened = ReservationLog(path)
    assert reopened.unanswered_token("unanswered") == "tok-unanswered"
    assert reopened.unanswered_token("paid") is None           # answered: a new reservation gets a new key
    reopened.close()


def test_a_journal_with_nothing_pending_is_emptied_in_place_and_keeps_working(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    journal = ReservationLog(path)                                    # none yet: created empty
    assert path.read_text() == "" and not journal.pending
    journal.reserving("a", "bench", "tok-a")
    journal.reserved("a", charged=True)
    journal.done(["a"])
    assert len(path.read_text().splitlines()) == 3
    journal.close()                                            # nothing pending: emptied, not rewritten
    assert path.read_text() == ""
    assert not (tmp_path / "journal.rewrite").exists()

    with path.open("a") as fh:                                 # an older version's finished journal
        fh.write('{"op":"reserve","id":"b","b":null}\n{"op":"reserved","id":"b","charged":true}\n'
                 '{"op":"done","id":"b"}\n')
    journal = ReservationLog(path)
    assert path.read_text() == "" and not journal.pending
    journal.reserving("c", "bench", "tok-c")                            # appends from the start of the emptied file
    journal.close()
    assert set(read_pending(path)) == {"c"}
    assert path.read_text().splitlines() == ['{"op": "reserve", "id": "c", "b": "bench", "k": "tok-c"}']


def test_a_ledger_holds_its_detectors_lock_and_replays_an_older_versions_file(tmp_path: Path) -> None:
    from mirror.errors import LockHeldError
    from mirror.store import Layout
    from mirror.store.submissions import SubmissionLog

    layout = Layout.prepare(tmp_path / "dest")
    path = layout.state / "scores" / "synthetiq.jsonl"
    path.parent.mkdir(parents=True)
    path.write_text('{"op":"submit","sha":"a","id":"i-a","t":1.0}\n{"op":"job","sha":"a","job":"j-a","t":1.1}\n'
                    '{"op":"submit","sha":"b","id":"i-b","t":1.2}\n{"op":"submit","sha":"c","id":"i-c"}\n'
                    '{"op":"forget","sha":"c"}\n{"op":"job","sha":"b","jo')           # killed mid-write
    ledger = SubmissionLog(layout, "synthetiq")
    assert {sha: (e.item_id, e.job) for sha, e in ledger.entries.items()} == {"a": ("i-a", "j-a"), "b": ("i-b", None)}
    assert path.read_text().splitlines() == ['{"op": "submit", "sha": "a", "id": "i-a"}',
                                             '{"op": "job", "sha": "a", "job": "j-a"}',
                                             '{"op": "submit", "sha": "b", "id": "i-b"}']     # compacted on open
    with pytest.raises(LockHeldError, match="another scoring run for synthetiq"):
        SubmissionLog(layout, "synthetiq")
    other = SubmissionLog(layout, "deepfake-detection")           # another detector's run may share DEST
    other.close()
    ledger.submitted("b", "j-b")
    ledger.close()
    again = SubmissionLog(layout, "synthetiq")                    # the lock went with the closed log
    assert again.entries["b"].job == "j-b"
    again.close()
