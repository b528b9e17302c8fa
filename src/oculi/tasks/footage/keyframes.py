"""Keyframes: the frames events point at, stored as searchable items of their source.

A keyframe is perceived like any image (classifier labels and visual embedding, colours, OCR
when enabled), its detector objects replaced by the *tracked* objects of that frame (with their
track ids and colours), and written as an ``ItemRecord`` of kind ``frame`` with the source's id,
the frame number, the footage second and ``time`` = the frame's epoch time, so
``oculi search "red car" --after ... --before ...`` finds it. Boxes are in video pixels.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any, Sequence

import numpy as np
from PIL import Image

from oculi.core.types import Box, DetectedObject, ImageInfo, Observation, TextLine
from oculi.store.base import ItemRecord, item_id


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


def keyframe_items(engine: Any, pending: Sequence[PendingKeyframe], *, source_id: str, camera: str, uri: str,
                   start_time: float, width: int, height: int, tracked_labels: frozenset[str] | None,
                   ocr: bool) -> list[ItemRecord]:
    """Perceive the pending keyframes in one batch and build their items.

    Uses the engine's ``observe`` capability (a batch), its caption writer and its sentence
    encoder, i.e. the same stages an indexed photo goes through.
    """
    from oculi.tasks.index import make_thumbnail, observation_document

    if not pending:
        return []
    infos = [ImageInfo(p.image.width, p.image.height, path=uri, format="frame", source_id=source_id,
                       frame_index=p.frame_index, timestamp=round(p.t, 3)) for p in pending]
    observations = engine.backend("observe").observe_batch([p.image for p in pending], infos, ocr=ocr)
    obs_list: list[Observation] = []
    for p, obs in zip(pending, observations):
        s = p.scale
        kept = [replace(o, box=_scale_box(o.box, s, width, height)) for o in obs.objects
                if tracked_labels is not None and o.label not in tracked_labels and o.source != "faces"]
        text = [TextLine(t.text, t.score, _scale_box(t.box, s, width, height)) for t in obs.text]
        objects = sorted(list(p.objects) + kept, key=lambda o: -o.score)
        info = replace(obs.image, width=width, height=height)
        obs_list.append(replace(obs, image=info, objects=tuple(objects), text=tuple(text)))
    describe_fn = getattr(engine, "describe_observation", None)
    docs = [observation_document(o, describe_fn(o) if describe_fn else None) for o in obs_list]
    text_vecs = np.asarray(engine.embed_texts([d.summary for d in docs]), dtype=np.float32)
    now = time.time()
    name = os.path.basename(uri.rstrip("/")) or uri
    items = []
    for i, (p, obs, doc) in enumerate(zip(pending, obs_list, docs)):
        epoch = start_time + p.t
        stamp = datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        kid = keyframe_item_id(source_id, p.frame_index)
        items.append(ItemRecord(
            id=kid, sha256=source_id, path=uri, name=f"{name} @ {stamp}", width=width, height=height,
            text_vec=text_vecs[i], image_vec=obs.embedding if obs.embedding is not None else np.zeros(1, np.float32),
            kind="frame", source_id=source_id, frame_index=p.frame_index, timestamp=round(p.t, 3), format="frame",
            time=epoch, taken_at=epoch, camera=camera, caption=doc.caption, doc=doc.doc, labels=doc.labels,
            objects=doc.objects, object_terms=doc.object_terms, colours=doc.colours, text=doc.text,
            track_ids=doc.track_ids, observation=obs.to_dict(), thumbnail=make_thumbnail(p.image, KEYFRAME_THUMBNAIL), indexed_at=now,
        ))
    return items
