"""One index run over a list of sources: the stages of ``stages`` driven by a thread pool.

Worker threads prepare (read, hash, decode, EXIF, thumbnail) up to three batches ahead; one
thread hands each batch to perception (the engine's ``PerceptionPool`` with the built-in
model) while the calling thread builds the items of the batch before it (caption, document,
sentence embedding) and writes them, so the perception workers never wait for the store.
``should_stop`` is polled between files, and whatever was processed is written before the
run returns.
"""

from __future__ import annotations

import os
import sys
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Sequence

from oculi.core.types import Observation
from oculi.store.base import Collection
from oculi.tasks.index.report import IndexProgress, IndexReport, ProgressFn, StopFn
from oculi.tasks.index.spaces import guard_collection
from oculi.tasks.index.stages import (
    DESCRIBER_KEY,
    describer_id,
    ImagePreparer,
    KnownItems,
    PreparedImage,
    PrepareFailure,
    StoreWriter,
    build_items,
    file_record,
    first_models,
    perceive_batch,
)
from oculi.tasks.index.walk import FoundFile
from oculi.tasks.vision import Vision

#: Images perceived per model call.
BATCH_SIZE = 8


class IndexPipeline:
    """Runs sources through prepare → perceive → build → write, recording into ``report``.

    Args:
        vision: What perceives, describes and embeds (an ``Engine``).
        coll: The collection written to (the caller holds its writer lock).
        report: Filled in as the run goes: added, relinked, failed, ids, perceive time.
        preparer: Stage 1, with its limits, known item ids and blob folder.
        ocr: Run OCR.
        batch_size: Images per perception call.
        workers: Preparer threads (default: cores, at most 4).
        progress: Called with an ``IndexProgress`` as work advances.
        should_stop: Polled between files; True stops the run after writing what it has.
    """

    def __init__(self, vision: Vision, coll: Collection, report: IndexReport, preparer: ImagePreparer, *,
                 ocr: bool, batch_size: int = BATCH_SIZE, workers: int | None = None,
                 progress: ProgressFn | None = None, should_stop: StopFn | None = None) -> None:
        self.vision = vision
        self.report = report
        self.preparer = preparer
        self.known: KnownItems = preparer.known
        self.writer = StoreWriter(coll, spaces=guard_collection(coll, vision))
        self.ocr = ocr
        self.batch_size = max(1, batch_size)
        self.workers = workers or max(1, min(4, os.cpu_count() or 1))
        self.progress = progress
        self.should_stop = should_stop or (lambda: False)
        self.t0 = time.monotonic()
        self.done = 0
        self.total = 0
        self._perceiver = ThreadPoolExecutor(1, thread_name_prefix="oculi-index-perceive")
        self._pending: tuple[list[PreparedImage], Future] | None = None

    def _tick(self, current: str = "") -> None:
        if self.progress:
            self.progress(IndexProgress("indexing", self.done, self.total, len(self.report.failed), current,
                                        time.monotonic() - self.t0))

    def _add_file(self, prep: PreparedImage) -> None:
        self.report.ids[prep.src.name if prep.src.data is not None else prep.src.path] = prep.iid
        self.writer.add_files([file_record(prep)])

    def process(self, batch: list[PreparedImage]) -> None:
        """Start perceiving a batch of decoded images; build and write the batch before it meanwhile.

        First the store is asked whether this batch, the one in perception and what is queued
        will fit on disk (``Collection.ensure_space``): a full disk stops the run here, with the
        batch already in perception (which passed its own check) and what was queued still
        written, instead of after perceiving images that could not be saved.
        """
        ensure_space = getattr(self.writer.coll, "ensure_space", None)
        if ensure_space is not None:
            in_perception = len(self._pending[0]) if self._pending is not None else 0
            try:
                ensure_space(len(batch) + in_perception + len(self.writer.items))
            except BaseException:
                self.finish_pending()
                raise
        started = self._perceiver.submit(self._perceive, batch)
        self.finish_pending()
        self._pending = (batch, started)

    def _perceive(self, batch: list[PreparedImage]) -> list[tuple[PreparedImage, Observation | str]]:
        t0 = time.monotonic()
        try:
            return perceive_batch(self.vision, batch, ocr=self.ocr)
        finally:
            self.report.perceive_s += time.monotonic() - t0

    def finish_pending(self) -> None:
        """Wait for the batch in perception, build its items and queue them for writing."""
        if self._pending is None:
            return
        (batch, started), self._pending = self._pending, None
        results = started.result()
        good: list[tuple[PreparedImage, Observation]] = []
        for p, res in results:
            if isinstance(res, str):
                self.report.failed.append({"path": p.src.path, "error": res})
            else:
                good.append((p, res))
        if good:
            models = first_models(o for _, o in good)
            describer = describer_id(self.vision)
            if describer:
                models[DESCRIBER_KEY] = describer
            self.writer.add_items(build_items(self.vision, good), models)
            for p, _ in good:
                self._add_file(p)
            self.report.added += len(good)
        self.done += len(batch)
        self._tick(batch[-1].src.path)
        self.writer.maybe_flush()

    def relink(self, p: PreparedImage) -> None:
        """An image whose content is stored already: only its file record is written."""
        self._add_file(p)
        self.report.relinked += 1
        self.done += 1
        if self.done % 50 == 0:
            self._tick(p.src.path)

    def run(self, todo: Sequence[FoundFile]) -> None:
        self.total = len(todo)
        self._tick()
        window = self.batch_size * 3
        batch: list[PreparedImage] = []
        batch_ids: set[str] = set()
        with ThreadPoolExecutor(self.workers, thread_name_prefix="oculi-index") as ex:
            queue: deque[Future] = deque()
            try:
                for src in todo:
                    queue.append(ex.submit(self.preparer, src))
                    if len(queue) < window:
                        continue
                    if self._consume(queue.popleft().result(), batch, batch_ids):
                        batch, batch_ids = [], set()
                    if self.should_stop():
                        self.report.interrupted = True
                        break
                while queue and not self.report.interrupted:
                    if self._consume(queue.popleft().result(), batch, batch_ids):
                        batch, batch_ids = [], set()
                    if self.should_stop():
                        self.report.interrupted = True
                if batch and not self.report.interrupted:
                    self.process(batch)
                self.finish_pending()
            finally:
                for fut in queue:
                    fut.cancel()
                try:
                    if self._pending is not None and sys.exc_info()[0] is None:
                        self.finish_pending()
                finally:
                    self._pending = None
                    self._perceiver.shutdown(wait=True, cancel_futures=True)
                    self.writer.flush()

    def _consume(self, res: PreparedImage | PrepareFailure, batch: list[PreparedImage], batch_ids: set[str]) -> bool:
        """Route one prepared file; returns True when ``batch`` was processed (caller resets it)."""
        if isinstance(res, PrepareFailure):
            self.report.failed.append({"path": res.src.path, "error": res.error})
            self.done += 1
            self._tick(res.src.path)
            return False
        if res.loaded is None or res.iid in self.known or res.iid in batch_ids:
            self.relink(res)
            return False
        batch.append(res)
        batch_ids.add(res.iid)
        if len(batch) >= self.batch_size:
            self.process(batch)
            self.known.update(batch_ids)
            return True
        return False
