"""Reading the written records a report checks the images against: CSV, JSON or Markdown.

- CSV: a header row; one record per row. Recognised columns (any case): ``id``; ``image``
  (also ``file``, ``path``, ``images``: one or more names separated by ``;`` or ``|``);
  ``time`` (ISO date-time, or ``HH:MM`` with a ``date`` column); ``status``; ``text`` (also
  ``note``, ``notes``, ``description``, ``entry``, ``record``, ``comment``). Other columns are
  kept as fields and, when there is no text column, written into the text as ``name: value``.
- JSON: a list of objects with the same keys (or strings), or ``{"records": [...]}``.
- Markdown: one record per list item or paragraph line (headings are skipped); an image is
  referred to as ``![...](name.png)`` or by its file name in the text.

Bytes are decoded as UTF-8 (a byte-order mark selects UTF-8/16/32); anything else needs an
explicit ``encoding``. A file that does not parse, or an encoding that is unknown or does not
fit the bytes, raises ``InputError`` naming the file, the line and the fix. A record that
refers to an image the report does not have is kept with a warning (its claims become
"unverifiable"), never dropped silently.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
from dataclasses import dataclass, field
from datetime import date, datetime, time as dtime, tzinfo
from pathlib import Path
from typing import Any, Sequence

from oculi.core.errors import InputError

MAX_RECORDS_BYTES = 5 * 1024 * 1024
MAX_RECORDS = 2000
RECORD_FORMATS = ("csv", "json", "md")

_IMAGE_KEYS = ("image", "images", "file", "filename", "path", "photo", "picture", "frame")
_TEXT_KEYS = ("text", "note", "notes", "description", "entry", "record", "comment", "comments", "remark", "remarks", "log")
_TIME_KEYS = ("time", "timestamp", "datetime", "when", "at")
_DATE_KEYS = ("date", "day")
_STATUS_KEYS = ("status", "result", "verdict", "outcome")
_MD_IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)\)")
_HHMM = re.compile(r"\b([01]?\d|2[0-3])[:.h]([0-5]\d)\b")
_PASS = re.compile(r"\b(pass|passed|passes|ok|okay|good|accepted|conforming|no defects?)\b", re.I)
_FAIL = re.compile(r"\b(fail|failed|fails|reject|rejected|defect|defective|nok|not ok|scrap|scrapped|nonconforming)\b", re.I)


@dataclass
class Record:
    """One record: its text, the images it refers to, and the time and status it states."""

    id: str
    text: str
    line: int
    fields: dict[str, str] = field(default_factory=dict)
    image_refs: tuple[str, ...] = ()  # as written
    images: tuple[str, ...] = ()  # report image ids they resolved to
    time: float | None = None  # epoch seconds
    time_text: str | None = None  # as written ("18:00")
    status: str | None = None  # "passed" | "failed" | None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"id": self.id, "text": self.text, "line": self.line, "images": list(self.images),
                             "image_refs": list(self.image_refs), "status": self.status, "time": self.time_text}
        if self.fields:
            d["fields"] = dict(self.fields)
        return d


@dataclass
class Records:
    """The parsed records file: records and the warnings met while reading it."""

    source: str
    format: str
    encoding: str
    records: list[Record]
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "format": self.format, "encoding": self.encoding,
                "records": [r.to_dict() for r in self.records]}


def decode_records(data: bytes, name: str, encoding: str | None = None) -> tuple[str, str]:
    """Decode a records file: ``(text, encoding used)``.

    Raises:
        InputError: an unknown encoding name, or bytes that are not valid in it.
    """
    if encoding:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise InputError(f"unknown encoding {encoding!r} for records {name}; use a Python codec name such as "
                             f"utf-8, utf-16, cp1252 or latin-1") from None
        try:
            return data.decode(encoding), encoding
        except UnicodeDecodeError as e:
            raise InputError(f"records {name} are not valid {encoding} (byte {data[e.start]:#04x} at offset {e.start})") from None
    for bom, enc in ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
                     (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")):
        if data.startswith(bom):
            try:
                return data.decode(enc), enc
            except UnicodeDecodeError as e:
                raise InputError(f"records {name} start with a {enc} byte-order mark but are not valid {enc} "
                                 f"(offset {e.start})") from None
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as e:
        raise InputError(f"records {name} are not UTF-8 (byte {data[e.start]:#04x} at offset {e.start}); save them as "
                         f"UTF-8 or name their encoding (--records-encoding, or the records_encoding field: cp1252, latin-1, utf-16...)") from None


def _format_of(name: str, fmt: str | None) -> str:
    f = (fmt or Path(name).suffix.lstrip(".")).lower()
    f = {"markdown": "md", "txt": "md", "tsv": "csv"}.get(f, f)
    if f not in RECORD_FORMATS:
        raise InputError(f"records {name}: unknown format {f or '(no extension)'!r}; use .csv, .json or .md")
    return f


def _pick(row: dict[str, str], keys: Sequence[str]) -> tuple[str | None, str | None]:
    for k in keys:
        if k in row and str(row[k]).strip():
            return k, str(row[k]).strip()
    return None, None


def _row_record(row: dict[str, Any], line: int, n: int) -> Record:
    clean = {str(k).strip().lower(): ("" if v is None else (json.dumps(v) if isinstance(v, (dict, list)) and k not in _IMAGE_KEYS else v))
             for k, v in row.items() if k is not None}
    refs: list[str] = []
    used: set[str] = set()
    for k in _IMAGE_KEYS:
        v = clean.get(k)
        if v:
            used.add(k)
            vals = v if isinstance(v, list) else re.split(r"[;|,]", str(v))
            refs += [str(x).strip() for x in vals if str(x).strip()]
    clean = {k: str(v) for k, v in clean.items() if k not in used}
    tkey, text = _pick(clean, _TEXT_KEYS)
    skey, status = _pick(clean, _STATUS_KEYS)
    used |= {tkey} if tkey else set()
    if text is None:
        text = "; ".join(f"{k}: {v}" for k, v in clean.items() if k not in used and str(v).strip())
    elif status and skey and status.lower() not in text.lower():
        text = f"{text} ({skey}: {status})"
    fields = {k: str(v) for k, v in clean.items() if k not in used}
    return Record(id=f"rec{n}", text=text.strip(), line=line, fields=fields, image_refs=tuple(refs),
                  status=_status(status or text))


def _status(text: str | None) -> str | None:
    if not text:
        return None
    f, p = _FAIL.search(text), _PASS.search(text)
    if f and not p:
        return "failed"
    if p and not f:
        return "passed"
    return None


def _parse_csv(text: str, name: str) -> list[Record]:
    # the delimiter is the one the header row uses most (a note's text may hold any of them)
    header_line = text.lstrip("\ufeff").split("\n", 1)[0]
    delim = max((",", ";", "\t"), key=lambda d: (header_line.count(d), d == ","))
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delim, strict=True)
    try:
        header = reader.fieldnames
    except csv.Error as e:
        raise InputError(f"records {name}: not CSV ({e})") from None
    if not header or all(not (h or "").strip() for h in header):
        raise InputError(f"records {name}: a CSV file needs a header row (e.g. id,image,time,text)")
    out: list[Record] = []
    try:
        for row in reader:
            if None in row:
                raise InputError(f"records {name}, line {reader.line_num}: more cells than the header has columns "
                                 f"({len(header)})")
            if all(not (v or "").strip() for v in row.values()):
                continue
            out.append(_row_record(row, reader.line_num, len(out) + 1))
    except csv.Error as e:
        raise InputError(f"records {name}, line {reader.line_num}: not valid CSV ({e})") from None
    return out


def _parse_json(text: str, name: str) -> list[Record]:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"records {name}, line {e.lineno} column {e.colno}: not valid JSON ({e.msg})") from None
    if isinstance(doc, dict) and isinstance(doc.get("records"), list):
        doc = doc["records"]
    if not isinstance(doc, list):
        raise InputError(f"records {name}: JSON records must be a list of objects (or {{\"records\": [...]}})")
    out = []
    for i, item in enumerate(doc):
        if isinstance(item, str):
            item = {"text": item}
        if not isinstance(item, dict):
            raise InputError(f"records {name}: item {i} is {type(item).__name__}, not an object or a string")
        out.append(_row_record(item, i + 1, len(out) + 1))
    return out


def _parse_md(text: str, name: str) -> list[Record]:
    out = []
    for i, raw in enumerate(text.splitlines(), 1):
        s = raw.strip()
        if not s or s.startswith("#") or set(s) <= set("-=*_|: "):
            continue
        s = re.sub(r"^([-*+]|\d+[.)])\s+", "", s)
        refs = _MD_IMAGE.findall(s)
        body = _MD_IMAGE.sub("", s).strip() or s
        out.append(Record(id=f"rec{len(out) + 1}", text=body, line=i, image_refs=tuple(refs), status=_status(body)))
    return out


def parse_records(data: bytes, name: str = "records", *, fmt: str | None = None, encoding: str | None = None) -> Records:
    """Parse a records file's bytes.

    Args:
        data: The file's bytes.
        name: Its name (the extension gives the format unless ``fmt`` does).
        fmt: ``csv``, ``json`` or ``md``.
        encoding: A Python codec name; default UTF-8 (or what a byte-order mark says).

    Raises:
        InputError: too large, an unknown format or encoding, bytes that do not decode, or a
            file that does not parse (the message names the line).

    Example:
        >>> recs = parse_records(b"image,text\\npart-4711.png,part 4711 passed\\n", "log.csv")
        >>> recs.records[0].status, recs.records[0].image_refs
        ('passed', ('part-4711.png',))
    """
    if len(data) > MAX_RECORDS_BYTES:
        raise InputError(f"records {name} are {len(data)} bytes; the limit is {MAX_RECORDS_BYTES}")
    f = _format_of(name, fmt)
    text, enc = decode_records(data, name, encoding)
    if "\x00" in text:
        raise InputError(f"records {name} contain NUL characters: a binary file, or text in another encoding "
                         f"(name it with --records-encoding, or the records_encoding field)")
    recs = {"csv": _parse_csv, "json": _parse_json, "md": _parse_md}[f](text, name)
    warnings = []
    if not recs:
        warnings.append(f"records {name} hold no records")
    if len(recs) > MAX_RECORDS:
        warnings.append(f"records {name} hold {len(recs)} records; only the first {MAX_RECORDS} are used")
        recs = recs[:MAX_RECORDS]
    return Records(source=name, format=f, encoding=enc, records=recs, warnings=warnings)


def read_records(path: str | Path, *, fmt: str | None = None, encoding: str | None = None) -> Records:
    """``parse_records`` on a file. Raises ``InputError`` when it cannot be read."""
    p = Path(path)
    try:
        if p.stat().st_size > MAX_RECORDS_BYTES:
            raise InputError(f"records {p} are {p.stat().st_size} bytes; the limit is {MAX_RECORDS_BYTES}")
        data = p.read_bytes()
    except FileNotFoundError:
        raise InputError(f"no records file {p}") from None
    except IsADirectoryError:
        raise InputError(f"records {p} is a directory, not a file") from None
    except OSError as e:
        raise InputError(f"cannot read records {p}: {e.strerror or e}") from None
    return parse_records(data, str(p), fmt=fmt, encoding=encoding)


def _tokens(s: str) -> set[str]:
    return {t for t in re.split(r"[^0-9a-z]+", s.lower()) if len(t) >= 3}


def link_records(records: Records, images: dict[str, str], *, day: date | None = None, tz: tzinfo | None = None) -> None:
    """Resolve each record's image references to report image ids (``images``: id → path) and its
    time to epoch seconds; add a warning for each reference that matches no image.

    A record without an explicit reference is linked to the images whose file name shares a
    number or word of three or more characters with it (``part 4711`` → ``part-4711.png``).
    """
    by_name: dict[str, str] = {}
    for iid, path in images.items():
        p = Path(path)
        for key in (str(path), p.name, p.stem, p.name.lower(), p.stem.lower()):
            by_name.setdefault(key, iid)
    stem_tokens = {iid: _tokens(Path(p).stem) for iid, p in images.items()}
    for r in records.records:
        found: list[str] = []
        for ref in r.image_refs:
            iid = by_name.get(ref) or by_name.get(Path(ref).name) or by_name.get(Path(ref).stem) or by_name.get(Path(ref).name.lower())
            if iid is None:
                records.warnings.append(f"record {r.id} (line {r.line}) refers to image {ref!r}, which is not among the "
                                        f"report's images; its claims cannot be checked")
            elif iid not in found:
                found.append(iid)
        if not r.image_refs:
            toks = _tokens(r.text) | _tokens(" ".join(r.fields.values()))
            # a number shared with a file name links (part 4711 → part-4711.png); failing that a
            # word of four letters or more that not every file name has
            by_num = [iid for iid, st in stem_tokens.items() if any(t.isdigit() for t in toks & st)]
            common = set.intersection(*stem_tokens.values()) if len(stem_tokens) > 1 else set()
            by_word = [iid for iid, st in stem_tokens.items() if any(len(t) >= 4 and t not in common for t in toks & st)]
            found += [iid for iid in (by_num or by_word) if iid not in found]
        r.images = tuple(found)
        r.time, r.time_text = _record_time(r, day, tz)


def _record_time(r: Record, day: date | None, tz: tzinfo | None) -> tuple[float | None, str | None]:
    tkey, tval = _pick(r.fields, _TIME_KEYS)
    _, dval = _pick(r.fields, _DATE_KEYS)
    d = day
    if dval:
        try:
            d = date.fromisoformat(dval[:10])
        except ValueError:
            pass
    if tval:
        try:
            dt = datetime.fromisoformat(tval.replace("Z", "+00:00"))
            if dt.tzinfo is None:
                dt = dt.replace(tzinfo=tz)
            return dt.timestamp(), dt.strftime("%H:%M")
        except ValueError:
            pass
    m = _HHMM.search(tval or "") or _HHMM.search(r.text)
    if not m:
        return None, None
    hhmm = f"{int(m.group(1)):02d}:{m.group(2)}"
    if d is None:
        return None, hhmm
    return datetime.combine(d, dtime(int(m.group(1)), int(m.group(2))), tzinfo=tz).timestamp(), hhmm
