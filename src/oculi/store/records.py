"""Footage records: sources owning frames, tracks and events with time ranges.

A collection holds, beside its items and file records, three *record tables*:

- ``sources`` (``SourceRecord``) — one per video file or stream that was watched: where it is,
  which camera, when its footage starts, how far processing has got (``processed_until``, the
  resume point) and the checkpoint of the tracker state that goes with it, the watch settings
  and the corrupt stretches that were skipped. A file's id is derived from its content
  fingerprint and the camera name, so watching the same file again finds the same source.
- ``tracks`` (``TrackRecord``) — one per tracked object of a source: its class, first and last
  time seen, colour, the zones it visited and the keyframe that shows it best.
- ``events`` (``EventRecord``) — what happened: ``appear``, ``leave``, ``zone_enter``,
  ``zone_leave``, ``dwell``, ``loitering``, ``crowding``, each with a start and end time
  (epoch seconds), the track and zone involved and the keyframe item that shows it.

The keyframes themselves are ordinary items (``kind == "frame"``, ``source_id``,
``frame_index``, ``timestamp`` and ``time`` = epoch seconds of the frame), so they are
searchable with the same search and the same time filters as photos. A source owns its frame
items: they are never "orphans" of the file records (see ``Collection.delete_orphan_items``)
and go when the source is deleted.

Record ids are deterministic (``event_id``, ``track_key``, ``source_id_for``): writing the same
record twice replaces it, so a re-run of the same footage — after Ctrl-C, SIGKILL or on
purpose — never duplicates anything.

Every record type declares its columns once (``COLUMNS``: name → ``ColumnType``) in a
backend-neutral way; a store implementation maps those to its own types (Lance/Arrow in
``oculi.store.lance``; SQL types in a server store) and stores JSON columns as text.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone, tzinfo
from enum import StrEnum
from typing import Any, ClassVar, Mapping, Sequence, Union


class RecordTable(StrEnum):
    """The record tables of a collection."""

    SOURCES = "sources"
    TRACKS = "tracks"
    EVENTS = "events"


class ColumnType(StrEnum):
    """Backend-neutral column types of the record tables."""

    STR = "str"
    FLOAT = "float"
    INT = "int"
    STR_LIST = "str_list"
    JSON = "json"  # any JSON value, stored as text
    BYTES = "bytes"


class EventType(StrEnum):
    """Kinds of footage event.

    ``appear``/``leave``: a track's first and last sighting (instants). ``zone_enter``/
    ``zone_leave``: crossing into / out of a named zone (instants). ``dwell``: a stay in a zone
    (span). ``loitering``: a stay in a zone longer than the zone's loitering threshold (span,
    from entering until leaving). ``crowding``: at least N objects of a class at once in a
    zone or the frame (span).
    """

    APPEAR = "appear"
    LEAVE = "leave"
    ZONE_ENTER = "zone_enter"
    ZONE_LEAVE = "zone_leave"
    DWELL = "dwell"
    LOITERING = "loitering"
    CROWDING = "crowding"


class SourceKind(StrEnum):
    FILE = "file"
    STREAM = "stream"


class SourceStatus(StrEnum):
    RUNNING = "running"  # being processed now (or killed while it was: resumable)
    INTERRUPTED = "interrupted"  # stopped by the user; resumable
    DONE = "done"
    FAILED = "failed"


def _finite(x: float | None) -> float | None:
    if x is None:
        return None
    v = float(x)
    if not math.isfinite(v):
        raise ValueError(f"not a finite number: {x!r}")
    return v


def iso_time(ts: float | None, tz: tzinfo | None = None) -> str | None:
    """Epoch seconds as ISO 8601 with the offset of ``tz`` (UTC by default), to the millisecond.

    Example:
        >>> iso_time(1795766400.5)
        '2026-11-27T08:00:00.500+00:00'
    """
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz or timezone.utc).isoformat(timespec="milliseconds")


class _Record:
    """Shared row conversion: ``to_row`` gives plain values (JSON columns as text)."""

    TABLE: ClassVar[RecordTable]
    COLUMNS: ClassVar[dict[str, ColumnType]]

    def to_row(self) -> dict[str, Any]:
        row: dict[str, Any] = {}
        for name, ctype in self.COLUMNS.items():
            v = getattr(self, name)
            if ctype is ColumnType.JSON:
                row[name] = json.dumps(v, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
            elif ctype is ColumnType.STR_LIST:
                row[name] = list(v)
            elif ctype is ColumnType.BYTES:
                row[name] = bytes(v)
            else:
                row[name] = v
        return row

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Any:
        kw: dict[str, Any] = {}
        names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        for name, ctype in cls.COLUMNS.items():
            if name not in row or name not in names:
                continue
            v = row[name]
            if ctype is ColumnType.JSON:
                v = json.loads(v) if isinstance(v, str) and v else (v if v not in ("", None) else None)
                if v is None:
                    continue
            elif ctype is ColumnType.STR_LIST:
                v = tuple(v or ())
            elif ctype is ColumnType.BYTES:
                v = bytes(v or b"")
            elif v is None:
                continue
            kw[name] = v
        return cls(**kw)


@dataclass(frozen=True)
class SourceRecord(_Record):
    """A video file or stream that was watched, and how far processing got.

    Attributes:
        id: ``source_id_for(kind, fingerprint, camera)``.
        kind: ``file`` or ``stream``.
        uri: Absolute path of a file, or the stream URL without credentials.
        camera: Camera name (``--camera``).
        fingerprint: Content fingerprint of a file (``oculi.tasks.footage.video.fingerprint``),
            the normalised URL of a stream.
        start_time: Epoch seconds of the footage's time zero (``--start`` or the file's own
            creation time); frame times are this plus the frame's presentation timestamp.
        end_time: Epoch seconds of the last frame processed.
        duration: Length in seconds (files; ``None`` for streams).
        fps / width / height: Of the video stream.
        status: ``SourceStatus``.
        processed_until: Seconds into the footage up to which tracks, events and keyframes are
            committed; a resumed run continues from here with ``state``.
        frames_sampled / frames_detected: Frames looked at / frames the detector ran on.
        settings: The watch parameters (sampling rate, zones, thresholds) the records came from.
        problems: Corrupt or missing stretches that were skipped: ``[{"start", "end", "error"}]``
            in seconds into the footage.
        state: Checkpoint of the tracker and event state at ``processed_until`` (opaque bytes,
            versioned by ``state_version``), for resuming after an interruption.
        state_version: Layout version of ``state``; a different one means "start over".
        size / mtime_ns: Of a file when it was fingerprinted.
        created_at / updated_at: Epoch seconds.
    """

    TABLE: ClassVar[RecordTable] = RecordTable.SOURCES
    COLUMNS: ClassVar[dict[str, ColumnType]] = {
        "id": ColumnType.STR, "kind": ColumnType.STR, "uri": ColumnType.STR, "camera": ColumnType.STR,
        "fingerprint": ColumnType.STR, "start_time": ColumnType.FLOAT, "end_time": ColumnType.FLOAT,
        "duration": ColumnType.FLOAT, "fps": ColumnType.FLOAT, "width": ColumnType.INT, "height": ColumnType.INT,
        "status": ColumnType.STR, "processed_until": ColumnType.FLOAT, "frames_sampled": ColumnType.INT,
        "frames_detected": ColumnType.INT, "settings": ColumnType.JSON, "problems": ColumnType.JSON,
        "state": ColumnType.BYTES, "state_version": ColumnType.INT, "size": ColumnType.INT,
        "mtime_ns": ColumnType.INT, "created_at": ColumnType.FLOAT, "updated_at": ColumnType.FLOAT,
    }

    id: str
    kind: str
    uri: str
    camera: str
    fingerprint: str
    start_time: float
    end_time: float | None = None
    duration: float | None = None
    fps: float | None = None
    width: int = 0
    height: int = 0
    status: str = SourceStatus.RUNNING.value
    processed_until: float = 0.0
    frames_sampled: int = 0
    frames_detected: int = 0
    settings: dict[str, Any] = field(default_factory=dict)
    problems: list[dict[str, Any]] = field(default_factory=list)
    state: bytes = b""
    state_version: int = 0
    size: int = 0
    mtime_ns: int = 0
    created_at: float = 0.0
    updated_at: float = 0.0

    def __post_init__(self) -> None:
        SourceKind(self.kind)
        SourceStatus(self.status)
        _finite(self.start_time)
        if not self.camera:
            raise ValueError("a source needs a camera name")

    def to_dict(self, tz: tzinfo | None = None) -> dict[str, Any]:
        """The public JSON form (no tracker state); times as ISO 8601 in ``tz`` (UTC by default)."""
        return {
            "id": self.id, "kind": self.kind, "uri": self.uri, "camera": self.camera,
            "start": iso_time(self.start_time, tz), "end": iso_time(self.end_time, tz),
            "start_ts": self.start_time, "end_ts": self.end_time, "duration": self.duration, "fps": self.fps,
            "width": self.width, "height": self.height, "status": self.status,
            "processed_until": self.processed_until, "frames_sampled": self.frames_sampled,
            "frames_detected": self.frames_detected, "settings": self.settings, "problems": self.problems,
        }


@dataclass(frozen=True)
class TrackRecord(_Record):
    """One tracked object of a source.

    Attributes:
        id: ``track_key(source_id, track_id)``.
        source_id / camera: Whose track.
        track_id: The tracker's id, unique within the source.
        label: COCO class (majority over its detections).
        start_time / end_time: First and last time seen (epoch seconds).
        score: Best detection score.
        colour: Dominant colour name of its region (majority), if measured.
        zones: Zones it was in, in order of first entry.
        keyframe: Item id of the keyframe that shows it best.
        box: Its box ``[x1, y1, x2, y2]`` on that keyframe.
        detections: Frames it was detected on.
        ongoing: Still being tracked when last written (the footage goes on).
    """

    TABLE: ClassVar[RecordTable] = RecordTable.TRACKS
    COLUMNS: ClassVar[dict[str, ColumnType]] = {
        "id": ColumnType.STR, "source_id": ColumnType.STR, "camera": ColumnType.STR, "track_id": ColumnType.INT,
        "label": ColumnType.STR, "start_time": ColumnType.FLOAT, "end_time": ColumnType.FLOAT,
        "score": ColumnType.FLOAT, "colour": ColumnType.STR, "zones": ColumnType.STR_LIST,
        "keyframe": ColumnType.STR, "box": ColumnType.JSON, "detections": ColumnType.INT, "ongoing": ColumnType.INT,
    }

    id: str
    source_id: str
    camera: str
    track_id: int
    label: str
    start_time: float
    end_time: float
    score: float = 0.0
    colour: str | None = None
    zones: tuple[str, ...] = ()
    keyframe: str | None = None
    box: list[float] | None = None
    detections: int = 0
    ongoing: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "zones", tuple(self.zones))
        if _finite(self.end_time) < _finite(self.start_time):  # type: ignore[operator]
            raise ValueError(f"track ends before it starts: {self.start_time} > {self.end_time}")

    def to_dict(self, tz: tzinfo | None = None) -> dict[str, Any]:
        return {
            "source_id": self.source_id, "camera": self.camera, "track_id": self.track_id, "label": self.label,
            "start": iso_time(self.start_time, tz), "end": iso_time(self.end_time, tz), "start_ts": self.start_time,
            "end_ts": self.end_time, "score": round(self.score, 4), "colour": self.colour,
            "zones": list(self.zones), "thumbnail": self.keyframe, "box": self.box, "detections": self.detections,
            "ongoing": bool(self.ongoing),
        }


@dataclass(frozen=True)
class EventRecord(_Record):
    """Something that happened in a source's footage, with a time range.

    Attributes:
        id: ``event_id(...)``: deterministic, so writing it again replaces it.
        source_id / camera: Where.
        type: ``EventType``.
        start_time / end_time: Epoch seconds (equal for instants). For an event still going on
            when written (``ongoing``), ``end_time`` is the last time it was seen true.
        track_id / label: The tracked object (``None`` for crowding).
        zone: The zone (``None`` for the whole frame).
        count: Crowding: the most objects seen at once.
        value: Dwell / loitering: seconds spent in the zone.
        keyframe: Item id of the frame that shows it.
        box: The object's box on the keyframe.
        ongoing: 1 while still going on when last written.
        details: Anything else, JSON (e.g. the threshold that was crossed).
    """

    TABLE: ClassVar[RecordTable] = RecordTable.EVENTS
    COLUMNS: ClassVar[dict[str, ColumnType]] = {
        "id": ColumnType.STR, "source_id": ColumnType.STR, "camera": ColumnType.STR, "type": ColumnType.STR,
        "start_time": ColumnType.FLOAT, "end_time": ColumnType.FLOAT, "track_id": ColumnType.INT,
        "label": ColumnType.STR, "zone": ColumnType.STR, "count": ColumnType.INT, "value": ColumnType.FLOAT,
        "keyframe": ColumnType.STR, "box": ColumnType.JSON, "ongoing": ColumnType.INT, "details": ColumnType.JSON,
    }

    id: str
    source_id: str
    camera: str
    type: str
    start_time: float
    end_time: float
    track_id: int | None = None
    label: str | None = None
    zone: str | None = None
    count: int | None = None
    value: float | None = None
    keyframe: str | None = None
    box: list[float] | None = None
    ongoing: int = 0
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        EventType(self.type)
        if _finite(self.end_time) < _finite(self.start_time):  # type: ignore[operator]
            raise ValueError(f"event ends before it starts: {self.start_time} > {self.end_time}")

    @property
    def duration(self) -> float:
        return self.end_time - self.start_time

    def to_dict(self, tz: tzinfo | None = None) -> dict[str, Any]:
        """The public JSON form (docs/SCHEMAS.md, ``oculi events``); times as ISO 8601 in ``tz``
        (UTC by default) and as epoch seconds (``start_ts``/``end_ts``)."""
        return {
            "id": self.id, "type": self.type, "camera": self.camera, "source_id": self.source_id,
            "start": iso_time(self.start_time, tz), "end": iso_time(self.end_time, tz), "start_ts": self.start_time,
            "end_ts": self.end_time, "track_id": self.track_id, "label": self.label,
            "zone": self.zone, "count": self.count, "seconds": None if self.value is None else round(self.value, 2),
            "thumbnail": self.keyframe, "box": self.box, "ongoing": bool(self.ongoing),
        }


Record = Union[SourceRecord, TrackRecord, EventRecord]

RECORD_TYPES: dict[RecordTable, type] = {
    RecordTable.SOURCES: SourceRecord,
    RecordTable.TRACKS: TrackRecord,
    RecordTable.EVENTS: EventRecord,
}


# --- deterministic ids ----------------------------------------------------------------------

def record_type_of(records: Sequence[Any]) -> type:
    """The record class of a non-empty batch for ``upsert_records``, which takes one table at a
    time. Raises ``OculiError`` for a mixed batch."""
    from oculi.core.errors import OculiError

    cls = type(records[0])
    if any(type(r) is not cls for r in records):
        raise OculiError("upsert_records takes records of one table at a time")
    return cls


def _digest(*parts: Any) -> str:
    return hashlib.sha256("\x1f".join("" if p is None else str(p) for p in parts).encode()).hexdigest()[:32]


def source_id_for(kind: str, fingerprint: str, camera: str) -> str:
    """Id of a source: the same file (by content) watched as the same camera is one source.

    Example:
        >>> source_id_for("file", "ab" * 16, "gate") == source_id_for("file", "ab" * 16, "gate")
        True
        >>> source_id_for("file", "ab" * 16, "gate") != source_id_for("file", "ab" * 16, "door")
        True
    """
    return _digest("source", SourceKind(kind).value, fingerprint, camera.strip().lower())


def track_key(source_id: str, track_id: int) -> str:
    """Row id of a track: unique per source."""
    return f"{source_id}:{int(track_id)}"


def event_id(source_id: str, type: str, start_time: float, *, track_id: int | None = None,
             zone: str | None = None, label: str | None = None) -> str:
    """Id of an event, from what identifies it (times rounded to the millisecond).

    Example:
        >>> event_id("s", "appear", 10.0001, track_id=3) == event_id("s", "appear", 10.0002, track_id=3)
        True
    """
    return _digest("event", source_id, EventType(type).value, f"{float(start_time):.3f}", track_id, zone, label)
