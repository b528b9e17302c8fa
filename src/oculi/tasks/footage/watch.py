"""``watch``: process a video file or stream into tracks, events and keyframes, resumably.

Per sampled frame: motion gate → detector (only when the picture changed; otherwise the last
detections are carried forward) → tracker → event engine; frames that events point at become
keyframes. Every ``CHECKPOINT_FOOTAGE`` seconds of footage (or ``CHECKPOINT_WALL`` seconds of
work) a checkpoint is written, in this order, under the collection's writer lock: keyframe
items, tracks, events, then the source record with ``processed_until`` and the pickled tracker /
event state. Every record id is deterministic, so a run killed at any moment (Ctrl-C or
SIGKILL) and started again resumes at the last checkpoint and rewrites the same records: no
duplicate events. Memory is flat: finished tracks leave the state at each checkpoint and
frames are never kept beyond the keyframes of one checkpoint.

Watching a file again with the same settings does nothing (``already_done``); with other
settings (zones, thresholds, start time) or ``reprocess=True`` its old tracks, events and
keyframes are replaced.
"""

from __future__ import annotations

import functools
import logging
import pickle
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from oculi.assets.manager import require_asset
from oculi.core.errors import InputError
from oculi.tasks.index.spaces import guard_collection, record_spaces
from oculi.core.types import Box, DetectedObject
from oculi.perception.colour import region_colour
from oculi.store.base import DEFAULT_COLLECTION, Condition, Filter, Op
from oculi.store.records import RecordTable, SourceKind, SourceRecord, SourceStatus, source_id_for
from oculi.tasks.footage.events import EventEngine, EventSettings
from oculi.tasks.footage.keyframes import PendingKeyframe, keyframe_item_id, keyframe_items
from oculi.tasks.footage.motion import MotionGate
from oculi.tasks.footage.tracking import DEFAULT_CLASSES, Tracker
from oculi.tasks.footage.video import VideoSource, fingerprint, open_video
from oculi.tasks.footage.zones import Zone, build_zones

log = logging.getLogger(__name__)

STATE_VERSION = 1  # layout of the pickled checkpoint; a different one restarts the source
CHECKPOINT_FOOTAGE = 60.0  # seconds of footage between checkpoints
CHECKPOINT_WALL = 20.0  # ... or seconds of work, whichever comes first
MAX_PENDING_KEYFRAMES = 16  # keyframes perceived in one batch (bounds memory between checkpoints)


@dataclass
class WatchOptions:
    """How to watch a source (every field is recorded in the source's ``settings``).

    Attributes:
        camera: Camera name (``--camera``), e.g. ``"main gate"``.
        start: Epoch seconds of footage time zero; default: the file's own creation time, else
            its modification time minus its duration; for a stream, the moment it was opened.
        zones: Zone polygons as ``"x1,y1 x2,y2 ..."`` (pixels, or fractions of the frame).
        zone_names: Their names, in order (default ``zone1``, ``zone2`` ...).
        loiter_after: Seconds in a zone (or, without zones, in the frame) that make loitering.
        crowd_min: Crowding from this many people at once (``None``: off).
        sample_fps: Frames looked at per second of footage.
        lost_after: Seconds a track survives unseen (occlusion).
        motion: Skip the detector on frames that did not change.
        keepalive: With ``motion``, the detector still runs at least this often (seconds).
        classes: Tracked COCO classes (``None``: all 80).
        collection: Where keyframes, tracks and events go.
        reprocess: Process again even if done with the same settings.
        ocr: Read text on keyframes (off by default: at analysis size signs and plates are
            rarely legible, and it costs time per keyframe).
        checkpoint_every: Seconds of footage between checkpoints (what a killed run redoes at
            most); results do not depend on it.
        max_reconnects: A stream that drops is reopened this many times in a row before the
            session ends.
    """

    camera: str
    start: float | None = None
    zones: Sequence[str] = ()
    zone_names: Sequence[str] = ()
    loiter_after: float | None = 30.0
    crowd_min: int | None = 5
    sample_fps: float = 2.0
    lost_after: float = 4.0
    motion: bool = True
    keepalive: float = 10.0
    classes: frozenset[str] | None = DEFAULT_CLASSES
    collection: str = DEFAULT_COLLECTION
    reprocess: bool = False
    ocr: bool = False
    checkpoint_every: float = CHECKPOINT_FOOTAGE
    max_reconnects: int = 5

    def validate(self) -> None:
        if not (self.camera or "").strip():
            raise InputError("give the camera a name (--camera)")
        if len(self.camera) > 128:
            raise InputError("camera names are at most 128 characters")
        if not 0.05 <= self.sample_fps <= 60:
            raise InputError("--fps must be between 0.05 and 60 frames per second")
        if not 0.5 <= self.lost_after <= 600:
            raise InputError("--lost-after must be between 0.5 s and 10 min")
        if self.crowd_min is not None and not 2 <= self.crowd_min <= 1000:
            raise InputError("--crowd must be between 2 and 1000")
        if not 1.0 <= self.checkpoint_every <= 3600:
            raise InputError("--checkpoint must be between 1 s and 1 h of footage")


