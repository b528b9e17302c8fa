"""Multi-object tracking: roboflow ``trackers`` ByteTrack over supervision ``Detections``.

One ByteTrack per class group (people; vehicles — the detector often calls one car "car" in
one frame and "truck" in the next; each other class alone), so a person is never continued as
a car. Track ids are unique within a source across groups: a ``Tracker`` allocates them and
keeps the mapping on the instance (no class-level counters). The lost-track buffer is in
*seconds* of footage: every update passes the frame's footage time to ByteTrack, which then
budgets lost tracks by elapsed time (``lost_track_buffer`` is in 1/30 s units), so ids survive
an occlusion of ``lost_after`` seconds whatever the sampling rate.

ByteTrack matches a lost track by the overlap of its Kalman prediction with a new box; after a
few seconds behind a wall, or for a fast car after one missed frame, that overlap is often nil
and ByteTrack starts a new track. So a new ByteTrack track is first offered to the recently lost
tracks of its group: if its box lies where a lost track's constant-velocity motion (measured
over its last ``VELOCITY_WINDOW`` seconds) puts it, at a similar size, it continues that track's
id (nearest first, one to one).

Low-scoring detections (between ``low_threshold`` and ``high_threshold``) never start a track
but can continue one (ByteTrack's second association stage), which keeps a half-hidden person
on their track.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from oculi.core.types import Box, DetectedObject

VEHICLES = frozenset({"car", "truck", "bus", "motorcycle"})
PEOPLE = frozenset({"person"})
ANIMALS = frozenset({"bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe"})
#: Classes tracked by default: things that move on their own (plus bicycles).
DEFAULT_CLASSES = PEOPLE | VEHICLES | ANIMALS | {"bicycle"}


def class_group(label: str) -> str:
    if label in VEHICLES:
        return "vehicle"
    return label


def to_sv(objects: Sequence[DetectedObject]) -> "sv.Detections":  # noqa: F821
    """supervision ``Detections`` from oculi objects; ``data["label"]`` keeps the class names."""
    import supervision as sv

    if not objects:
        d = sv.Detections.empty()
        d.data["label"] = np.array([], dtype=object)
        return d
    xyxy = np.array([[o.box.x1, o.box.y1, o.box.x2, o.box.y2] for o in objects], dtype=np.float32)
    return sv.Detections(
        xyxy=xyxy,
        confidence=np.array([o.score for o in objects], dtype=np.float32),
        class_id=np.zeros(len(objects), dtype=int),
        data={"label": np.array([o.label for o in objects], dtype=object)},
    )


VELOCITY_WINDOW = 2.0  # seconds of a track's history used for its velocity
RELINK_DISTANCE = 0.8  # a re-linked box's centre lies within this many box heights of the prediction
RELINK_SIZE = 1.6  # ... and its height differs by at most this factor


@dataclass
class _Motion:
    group: str
    history: list[tuple[float, float, float, float]]  # (t, cx, cy, height), last VELOCITY_WINDOW s

    @property
    def last_t(self) -> float:
        return self.history[-1][0]

    def predict(self, t: float) -> tuple[float, float, float]:
        t1, x1, y1, h1 = self.history[-1]
        t0, x0, y0, _ = self.history[0]
        if t1 - t0 > 1e-6:
            vx, vy = (x1 - x0) / (t1 - t0), (y1 - y0) / (t1 - t0)
        else:
            vx = vy = 0.0
        return x1 + vx * (t - t1), y1 + vy * (t - t1), h1


@dataclass
class Tracked:
    """One tracked detection on one frame; ``since``/``since_box``: when and where a new track's
    first detection was (ByteTrack gives an id from the second one on)."""

    track_id: int
    label: str
    score: float
    box: Box
    since: float | None = None
    since_box: Box | None = None


@dataclass
class Tracker:
    """Tracks detections frame by frame; ids unique within one source.

    Args:
        lost_after: Seconds a track survives without a detection (occlusion, missed detections).
        high_threshold: Detections at least this confident start tracks and match first.
        low_threshold: Detections below ``high_threshold`` but at least this only continue tracks.
        classes: Labels tracked (others are ignored); ``None`` tracks every class.
        min_iou: Least overlap between a track's predicted box and a detection to match.
    """

    lost_after: float = 4.0
    high_threshold: float = 0.4
    low_threshold: float = 0.2
    classes: frozenset[str] | None = DEFAULT_CLASSES
    min_iou: float = 0.1
    next_id: int = 1
    _trackers: dict[str, object] = field(default_factory=dict, repr=False)
    _ids: dict[tuple[str, int], int] = field(default_factory=dict, repr=False)
    _motion: dict[int, _Motion] = field(default_factory=dict, repr=False)

    def _tracker(self, group: str) -> object:
        t = self._trackers.get(group)
        if t is None:
            from trackers import ByteTrackTracker

            t = ByteTrackTracker(
                lost_track_buffer=max(1, int(round(self.lost_after * 30))),  # 1/30 s units with timestamps
                frame_rate=30.0,
                track_activation_threshold=self.high_threshold,
                minimum_consecutive_frames=1,  # confirmation is the event layer's (with the first sighting's time)
                minimum_iou_threshold=self.min_iou,
                high_conf_det_threshold=self.high_threshold,
            )
            self._trackers[group] = t
        return t

    def update(self, objects: Sequence[DetectedObject], t: float) -> list[Tracked]:
        """Feed one frame's detections (any score ≥ ``low_threshold``) at footage time ``t``."""
        groups: dict[str, list[DetectedObject]] = {}
        for o in objects:
            if o.score < self.low_threshold or (self.classes is not None and o.label not in self.classes):
                continue
            groups.setdefault(class_group(o.label), []).append(o)
        # every existing group gets its update (an empty frame ages its lost tracks)
        for g in self._trackers:
            groups.setdefault(g, [])
        out: list[Tracked] = []
        for g in sorted(groups):
            dets = groups[g]
            if not dets and g not in self._trackers:
                continue
            bt = self._tracker(g)
            res = bt.update(to_sv(dets), timestamp=max(0.0, float(t)))  # type: ignore[attr-defined]
            spawned = self._mark_spawns(bt, t)
            if len(res) == 0:
                continue
            fresh: list[tuple[tuple[str, int], Tracked]] = []
            used: set[int] = set()
            for xyxy, conf, tid, label in zip(res.xyxy, res.confidence, res.tracker_id, res.data["label"]):
                if tid is None or int(tid) < 0:
                    continue
                key = (g, int(tid))
                tr = Tracked(-1, str(label), float(conf), Box(*(float(v) for v in xyxy)))
                ext = self._ids.get(key)
                if ext is None:
                    tr.since, tr.since_box = spawned.get(int(tid), (None, None))
                    fresh.append((key, tr))
                    continue
                tr.track_id = ext
                used.add(ext)
                out.append(tr)
            for key, tr in self._relink(g, t, fresh, used):
                self._ids[key] = tr.track_id
                out.append(tr)
        for tr in out:
            self._remember(tr, t)
        return out

    @staticmethod
    def _mark_spawns(bt: object, t: float) -> dict[int, tuple[float, Box]]:
        """Note on each new ByteTrack tracklet when and where it was spawned (it gets an id only
        when matched again); returns that of the tracklets that have an id, by id. Reads the
        tracker's public ``tracks`` list and each tracklet's ``tracker_id``."""
        out: dict[int, tuple[float, Box]] = {}
        for tl in getattr(bt, "tracks", ()):
            if not hasattr(tl, "oculi_since"):
                b = np.asarray(tl.get_state_bbox(), dtype=float).reshape(-1)
                tl.oculi_since = (float(t), Box(*(float(v) for v in b[:4])))
            if getattr(tl, "tracker_id", -1) >= 0:
                out[int(tl.tracker_id)] = tl.oculi_since
        return out

    def _relink(self, group: str, t: float, fresh: list[tuple[tuple[str, int], "Tracked"]],
                used: set[int]) -> list[tuple[tuple[str, int], "Tracked"]]:
        """Give new ByteTrack tracks the id of a lost track where its motion leads; else a new id."""
        lost = {i: m for i, m in self._motion.items()
                if m.group == group and i not in used and 0 < t - m.last_t <= self.lost_after}
        pairs = []
        for n, (_, tr) in enumerate(fresh):
            cx, cy = tr.box.center
            h = max(tr.box.height, 1.0)
            for i, m in lost.items():
                px, py, ph = m.predict(t)
                if not (1 / RELINK_SIZE <= h / max(ph, 1.0) <= RELINK_SIZE):
                    continue
                dist = ((cx - px) ** 2 + (cy - py) ** 2) ** 0.5 / max(h, ph)
                if dist <= RELINK_DISTANCE:
                    pairs.append((dist, n, i))
        taken_new: set[int] = set()
        for _, n, i in sorted(pairs):
            if n in taken_new or i in used:
                continue
            fresh[n][1].track_id = i
            taken_new.add(n)
            used.add(i)
        for key, tr in fresh:
            if tr.track_id < 0:
                tr.track_id = self.next_id
                self.next_id += 1
        return fresh

    def _remember(self, tr: "Tracked", t: float) -> None:
        cx, cy = tr.box.center
        m = self._motion.get(tr.track_id)
        if m is None:
            m = self._motion[tr.track_id] = _Motion(class_group(tr.label), [])
        m.history.append((t, cx, cy, tr.box.height))
        while len(m.history) > 2 and t - m.history[0][0] > VELOCITY_WINDOW:
            m.history.pop(0)

    def forget(self, track_ids: set[int]) -> None:
        """Drop the id mapping of finished tracks (keeps the state small on long footage)."""
        if track_ids:
            self._ids = {k: v for k, v in self._ids.items() if v not in track_ids}
            for i in track_ids:
                self._motion.pop(i, None)
