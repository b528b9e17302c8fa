"""Keyframes: the frames events point at, stored as searchable items of their source.

Keyframes go through the same ingest stages as photos (``oculi.tasks.index.stages``):
``perceive_batch`` (classifier labels and visual embedding, colours, OCR when enabled) →
the detector's objects replaced by the *tracked* objects of that frame (with their track ids
and colours), boxes in video pixels → ``build_items`` (caption, search document, text vector)
→ written by the caller at its checkpoint. The frame's epoch time stands where a photo's EXIF
capture time would (``time``, ``taken_at``) and the camera name where its camera model would,
so ``oculi search "red car" --after ... --before ...`` finds keyframes like photos; the item
is of kind ``frame`` with the source's id, the frame number and the footage second.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any, Sequence

from PIL import Image

from oculi.core.errors import InputError
from oculi.core.types import Box, DetectedObject, ImageInfo, ObjectSource, TextLine
from oculi.imageio import LoadedImage
from oculi.store.base import ItemRecord, item_id
from oculi.tasks.index.metadata import ExifMeta, make_thumbnail
from oculi.tasks.index.stages import PreparedImage, build_items, perceive_batch
from oculi.tasks.index.walk import FoundFile

#: Keyframe thumbnails are larger than photos' (256): reports draw the events' boxes on them.
KEYFRAME_THUMBNAIL = 480


def keyframe_item_id(source_id: str, frame_index: int) -> str:
    """Item id of a source's frame: deterministic, so a re-run writes the same item."""
    return item_id(source_id, frame_index=int(frame_index))


@dataclass
class PendingKeyframe:
    frame_index: int
    t: float  # footage seconds
    image: Image.Image  # analysis size
    scale: float  # video pixels per analysis pixel
    objects: list[DetectedObject]  # tracked objects, video pixels


def _scale_box(b: Box, s: float, w: int, h: int) -> Box:
    return Box(b.x1 * s, b.y1 * s, b.x2 * s, b.y2 * s).clip(w, h)


def keyframe_items(vision: Any, pending: Sequence[PendingKeyframe], *, source_id: str, camera: str, uri: str,
                   start_time: float, width: int, height: int, tracked_labels: frozenset[str] | None,
                   ocr: bool) -> list[ItemRecord]:
    """Perceive the pending keyframes in one batch and build their items.

    Args:
        vision: The ``Vision`` (an ``Engine``) that perceives, describes and embeds.
        pending: The frames, at analysis size, with their tracked objects in video pixels.
        source_id / camera / uri / start_time / width / height: Of the source.
        tracked_labels: Classes the tracker follows; the perceiver's own detections of these
            are replaced by the tracked ones, others (a bench, a stop sign) are kept.

    Raises:
        InputError: a keyframe could not be perceived (the run stops at its checkpoint).
    """
    if not pending:
        return []
    name = os.path.basename(uri.rstrip("/")) or uri
    preps = []
    for p in pending:
        epoch = start_time + p.t
        stamp = datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        info = ImageInfo(p.image.width, p.image.height, path=uri, format="frame", source_id=source_id,
                         frame_index=p.frame_index, timestamp=round(p.t, 3))
        preps.append(PreparedImage(
            src=FoundFile(uri, 0, int(epoch * 1e9), name=f"{name} @ {stamp}"), sha=source_id,
            iid=keyframe_item_id(source_id, p.frame_index), size=0, mtime_ns=int(epoch * 1e9),
            loaded=LoadedImage(p.image, info), exif=ExifMeta(taken_at=epoch, camera=camera),
            thumb=make_thumbnail(p.image, KEYFRAME_THUMBNAIL)))
    perceived = []
    by_iid = {k.iid: k for k in preps}
    frames = {keyframe_item_id(source_id, p.frame_index): p for p in pending}
    for prep, obs in perceive_batch(vision, preps, ocr=ocr):
        if isinstance(obs, str):
            raise InputError(f"keyframe at {frames[prep.iid].t:.1f} s could not be perceived: {obs}")
        p = frames[prep.iid]
        s = p.scale
        kept = [replace(o, box=_scale_box(o.box, s, width, height)) for o in obs.objects
                if tracked_labels is not None and o.label not in tracked_labels and o.source != ObjectSource.FACES]
        text = [TextLine(t.text, t.score, _scale_box(t.box, s, width, height)) for t in obs.text]
        objects = sorted(list(p.objects) + kept, key=lambda o: -o.score)
        obs = replace(obs, image=replace(obs.image, width=width, height=height), objects=tuple(objects), text=tuple(text))
        perceived.append((by_iid[prep.iid], obs))
    return build_items(vision, perceived)