@dataclass
class WatchProgress:
    t: float  # footage seconds processed
    duration: float | None
    frames_sampled: int
    frames_detected: int
    events: int
    active_tracks: int
    elapsed: float

    @property
    def speed(self) -> float:
        """Footage seconds per second of work (× real time)."""
        return self.t / self.elapsed if self.elapsed > 0 else 0.0


@dataclass
class WatchReport:
    """What a watch run did."""

    source: dict[str, Any]
    collection: str
    footage_seconds: float = 0.0
    frames_sampled: int = 0
    frames_detected: int = 0
    events: int = 0
    tracks: int = 0
    keyframes: int = 0
    problems: list[dict[str, Any]] = field(default_factory=list)
    resumed_from: float | None = None
    already_done: bool = False
    interrupted: bool = False
    elapsed_s: float = 0.0
    cpu_s: float = 0.0
    detect_s: float = 0.0  # wall time in the detector
    keyframes_s: float = 0.0  # wall time perceiving and storing keyframes

    def to_dict(self) -> dict[str, Any]:
        from oculi.core.types import SCHEMA_VERSION

        return {
            "schema_version": SCHEMA_VERSION, "collection": self.collection, "source": self.source,
            "footage_seconds": round(self.footage_seconds, 3), "frames_sampled": self.frames_sampled,
            "frames_detected": self.frames_detected, "events": self.events,
            "tracks": self.tracks, "keyframes": self.keyframes, "problems": self.problems,
            "resumed_from": self.resumed_from, "already_done": self.already_done, "interrupted": self.interrupted,
            "elapsed_s": round(self.elapsed_s, 3), "cpu_s": round(self.cpu_s, 3),
            "detect_s": round(self.detect_s, 3), "keyframes_s": round(self.keyframes_s, 3),
            "speed": round(self.footage_seconds / self.elapsed_s, 2) if self.elapsed_s > 0 else None,
        }


@dataclass
class _State:
    """Everything needed to carry on from a checkpoint (pickled into the source record)."""

    version: int
    tracker: Tracker
    events: EventEngine
    motion: MotionGate
    last_detections: list[DetectedObject]
    frames_sampled: int = 0
    frames_detected: int = 0
    t: float = -1.0


def _settings_doc(o: WatchOptions, zones: list[Zone], start: float) -> dict[str, Any]:
    return {
        "start_time": round(start, 3), "zones": [z.to_dict() for z in zones], "loiter_after": o.loiter_after,
        "crowd_min": o.crowd_min, "sample_fps": o.sample_fps, "lost_after": o.lost_after, "motion": o.motion,
        "keepalive": o.keepalive, "classes": sorted(o.classes) if o.classes is not None else None,
    }


