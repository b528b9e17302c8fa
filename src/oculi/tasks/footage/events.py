"""From tracked detections to tracks and events, deterministically.

``EventEngine.step`` takes one sampled frame's tracked detections (footage time ``t``) and
updates what is known about each track; it emits ``EventRecord``\\ s and ``TrackRecord``\\ s
into ``pending_events``/``pending_tracks`` (keyed by id, so an ongoing event written at several
checkpoints stays one record):

- a track is *confirmed* once it was detected on ``confirm_hits`` frames; ``appear`` (and zone
  entries) are dated from its first sighting. Unconfirmed tracks that vanish (one-frame false detections) leave no
  trace.
- ``leave``: the track was not seen for ``lost_after`` seconds; dated at its last sighting, so
  a person who walks behind a wall and does not come back "left" when last seen, and zone
  counts do not stick.
- zones: an object is in a zone when its bottom centre is; ``zone_enter``/``zone_leave``
  need ``inertia`` consecutive frames in/out (Frigate's *inertia*), dated at the first of them.
  Leaving the zone closes a ``dwell`` (stays shorter than ``min_dwell`` are not reported); a
  stay that reaches the zone's ``loiter_after`` becomes ``loitering`` from entering until
  leaving (written as ``ongoing`` while it lasts).
- ``crowding``: at least ``crowd_min`` confirmed objects of ``crowd_label`` seen at once in a
  zone (or the frame); the event spans the frames with that many and carries the most seen.
- Without zones, ``loiter_after`` applies to presence in the frame (``zone`` is ``None``).

When the footage ends, tracks still in view are written as ``ongoing`` (they did not leave).
All state lives on the instance and pickles (the resume checkpoint).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from oculi.store.records import EventRecord, EventType, TrackRecord, event_id, track_key
from oculi.core.types import Box
from oculi.tasks.footage.tracking import Tracked
from oculi.tasks.footage.zones import Zone

FRAME_ZONE = ""  # key of "the whole frame" in per-zone state


@dataclass
class EventSettings:
    """What counts as an event.

    Attributes:
        zones: Named zones (video pixels).
        loiter_after: Seconds in the frame after which presence is loitering when there are no
            zones (zones carry their own threshold).
        crowd_min: Crowding starts at this many objects at once (``None``: off).
        crowd_label: The class counted for crowding.
        confirm_hits: Detections needed before a track counts.
        lost_after: Seconds unseen before a track has left (the tracker's buffer).
        inertia: Consecutive frames in/out before a zone entry/exit counts.
        min_dwell: Shortest zone stay reported as ``dwell``.
        keyframe_gap: A keyframe within this many seconds is reused for a new event.
    """

    zones: list[Zone] = field(default_factory=list)
    loiter_after: float | None = None
    crowd_min: int | None = None
    crowd_label: str = "person"
    confirm_hits: int = 2
    lost_after: float = 4.0
    inertia: int = 2
    min_dwell: float = 1.0
    keyframe_gap: float = 1.0


@dataclass
class _ZoneState:
    inside: bool = False
    entered: float | None = None
    run: int = 0  # consecutive frames disagreeing with ``inside``
    run_start: float | None = None
    loiter_id: str | None = None
    loiter_keyframe: str | None = None
    loiter_box: list[float] | None = None
    keyframe: str | None = None
    box: list[float] | None = None


@dataclass
class _TrackState:
    track_id: int
    first_seen: float
    last_seen: float
    hits: int = 0
    labels: Counter = field(default_factory=Counter)
    colours: Counter = field(default_factory=Counter)
    score: float = 0.0
    box: list[float] | None = None
    keyframe: str | None = None
    keyframe_box: list[float] | None = None
    confirmed: bool = False
    zones: dict[str, _ZoneState] = field(default_factory=dict)
    visited: list[str] = field(default_factory=list)
    early: list[tuple[float, Box]] = field(default_factory=list)  # sightings before confirmation

    @property
    def label(self) -> str:
        return self.labels.most_common(1)[0][0] if self.labels else "object"

    @property
    def colour(self) -> str | None:
        return self.colours.most_common(1)[0][0] if self.colours else None


@dataclass
class _Crowd:
    id: str | None = None
    start: float = 0.0
    end: float = 0.0
    peak: int = 0
    run: int = 0
    keyframe: str | None = None


class EventEngine:
    """Turns tracked detections into tracks and events for one source.

    Args:
        source_id / camera: Stamped on every record.
        start_time: Epoch seconds of footage time zero.
        settings: ``EventSettings``.
        keyframe_id: Item id of the keyframe for a frame number (deterministic).
    """

    def __init__(self, source_id: str, camera: str, start_time: float, settings: EventSettings,
                 keyframe_id: Callable[[int], str]) -> None:
        self.source_id = source_id
        self.camera = camera
        self.start_time = float(start_time)
        self.settings = settings
        self.keyframe_id = keyframe_id
        self.tracks: dict[int, _TrackState] = {}
        self.crowds: dict[str, _Crowd] = {}
        self.pending_events: dict[str, EventRecord] = {}
        self.pending_tracks: dict[str, TrackRecord] = {}
        self.wanted_keyframes: set[int] = set()
        self._last_keyframe: tuple[float, str] | None = None
        self.finished: set[int] = set()  # track ids finished since the last ``drain``

    # --- helpers -------------------------------------------------------------------------------
    def _epoch(self, t: float) -> float:
        return round(self.start_time + t, 3)

    def _keyframe(self, t: float, frame_index: int) -> str:
        if self._last_keyframe is not None and t - self._last_keyframe[0] <= self.settings.keyframe_gap:
            return self._last_keyframe[1]
        kid = self.keyframe_id(frame_index)
        self.wanted_keyframes.add(frame_index)
        self._last_keyframe = (t, kid)
        return kid

    def _event(self, type: EventType, start: float, end: float, tr: _TrackState | None, *, zone: str | None = None,
               keyframe: str | None = None, box: list[float] | None = None, ongoing: bool = False,
               value: float | None = None, count: int | None = None, label: str | None = None,
               eid: str | None = None, details: dict | None = None) -> EventRecord:
        s_epoch = self._epoch(start)
        lab = label if label is not None else (tr.label if tr else None)
        ev = EventRecord(
            id=eid or event_id(self.source_id, type.value, s_epoch, track_id=tr.track_id if tr else None, zone=zone,
                               label=None if tr else lab),
            source_id=self.source_id, camera=self.camera, type=type.value, start_time=s_epoch,
            end_time=max(s_epoch, self._epoch(end)), track_id=tr.track_id if tr else None, label=lab,
            zone=zone or None, count=count, value=None if value is None else round(float(value), 3), keyframe=keyframe,
            box=box, ongoing=int(ongoing), details=details or {},
        )
        self.pending_events[ev.id] = ev
        return ev

    def _track_record(self, tr: _TrackState, ongoing: bool) -> None:
        rec = TrackRecord(
            id=track_key(self.source_id, tr.track_id), source_id=self.source_id, camera=self.camera,
            track_id=tr.track_id, label=tr.label, start_time=self._epoch(tr.first_seen),
            end_time=self._epoch(tr.last_seen), score=round(tr.score, 4), colour=tr.colour, zones=tuple(tr.visited),
            keyframe=tr.keyframe, box=tr.keyframe_box, detections=tr.hits, ongoing=int(ongoing),
        )
        self.pending_tracks[rec.id] = rec

    def _zone_keys(self) -> list[tuple[str, Zone | None]]:
        if self.settings.zones:
            return [(z.name, z) for z in self.settings.zones]
        return [(FRAME_ZONE, None)]

    def _loiter_after(self, zone: Zone | None) -> float | None:
        return zone.loiter_after if zone is not None else self.settings.loiter_after

    # --- the step ------------------------------------------------------------------------------
    def step(self, t: float, frame_index: int, tracked: list[Tracked], colours: dict[int, str | None] | None = None) -> None:
        """Advance to footage time ``t`` with this frame's tracked detections."""
        s = self.settings
        seen: set[int] = set()
        for d in tracked:
            tr = self.tracks.get(d.track_id)
            if tr is None:
                first = d.since if d.since is not None and d.since < t else t
                tr = self.tracks[d.track_id] = _TrackState(d.track_id, first_seen=first, last_seen=t)
                if first < t and d.since_box is not None:  # the spawning detection, before ByteTrack gave an id
                    tr.hits += 1
                    tr.early.append((first, d.since_box))
            seen.add(d.track_id)
            tr.last_seen = t
            tr.hits += 1
            tr.labels[d.label] += 1
            tr.score = max(tr.score, d.score)
            tr.box = [round(v, 1) for v in d.box.to_list()]
            c = (colours or {}).get(d.track_id)
            if c:
                tr.colours[c] += 1
            if not tr.confirmed:
                tr.early.append((t, d.box))
                if tr.hits < s.confirm_hits:
                    continue
                tr.confirmed = True
                tr.keyframe = self._keyframe(t, frame_index)
                tr.keyframe_box = tr.box
                self._event(EventType.APPEAR, tr.first_seen, tr.first_seen, tr, keyframe=tr.keyframe, box=tr.box)
                # zones from the first sighting on (keyframes are of this frame: earlier ones are gone)
                for t_early, box in tr.early:
                    self._zones_step(tr, t_early, box, t, frame_index)
                tr.early = []
            else:
                self._zones_step(tr, t, d.box, t, frame_index)
            self._track_record(tr, ongoing=True)
        self._crowd_step(t, frame_index, seen)
        for tid, tr in list(self.tracks.items()):
            if tid not in seen and t - tr.last_seen > s.lost_after:
                self._finish(tr, left=True)

    def _zones_step(self, tr: _TrackState, t: float, box: Box, kf_t: float, frame_index: int) -> None:
        """Zone membership at footage time ``t``; keyframes of events are the frame (kf_t, frame_index)."""
        s = self.settings
        foot = np.array([[(box.x1 + box.x2) / 2, box.y2]])
        for key, zone in self._zone_keys():
            zs = tr.zones.setdefault(key, _ZoneState())
            now_in = bool(zone.contains(foot)[0]) if zone is not None else True
            if now_in != zs.inside:
                if zs.run == 0:
                    zs.run_start = t
                zs.run += 1
                need = s.inertia if zone is not None else 1
                if zs.run >= need:
                    at = zs.run_start if zs.run_start is not None else t
                    if now_in:
                        self._enter(tr, key, zone, at, kf_t, frame_index)
                    else:
                        self._leave_zone(tr, key, zone, at)
                    zs.run, zs.run_start = 0, None
            else:
                zs.run, zs.run_start = 0, None
            if zs.inside:
                self._loiter_step(tr, key, zone, t, kf_t, frame_index)

    def _enter(self, tr: _TrackState, key: str, zone: Zone | None, at: float, t: float, frame_index: int) -> None:
        zs = tr.zones[key]
        zs.inside, zs.entered = True, at
        if zone is None:
            zs.entered = tr.first_seen
            return
        if key not in tr.visited:
            tr.visited.append(key)
        zs.keyframe = self._keyframe(t, frame_index)
        zs.box = tr.box
        self._event(EventType.ZONE_ENTER, at, at, tr, zone=key, keyframe=zs.keyframe, box=tr.box)

    def _loiter_step(self, tr: _TrackState, key: str, zone: Zone | None, t: float, kf_t: float, frame_index: int) -> None:
        limit = self._loiter_after(zone)
        zs = tr.zones[key]
        if limit is None or zs.entered is None or t - zs.entered < limit:
            return
        if zs.loiter_id is None:
            zs.loiter_keyframe, zs.loiter_box = self._keyframe(kf_t, frame_index), tr.box
        ev = self._event(EventType.LOITERING, zs.entered, t, tr, zone=key or None, keyframe=zs.loiter_keyframe,
                         box=zs.loiter_box, ongoing=True, value=t - zs.entered, details={"threshold": limit})
        zs.loiter_id = ev.id

    def _leave_zone(self, tr: _TrackState, key: str, zone: Zone | None, at: float, *, final: bool = False,
                    ongoing: bool = False) -> None:
        zs = tr.zones.get(key)
        if zs is None or not zs.inside or zs.entered is None:
            return
        s = self.settings
        limit = self._loiter_after(zone)
        if zs.loiter_id is not None or (limit is not None and at - zs.entered >= limit):
            self._event(EventType.LOITERING, zs.entered, at, tr, zone=key or None,
                        keyframe=zs.loiter_keyframe or zs.keyframe, box=zs.loiter_box or zs.box,
                        ongoing=ongoing, value=at - zs.entered, details={"threshold": limit})
        if zone is not None:
            if at - zs.entered >= s.min_dwell:
                self._event(EventType.DWELL, zs.entered, at, tr, zone=key, keyframe=zs.keyframe, box=zs.box,
                            ongoing=ongoing, value=at - zs.entered)
            if not ongoing:
                self._event(EventType.ZONE_LEAVE, at, at, tr, zone=key, keyframe=zs.keyframe, box=tr.box)
        if not ongoing:
            zs.inside, zs.entered, zs.loiter_id, zs.run, zs.run_start = False, None, None, 0, None
            zs.loiter_keyframe = zs.loiter_box = None

    def _crowd_step(self, t: float, frame_index: int, seen: set[int]) -> None:
        s = self.settings
        if not s.crowd_min:
            return
        for key, zone in self._zone_keys():
            members = [tr for tid, tr in self.tracks.items() if tid in seen and tr.confirmed and tr.label == s.crowd_label
                       and (zone is None or tr.zones.get(key, _ZoneState()).inside)]
            n = len(members)
            cr = self.crowds.setdefault(key, _Crowd())
            if n >= s.crowd_min:
                cr.run = 0
                if cr.id is None:
                    cr.start, cr.peak, cr.keyframe = t, 0, self._keyframe(t, frame_index)
                cr.end, cr.peak = t, max(cr.peak, n)
                ev = self._event(EventType.CROWDING, cr.start, cr.end, None, zone=key or None, keyframe=cr.keyframe,
                                 ongoing=True, count=cr.peak, label=s.crowd_label, details={"threshold": s.crowd_min})
                cr.id = ev.id
            elif cr.id is not None:
                cr.run += 1
                if cr.run >= s.inertia:
                    self._close_crowd(key, ongoing=False)

    def _close_crowd(self, key: str, *, ongoing: bool) -> None:
        cr = self.crowds.get(key)
        if cr is None or cr.id is None:
            return
        self._event(EventType.CROWDING, cr.start, cr.end, None, zone=key or None, keyframe=cr.keyframe, ongoing=ongoing,
                    count=cr.peak, label=self.settings.crowd_label, details={"threshold": self.settings.crowd_min})
        if not ongoing:
            self.crowds[key] = _Crowd()

    def _finish(self, tr: _TrackState, *, left: bool) -> None:
        """The track is gone (``left``) or the footage ended with it still there."""
        self.tracks.pop(tr.track_id, None)
        self.finished.add(tr.track_id)
        if not tr.confirmed:
            return
        for key, zone in self._zone_keys():
            self._leave_zone(tr, key, zone, tr.last_seen, ongoing=not left)
        if left:
            self._event(EventType.LEAVE, tr.last_seen, tr.last_seen, tr, keyframe=tr.keyframe, box=tr.box)
        self._track_record(tr, ongoing=not left)

    def finish(self, t_end: float, grace: float) -> None:
        """The footage ended at ``t_end``: a track unseen for more than ``grace`` seconds by then
        has left; the others are still there and are written as ``ongoing``."""
        for tr in list(self.tracks.values()):
            self._finish(tr, left=t_end - tr.last_seen > grace)
        for key in list(self.crowds):
            self._close_crowd(key, ongoing=True)

    def drain(self) -> tuple[list[EventRecord], list[TrackRecord], set[int]]:
        """Take the pending records and the ids of tracks finished since the last drain."""
        evs, trs, done = list(self.pending_events.values()), list(self.pending_tracks.values()), self.finished
        self.pending_events, self.pending_tracks, self.finished = {}, {}, set()
        return evs, trs, done
