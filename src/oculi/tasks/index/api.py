"""The index entry points: folders and files, uploaded bytes, and rewriting stored documents.

Each takes a ``Vision`` (what perceives and embeds) and the ``Collection`` to write; opening
or creating the collection is the caller's (``oculi.library.Library``).
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from oculi.core.errors import InputError
from oculi.core.types import Observation
from oculi.imageio import ImageLimits
from oculi.store.base import Collection, ItemRecord, item_from_row, vector_models_of
from oculi.store.blobs import BlobStore
from oculi.tasks.index.document import observation_document
from oculi.tasks.index.pipeline import BATCH_SIZE, IndexPipeline
from oculi.tasks.index.report import IndexProgress, IndexReport, ProgressFn, StopFn
from oculi.tasks.index.spaces import current_spaces, guard_collection, record_spaces, stored_spaces
from oculi.tasks.index.stages import DESCRIBER_KEY, ImagePreparer, KnownItems, describer_id
from oculi.tasks.index.walk import FoundFile, is_under, walk_images
from oculi.tasks.vision import Vision

if TYPE_CHECKING:
    from oculi.tasks.index.distributed import RayOptions, RayPipeline, VisionFactory

_ALL_ITEM_COLUMNS = tuple(ItemRecord.__dataclass_fields__)


def index_paths(
    vision: Vision,
    coll: Collection,
    paths: Sequence[str | Path],
    *,
    limits: ImageLimits = ImageLimits(),
    ocr: bool = True,
    prune: bool = False,
    exclude: Sequence[str | Path] = (),
    progress: ProgressFn | None = None,
    should_stop: StopFn | None = None,
    batch_size: int = BATCH_SIZE,
    workers: int | None = None,
    ray: "RayOptions | None" = None,
    vision_factory: "VisionFactory | None" = None,
) -> IndexReport:
    """Index image files and folders into a collection; incremental and resumable.

    1. **Walk** the paths (``walk_images``); unreadable folders and broken links are problems.
    2. **Plan**: a file whose path, size and modification time match its stored file record
       (and whose item exists) is unchanged and not even read. Every other file is read and
       hashed; if its content is stored already only its file record is written.
    3. **Perceive** the rest in batches (``IndexPipeline``), writing items and then file
       records every ``FLUSH_ITEMS`` items.
    4. **Finish**: with ``prune``, forget files that are gone; delete items no file points to
       any more (the old content of a changed file); compact and update the indexes.

    Args:
        vision: Perceives, describes and embeds (an ``oculi.Engine``).
        coll: The collection to write (``Library.index`` creates it).
        paths: Files and folders; folders are walked recursively.
        limits: Byte and pixel limits for decoding.
        ocr: Run OCR.
        prune: Forget indexed files under ``paths`` that no longer exist — also under a path that
            is gone altogether, if the collection holds files there.
        exclude: Folders the walk skips (the store's own directory).
        progress: Called with an ``IndexProgress`` as work advances.
        should_stop: Polled between files; when it returns True the run writes what it has and
            returns with ``report.interrupted`` set. A rerun completes it.
        batch_size: Images per perception call.
        workers: Threads reading/decoding ahead of the models (default: cores, at most 4).
        ray: Run reading, decoding and perception on a Ray cluster instead of this process
            (``oculi.tasks.index.distributed``); the store is still written from here.
        vision_factory: With ``ray``: builds each Ray actor's ``Vision`` (it must pickle).

    Raises:
        InputError: a path does not exist, or the collection is being written by another process.
        ConfigError: ``ray`` without Ray installed, or a cluster that cannot be reached.
    """
    t0 = time.monotonic()
    report = IndexReport(collection=coll.name)
    if progress:
        progress(IndexProgress("scanning"))
    roots = [os.path.abspath(os.fspath(p)) for p in paths]
    walk = walk_images(paths, exclude=exclude, missing_ok=prune,
                       on_found=(lambda n: progress(IndexProgress("scanning", n, 0))) if progress else None)
    report.found = len(walk.files)
    report.problems = walk.problems
    with coll.writer():
        existing = coll.file_states()
        for gone_root in walk.missing_roots:  # with prune: a vanished folder is pruned, not refused
            if not any(is_under(p, [gone_root]) for p in existing):
                raise InputError(f"{gone_root}: no such file or directory, and collection {coll.name!r} "
                                 "has no files under it to prune")
        ids = coll.item_ids()
        todo: list[FoundFile] = []
        old_ids: dict[str, str] = {}
        seen_paths = set()
        for f in walk.files:
            seen_paths.add(f.path)
            rec = existing.get(f.path)
            if rec is not None and rec.size == f.size and rec.mtime_ns == f.mtime_ns and rec.id in ids:
                report.unchanged += 1
                continue
            if rec is not None:
                old_ids[f.path] = rec.id
            todo.append(f)
        gone = [p for p in existing if p not in seen_paths and is_under(p, roots)
                and not is_under(p, walk.unreadable_dirs)]
        preparer = ImagePreparer(limits, KnownItems(ids))
        pipe: IndexPipeline | RayPipeline
        if ray is not None:
            from oculi.tasks.index.distributed import RayPipeline

            if vision_factory is None:
                raise ValueError("index_paths(ray=...) needs a vision_factory for the Ray actors")
            pipe = RayPipeline(vision_factory, coll, report, preparer, ocr=ocr, batch_size=batch_size, options=ray,
                               progress=progress, should_stop=should_stop,
                               spaces=guard_collection(coll, vision))  # another embedder's vectors are refused
        else:
            pipe = IndexPipeline(vision, coll, report, preparer, ocr=ocr, batch_size=batch_size, workers=workers,
                                 progress=progress, should_stop=should_stop)
        completed = False
        try:
            if todo:
                pipe.run(todo)
            completed = True
        finally:
            report.changed = sum(1 for p, old in old_ids.items() if report.ids.get(p, old) != old)
            # a run that failed (a full disk, a second Ctrl-C) does not go on to compact: what
            # was written is kept, and the next run finishes the job
            if completed and not report.interrupted:
                if progress:
                    progress(IndexProgress("finishing", pipe.done, pipe.total, len(report.failed)))
                if prune and gone:
                    report.removed = coll.delete_files(gone)
                else:
                    report.missing = len(gone)
                if report.changed or report.removed:
                    finish_removals(coll, report)
                if report.added or report.relinked or report.removed or report.items_removed:
                    coll.optimize()
    report.items_total = coll.count()
    report.elapsed_s = time.monotonic() - t0
    return report


def finish_removals(coll: Collection, report: IndexReport) -> None:
    """Delete items no file holds any more; re-point items whose shown path was forgotten."""
    report.items_removed = coll.delete_orphan_items()
    files = coll.file_states()
    by_id: dict[str, list[str]] = {}
    for rec in files.values():
        by_id.setdefault(rec.id, []).append(rec.path)
    moves: dict[str, str] = {}
    for rows in coll.iter_items(["id", "path"]):
        for r in rows:
            paths = by_id.get(r["id"])
            if paths and r["path"] not in paths:
                moves[r["id"]] = sorted(paths)[0]
    if moves:
        coll.repoint_items(moves)


def ingest_images(
    vision: Vision,
    coll: Collection,
    items: Sequence[tuple[str, bytes]],
    *,
    blobs: BlobStore,
    limits: ImageLimits = ImageLimits(),
    ocr: bool = True,
    progress: ProgressFn | None = None,
    should_stop: StopFn | None = None,
    batch_size: int = BATCH_SIZE,
) -> IndexReport:
    """Index images given as ``(name, bytes)`` (uploads) into a collection.

    Each decodable image's bytes are kept in ``blobs`` (named by content hash) and indexed
    under the blob's location; ``name`` is what results show. The same bytes uploaded twice
    are one item. Bad images are listed in ``report.failed`` under their name.
    """
    t0 = time.monotonic()
    report = IndexReport(collection=coll.name, found=len(items))
    srcs = []
    for i, (name, data) in enumerate(items):
        nm = os.path.basename(str(name or f"upload-{i}"))[:255] or f"upload-{i}"
        srcs.append(FoundFile(path=nm, size=len(data or b""), mtime_ns=time.time_ns(), name=nm, data=bytes(data or b"")))
    with coll.writer(wait=True):
        preparer = ImagePreparer(limits, KnownItems(coll.item_ids()), blobs=blobs)
        pipe = IndexPipeline(vision, coll, report, preparer, ocr=ocr, batch_size=batch_size,
                             progress=progress, should_stop=should_stop)
        if srcs:
            pipe.run(srcs)
        if report.added or report.relinked:
            coll.optimize()
    report.items_total = coll.count()
    report.elapsed_s = time.monotonic() - t0
    return report


def _refreshed_caption(vision: Vision, obs: Observation, item: Any) -> str:
    """A new caption from the stored observation; where the describer needs the pixels (a VLM),
    the stored caption stays, since refreshing reads no image."""
    try:
        return vision.describe_observation(obs)
    except InputError:
        return item.caption


def _refreshed_observation(item: Any, caption: str, describer: str | None,
                           text_models: dict[str, str] | None = None) -> dict[str, Any]:
    """The stored observation, naming the model that wrote ``caption`` when it was rewritten, and
    the model of the rewritten text vector (``text_models``: ``store.base.vector_models_of``)."""
    extra = dict(text_models or {})
    if describer is not None and caption != item.caption:
        extra[DESCRIBER_KEY] = describer
    models = item.observation.get("models") or {}
    if all(models.get(k) == v for k, v in extra.items()):
        return item.observation
    return {**item.observation, "models": {**models, **extra}}


def refresh_documents(vision: Vision, coll: Collection, *, progress: ProgressFn | None = None,
                      batch_size: int = 256) -> int:
    """Rewrite every item's caption, keyword document and text vector from its stored
    observation — after a change of the document builder or of the sentence encoder — without
    reading an image or running perception. Returns how many items were rewritten."""
    total = coll.count()
    done = 0
    t0 = time.monotonic()
    describer = describer_id(vision)
    current = current_spaces(vision)
    text_space = (current or {}).get("text")
    text_models = vector_models_of({"text": text_space}) if text_space else {}
    with coll.writer():
        if text_space:  # the text vectors are all rewritten by this encoder: the collection records its space
            record_spaces(coll, {**stored_spaces(coll), "text": text_space})
        ids = sorted(coll.item_ids())
        for start in range(0, len(ids), batch_size):
            rows = coll.get_items(ids[start : start + batch_size], columns=list(_ALL_ITEM_COLUMNS))
            items = [item_from_row(r) for r in rows]
            docs = [observation_document(o, _refreshed_caption(vision, o, it)) for o, it in
                    ((Observation.from_dict(it.observation), it) for it in items)]
            vecs = np.asarray(vision.embed_texts([d.summary for d in docs]), dtype=np.float32)
            coll.update_items([
                replace(it, caption=d.caption, doc=d.doc, labels=d.labels, objects=d.objects,
                        observation=_refreshed_observation(it, d.caption, describer, text_models),
                        object_terms=d.object_terms, colours=d.colours, text=d.text, track_ids=d.track_ids,
                        text_vec=vecs[i])
                for i, (it, d) in enumerate(zip(items, docs))
            ])
            done += len(items)
            if progress:
                progress(IndexProgress("refreshing", done, total, 0, "", time.monotonic() - t0))
        coll.optimize()
    return done
