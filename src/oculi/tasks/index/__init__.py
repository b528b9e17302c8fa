"""Index: walk folders, perceive each new or changed image once, and store what was found.

The rooms:

- ``walk``: finding image files under folders (``walk_images``, ``FoundFile``);
- ``metadata``: EXIF capture time, camera, GPS, and thumbnails;
- ``document``: the searchable document of an observation (``observation_document``);
- ``stages``: the reusable ingest stages — ``ImagePreparer`` → ``perceive_batch`` →
  ``build_items`` → ``StoreWriter`` — that every source (folders, uploads, video frames,
  distributed workers) pushes its images through;
- ``pipeline``: one threaded run of those stages over a list of sources (``IndexPipeline``);
- ``report``: progress and the run's report;
- ``api``: the entry points ``index_paths``, ``ingest_images``, ``refresh_documents``.

A run killed at any moment leaves the store at its last committed write (see
``oculi.store.lance``); the next run skips what was written and completes the rest. A bad file
is recorded in the report and the batch goes on. Applications call these through
``oculi.library.Library``, which opens the collection and passes the engine's settings.
"""

from oculi.tasks.index.api import finish_removals, index_paths, ingest_images, refresh_documents
from oculi.tasks.index.document import LABEL_DOC, LABEL_KEEP, MAX_DOC_TEXT, MAX_EMBED_TEXT, Document, observation_document
from oculi.tasks.index.metadata import THUMBNAIL_QUALITY, THUMBNAIL_SIZE, ExifMeta, make_thumbnail, read_exif
from oculi.tasks.index.pipeline import BATCH_SIZE, IndexPipeline
from oculi.tasks.index.report import IndexProgress, IndexReport, ProgressFn, StopFn
from oculi.tasks.index.stages import (
    FLUSH_ITEMS,
    FLUSH_SECONDS,
    ImagePreparer,
    KnownItems,
    PreparedImage,
    PrepareFailure,
    StoreWriter,
    build_items,
    file_record,
    perceive_batch,
    read_source,
)
from oculi.tasks.index.walk import INDEX_SUFFIXES, FoundFile, WalkResult, is_under, walk_images

__all__ = [
    "BATCH_SIZE", "FLUSH_ITEMS", "FLUSH_SECONDS", "INDEX_SUFFIXES", "LABEL_DOC", "LABEL_KEEP", "MAX_DOC_TEXT",
    "MAX_EMBED_TEXT", "THUMBNAIL_QUALITY", "THUMBNAIL_SIZE", "Document", "ExifMeta", "FoundFile", "ImagePreparer",
    "IndexPipeline", "IndexProgress", "IndexReport", "KnownItems", "PrepareFailure", "PreparedImage", "ProgressFn",
    "StopFn", "StoreWriter", "WalkResult", "build_items", "file_record", "finish_removals", "index_paths",
    "ingest_images", "is_under", "make_thumbnail", "observation_document", "perceive_batch", "read_exif",
    "read_source", "refresh_documents", "walk_images",
]
