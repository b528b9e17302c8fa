"""The integrity record: a checksummed snapshot plus a journal of checksummed lines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from oculi.store import integrity as integrity_mod
from oculi.store.integrity import FileEntry, IntegrityRecord, RecordError, is_leftover_temp, journal_path


def entry(n: int) -> FileEntry:
    return FileEntry(n, f"{n:064x}", "data", "items", n)


def test_snapshot_and_journal_round_trip_and_fold(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(integrity_mod, "JOURNAL_MAX_LINES", 3)
    path = tmp_path / "integrity.json"
    rec = IntegrityRecord()
    rec.save(path)
    for n in range(1, 4):
        rec.files[f"f{n}"] = entry(n)
        rec.tables["items"] = {"version": n, "rows": n}
        rec.append(path, {f"f{n}": entry(n)}, {"items": rec.tables["items"]})
    assert len(journal_path(path).read_bytes().splitlines()) == 3
    back = IntegrityRecord.load(path)
    assert back.files == rec.files and back.tables == {"items": {"version": 3, "rows": 3}}
    rec.files["f4"] = entry(4)
    rec.append(path, {"f4": entry(4)}, {})  # the fourth write folds the journal into a snapshot
    assert not journal_path(path).exists()
    assert IntegrityRecord.load(path).files == rec.files


def test_damage_to_the_record_is_detected_and_a_torn_last_line_is_not_damage(tmp_path: Path) -> None:
    path = tmp_path / "integrity.json"
    rec = IntegrityRecord()
    rec.save(path)
    for n in (1, 2):
        rec.append(path, {f"f{n}": entry(n)}, {})
    j = journal_path(path)
    lines = j.read_bytes().splitlines(keepends=True)
    j.write_bytes(lines[0] + lines[1][: len(lines[1]) // 2])  # a crash while appending the second
    assert set(IntegrityRecord.load(path).files) == {"f1"}
    j.write_bytes(lines[0].replace(b'"size":1', b'"size":9') + lines[1])  # an edited first line
    with pytest.raises(RecordError, match="line 1"):
        IntegrityRecord.load(path)
    j.unlink()
    doc = json.loads(path.read_text())
    doc["tables"] = {"items": {"version": 99}}
    path.write_text(json.dumps(doc))
    with pytest.raises(RecordError, match="own checksum"):
        IntegrityRecord.load(path)
    path.write_bytes(b"\x00" * 10)
    with pytest.raises(RecordError):
        IntegrityRecord.load(path)
    assert IntegrityRecord.load(tmp_path / "none.json") is None


@pytest.mark.parametrize("name,leftover", [
    (".collection.json.3f2a.tmp", True), ("18446744073709551612.manifest-0b1c2d", True), ("abc.lance#2", True),
    ("18446744073709551612.manifest", False), ("abc.lance", False), ("integrity.json.journal", False),
    ("a#b.lance", False),
])
def test_leftover_temporary_file_names(name: str, leftover: bool) -> None:
    assert is_leftover_temp(name) is leftover
