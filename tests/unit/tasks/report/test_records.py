"""Records files: CSV, JSON, Markdown; bad input gives a clear error or a warning, never a crash."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from oculi.core.errors import InputError
from oculi.tasks.report.records import link_records, parse_records, read_records


def test_csv_json_md_parse_to_the_same_records() -> None:
    csv_ = parse_records(b"id,image,time,text\n1,part-4711.png,2026-11-27T18:00,part 4711 passed\n"
                         b"2,,,\"gate closed, locked\"\n", "log.csv")
    assert [r.text for r in csv_.records] == ["part 4711 passed", "gate closed, locked"]
    assert csv_.records[0].image_refs == ("part-4711.png",) and csv_.records[0].status == "passed"
    assert csv_.records[0].fields["id"] == "1" and csv_.records[1].line == 3
    js = parse_records(json.dumps({"records": [{"image": ["a.png", "b.png"], "note": "Part rejected: scratch"},
                                               "a dog on the sofa"]}).encode(), "log.json")
    assert js.records[0].image_refs == ("a.png", "b.png") and js.records[0].status == "failed"
    assert js.records[1].text == "a dog on the sofa" and js.records[1].status is None
    md = parse_records("# Shift log\n\n- ![](cam1.jpg) Gate closed at 18:00\n- Nobody on site\n".encode(), "log.md")
    assert [r.text for r in md.records] == ["Gate closed at 18:00", "Nobody on site"]
    assert md.records[0].image_refs == ("cam1.jpg",)
    status_col = parse_records(b"part,status\n4711,OK\n4712,NOK\n", "q.csv")
    assert [r.status for r in status_col.records] == ["passed", "failed"]
    assert status_col.records[0].text == "part: 4711; status: OK"
    # the header decides the delimiter, not the notes' punctuation; semicolon and tab files work too
    commas = parse_records(b"image,text\na.png,checked; a dog; ok; fine\n", "n.csv")
    assert commas.records[0].text == "checked; a dog; ok; fine" and commas.records[0].image_refs == ("a.png",)
    semis = parse_records(b"image;text\na.png;checked, fine\n", "n.csv")
    assert semis.records[0].text == "checked, fine"
    tabs = parse_records(b"image\ttext\na.png\tchecked, fine; ok\n", "n.tsv")
    assert tabs.records[0].text == "checked, fine; ok"


@pytest.mark.parametrize("data,name,message", [
    (b"a,b\n1,2,3\n", "x.csv", r"line 2: more cells than the header"),
    (b'[{"text": "x"}, ', "x.json", r"line 1 column \d+: not valid JSON"),
    (b'{"text": "x"}', "x.json", r"must be a list of objects"),
    (b"[1, 2]", "x.json", r"item 0 is int"),
    (b"text\nx\n", "x.xlsx", r"unknown format 'xlsx'"),
    ("Müller prüfte Teil 4711".encode("cp1252"), "x.md", r"not UTF-8 \(byte 0xfc at offset 1\).*--records-encoding"),
    (b"a\x00b\x00", "x.md", r"NUL characters"),
    (b"", "x.csv", r"needs a header row"),
])
def test_bad_records_are_clear_errors(data: bytes, name: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_records(data, name)


def test_encodings() -> None:
    raw = "Prüfer Müller: Teil 4711 in Ordnung".encode("cp1252")
    assert parse_records(raw, "x.md", encoding="cp1252").records[0].text.startswith("Prüfer Müller")
    with pytest.raises(InputError, match="unknown encoding 'klingon'"):
        parse_records(raw, "x.md", encoding="klingon")
    with pytest.raises(InputError, match="not valid utf-16"):
        parse_records(b"abc", "x.md", encoding="utf-16")
    u16 = parse_records("text\nTür zu um 18:00\n".encode("utf-16"), "x.csv")
    assert u16.encoding == "utf-16" and u16.records[0].text == "Tür zu um 18:00"
    sig = parse_records("\ufefftext\nok\n".encode("utf-8"), "x.csv")
    assert sig.encoding == "utf-8-sig" and sig.records[0].text == "ok"


def test_missing_images_warn_and_numbers_link(tmp_path: Path) -> None:
    recs = parse_records(b"image,text\ngone.png,part 9 passed\n,part 4711 passed\n,nothing to link\n", "q.csv")
    link_records(recs, {"img1": "/x/part-4711.png", "img2": "/x/other.png"})
    assert recs.records[0].images == () and any("'gone.png', which is not among" in w for w in recs.warnings)
    assert recs.records[1].images == ("img1",)  # "4711" in the file name
    assert recs.records[2].images == ()
    with pytest.raises(InputError, match="no records file"):
        read_records(tmp_path / "nope.csv")
    with pytest.raises(InputError, match="is a directory"):
        read_records(tmp_path)