def _default_start(vs: VideoSource, opts: WatchOptions) -> float:
    if opts.start is not None:
        return float(opts.start)
    if vs.info.creation_time is not None:
        return vs.info.creation_time
    if vs.info.kind == "file":
        return vs.info.mtime_ns / 1e9 - (vs.info.duration or 0.0)
    return time.time()  # a live stream without --start: time zero is when it was opened


def _delete_source_records(coll: Any, source_id: str) -> None:
    for table in (RecordTable.EVENTS, RecordTable.TRACKS):
        coll.delete_records(table, Filter((Condition("source_id", Op.EQ, source_id),)))


def watch_source(
    engine: Any,
    store: Any,
    uri: str,
    options: WatchOptions,
    *,
    progress: Callable[[WatchProgress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    detector: Any = None,
) -> WatchReport:
    """Watch a video file or stream and store its tracks, events and keyframes.

    Args:
        engine: An ``oculi.Engine`` (perception for keyframes, the sentence encoder).
        store: A ``Store``.
        uri: A video file path or a stream URL (``rtsp://``, ``http(s)://`` ...).
        options: ``WatchOptions``.
        progress: Called after each sampled frame with a ``WatchProgress``.
        should_stop: Polled between frames; when it returns True the run checkpoints and returns
            with ``interrupted`` set (watch again to resume).
        detector: A ``FrameDetector`` (default: the engine's ``detect_frames`` capability); a
            perception worker pool can be passed here.

    Returns:
        A ``WatchReport``.

    Raises:
        InputError: unreadable source, bad options, or the source is being watched by another process.

    Example:
        >>> rep = watch_source(eng, store, "gate.mp4", WatchOptions(camera="main gate"))  # doctest: +SKIP
        >>> rep.events_written  # doctest: +SKIP
        12
    """
    t_wall, t_cpu = time.monotonic(), time.process_time()
    options.validate()
    for asset in ("tracker", "supervision"):  # the tracker's code is installed like a model asset
        require_asset(asset, engine.settings)
    vs = open_video(uri, max_reconnects=options.max_reconnects)
    info = vs.info
    zones = build_zones(list(options.zones), list(options.zone_names), width=info.width, height=info.height,
                        loiter_after=options.loiter_after)
    kind = SourceKind(info.kind)
    start = _default_start(vs, options)
    # a file is known by its content; a stream by its URL and this session's time zero, so each
    # session is a source of its own whose coverage is exactly the time it was watched
    fp = fingerprint(uri) if kind is SourceKind.FILE else f"{info.uri}@{start:.3f}"
    camera = options.camera.strip()
    sid = source_id_for(kind.value, fp, camera)
    coll = store.create_collection(options.collection, exist_ok=True)
    with coll.lock(f"source:{sid}"):
        existing = coll.query_records(RecordTable.SOURCES, Filter((Condition("id", Op.EQ, sid),)))
        prev: SourceRecord | None = existing[0] if existing else None
        settings_doc = _settings_doc(options, zones, start)
        report = WatchReport(source={}, collection=coll.name)
        same = prev is not None and prev.settings == settings_doc
        if same and prev.status == SourceStatus.DONE.value and not options.reprocess and kind is SourceKind.FILE:
            report.source, report.already_done = prev.to_dict(), True
            by_source = Filter((Condition("source_id", Op.EQ, sid),))
            report.events = coll.count_records(RecordTable.EVENTS, by_source)
            report.tracks = coll.count_records(RecordTable.TRACKS, by_source)
            report.frames_sampled, report.frames_detected = prev.frames_sampled, prev.frames_detected
            report.problems = list(prev.problems)
            report.elapsed_s = time.monotonic() - t_wall
            return report
        state: _State | None = None
        if same and not options.reprocess and prev.state and prev.state_version == STATE_VERSION and kind is SourceKind.FILE:
            try:
                state = pickle.loads(prev.state)  # noqa: S301 - written by this code into this store
            except Exception:  # noqa: BLE001 - an unreadable checkpoint means starting over
                log.warning("checkpoint of %s unreadable; starting over", info.uri)
                state = None
        if prev is not None and state is None and kind is SourceKind.FILE:  # a stream's past stays: it happened
            with coll.writer(wait=True):
                _delete_source_records(coll, sid)
                coll.delete_orphan_items()
        if state is None:
            ev_settings = EventSettings(zones=zones, loiter_after=options.loiter_after, crowd_min=options.crowd_min,
                                        lost_after=options.lost_after)
            tracker = Tracker(lost_after=options.lost_after, high_threshold=engine.settings.detector_threshold,
                              low_threshold=min(0.2, engine.settings.detector_threshold), classes=options.classes)
            if prev is not None and kind is SourceKind.STREAM:  # the same session again (same --start): new ids
                last = coll.query_records(RecordTable.TRACKS, Filter((Condition("source_id", Op.EQ, sid),)),
                                          order_by="track_id", descending=True, limit=1)
                tracker.next_id = (last[0].track_id + 1) if last else 1
            state = _State(STATE_VERSION, tracker,
                           EventEngine(sid, camera, start, ev_settings, functools.partial(keyframe_item_id, sid)),
                           MotionGate(keepalive=options.keepalive), [])
        else:
            report.resumed_from = state.t
        problems = list(prev.problems) if (prev is not None and report.resumed_from is not None) else []
        now = time.time()
        src = SourceRecord(
            id=sid, kind=kind.value, uri=info.uri, camera=camera, fingerprint=fp, start_time=start,
            duration=info.duration, fps=info.fps, width=info.width, height=info.height,
            status=SourceStatus.RUNNING.value, settings=settings_doc, problems=problems,
            size=info.size, mtime_ns=info.mtime_ns, created_at=prev.created_at if prev else now, updated_at=now,
            processed_until=max(0.0, state.t), frames_sampled=state.frames_sampled, frames_detected=state.frames_detected,
            state=prev.state if (prev is not None and report.resumed_from is not None) else b"",
            state_version=STATE_VERSION,
        )
        with coll.writer(wait=True):
            coll.upsert_records([src])
        run = _Run(engine, coll, vs, src, state, options, report, detector or engine.backend("detect_frames"), progress)
        run.loop(should_stop)
        by_source = Filter((Condition("source_id", Op.EQ, sid),))
        report.events = coll.count_records(RecordTable.EVENTS, by_source)
        report.tracks = coll.count_records(RecordTable.TRACKS, by_source)
    report.elapsed_s = time.monotonic() - t_wall
    report.cpu_s = time.process_time() - t_cpu
    return report


class _Run:
    """One pass over a source (the loop, keyframes and checkpoints)."""

    def __init__(self, engine: Any, coll: Any, vs: VideoSource, src: SourceRecord, state: _State,
                 options: WatchOptions, report: WatchReport, detector: Any, progress: Any) -> None:
        self.engine, self.coll, self.vs, self.src, self.state = engine, coll, vs, src, state
        self.options, self.report, self.detector, self.progress = options, report, detector, progress
        self.pending: list[PendingKeyframe] = []
        self.ocr = options.ocr
        self.low = state.tracker.low_threshold
        self.events_total = 0
        self.t0 = time.monotonic()

    def loop(self, should_stop: Callable[[], bool] | None) -> None:
        st = self.state
        resume = st.t + 1e-3 if st.t >= 0 else 0.0
        first_t = max(0.0, st.t)
        last_ckpt_t, last_ckpt_wall = st.t, time.monotonic()
        stopped = False
        for fr in self.vs.sample(self.options.sample_fps, start=resume):
            self._frame(fr)
            if self.progress:
                self.progress(WatchProgress(st.t, self.src.duration, st.frames_sampled, st.frames_detected,
                                            self.events_total, len(st.events.tracks), time.monotonic() - self.t0))
            if st.t - last_ckpt_t >= self.options.checkpoint_every or time.monotonic() - last_ckpt_wall >= CHECKPOINT_WALL:
                self._checkpoint(SourceStatus.RUNNING)
                last_ckpt_t, last_ckpt_wall = st.t, time.monotonic()
            if should_stop is not None and should_stop():
                stopped = True
                break
        self.report.footage_seconds = max(0.0, st.t - first_t)
        if stopped:
            self.report.interrupted = True
            self._checkpoint(SourceStatus.INTERRUPTED)
        else:
            st.events.finish(st.t, grace=max(1.0, 2.5 / self.options.sample_fps))
            self._checkpoint(SourceStatus.DONE, final=True)

    def _frame(self, fr: Any) -> None:
        st = self.state
        st.frames_sampled += 1
        run_det = True
        if self.options.motion:
            run_det, _ = st.motion.changed(fr.image, fr.t)
        colours: dict[int, str | None] = {}
        if run_det:
            pil = fr.pil()
            t_det = time.monotonic()
            raw = self.detector.detect_frames([pil], min_score=self.low)[0]
            self.report.detect_s += time.monotonic() - t_det
            s = fr.scale
            st.last_detections = [DetectedObject(o.label, o.score, Box(o.box.x1 * s, o.box.y1 * s, o.box.x2 * s, o.box.y2 * s))
                                  for o in raw]
            st.motion.accept(fr.image, fr.t)
            st.frames_detected += 1
        tracked = st.tracker.update(st.last_detections, fr.t)
        if run_det:
            for d in tracked:
                b = d.box
                colours[d.track_id] = region_colour(fr.image, Box(b.x1 / fr.scale, b.y1 / fr.scale,
                                                                  b.x2 / fr.scale, b.y2 / fr.scale))
        st.events.step(fr.t, fr.index, tracked, colours)
        st.t = fr.t
        if fr.index in st.events.wanted_keyframes:
            st.events.wanted_keyframes.discard(fr.index)
            objs = []
            for d in tracked:
                tr = st.events.tracks.get(d.track_id)
                colour = colours.get(d.track_id) or (tr.colour if tr is not None else None)
                objs.append(DetectedObject(d.label, min(1.0, d.score), d.box, colour=colour, track_id=d.track_id))
            self.pending.append(PendingKeyframe(fr.index, fr.t, fr.pil(), fr.scale, objs))
            if len(self.pending) >= MAX_PENDING_KEYFRAMES:
                self._store_keyframes()

    def _store_keyframes(self) -> None:
        if not self.pending:
            return
        t0 = time.monotonic()
        items = keyframe_items(self.engine, self.pending, source_id=self.src.id, camera=self.src.camera, uri=self.src.uri,
                               start_time=self.src.start_time, width=self.src.width, height=self.src.height,
                               tracked_labels=self.options.classes, ocr=self.ocr)
        with self.coll.writer(wait=True):
            spaces = guard_collection(self.coll, self.engine)  # another model's vectors are refused
            self.coll.add_items(items)
            record_spaces(self.coll, spaces)
        self.report.keyframes += len(items)
        self.pending = []
        self.report.keyframes_s += time.monotonic() - t0

    def _checkpoint(self, status: SourceStatus, *, final: bool = False) -> None:
        st = self.state
        self._store_keyframes()
        events, tracks, finished = st.events.drain()
        st.tracker.forget(finished)
        problems = list(self.src.problems)
        for p in self.vs.problems:
            d = p.to_dict()
            if d not in problems:
                problems.append(d)
        self.vs.problems = []
        blob = b"" if final else pickle.dumps(st, protocol=pickle.HIGHEST_PROTOCOL)
        from dataclasses import replace

        self.src = replace(self.src, status=status.value, processed_until=max(0.0, st.t), problems=problems,
                           frames_sampled=st.frames_sampled, frames_detected=st.frames_detected,
                           end_time=self.src.start_time + max(0.0, st.t), state=blob, updated_at=time.time())
        with self.coll.writer(wait=True):
            self.coll.upsert_records(tracks)
            self.coll.upsert_records(events)
            self.coll.upsert_records([self.src])
            if final:
                self.coll.optimize()
        self.events_total += len(events)
        self.report.frames_sampled, self.report.frames_detected = st.frames_sampled, st.frames_detected
        self.report.problems = problems
        self.report.source = self.src.to_dict()
