"""The stages every ingest source shares: prepare → perceive a batch → build items → write.

A source of images (a folder walk, uploaded bytes; a video's frames or a distributed worker
later) turns each image into a ``PreparedImage`` and pushes batches through the same stages:

1. ``ImagePreparer`` (thread-safe; runs in worker threads): read, hash, decode with the image
   limits, read EXIF, make the thumbnail — or a ``PrepareFailure`` naming the file. An image
   whose content is already stored is not decoded (``loaded`` is None): only its file record
   is written.
2. ``perceive_batch``: one model call for the batch; if it fails, each image alone, so one bad
   image fails alone and a missing model asset stops the run.
3. ``build_items``: each observation's search document, its text vector and (when perception
   gave none) its visual vector, as ``ItemRecord``s ready to store.
4. ``StoreWriter``: buffers items and file records and writes items first, then the file
   records that point at them, every ``FLUSH_ITEMS`` items or ``FLUSH_SECONDS``.

Each stage takes plain inputs (a ``Vision``, a ``Collection``, prepared images), never a
folder walk, so another source reuses them as they are.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import os
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from oculi.core.errors import InputError, ModelAssetError, OculiError, StoreFullError, StoreUnavailableError
from oculi.core.types import Observation
from oculi.imageio import ImageLimits, LoadedImage, load_image_bytes, read_regular_file, sniff_format
from oculi.store.base import Collection, FileRecord, ItemRecord, item_id, vector_models_of
from oculi.store.blobs import BlobStore, content_key
from oculi.tasks.index.document import observation_document
from oculi.tasks.index.metadata import ExifMeta, make_thumbnail, read_exif
from oculi.tasks.index.spaces import current_spaces, record_spaces
from oculi.tasks.index.walk import FoundFile
from oculi.tasks.vision import Vision

log = logging.getLogger(__name__)

#: Items buffered before one write to the store (a killed run redoes at most this many).
FLUSH_ITEMS = 64
#: ... or after this many seconds, whichever comes first.
FLUSH_SECONDS = 20.0


@dataclass
class PreparedImage:
    """One image ready for perception.

    Attributes:
        src: Where it came from (a file, or in-memory bytes with a name).
        sha: SHA-256 of its bytes; ``iid`` the item id derived from it.
        size, mtime_ns: What the file record stores to recognise an unchanged file.
        loaded: The decoded image; None when its content is already stored (relink only).
        exif, thumb: Metadata and the JPEG thumbnail stored with the item.
    """

    src: FoundFile
    sha: str
    iid: str
    size: int
    mtime_ns: int
    loaded: LoadedImage | None = None
    exif: ExifMeta = field(default_factory=ExifMeta)
    thumb: bytes = b""


@dataclass
class PrepareFailure:
    """An image that could not be prepared, with one clear sentence why."""

    src: FoundFile
    error: str


class KnownItems:
    """Item ids already stored or stored during this run (shared by the preparer threads)."""

    def __init__(self, ids: Iterable[str] = ()) -> None:
        self._ids = set(ids)
        self._lock = threading.Lock()

    def __contains__(self, iid: object) -> bool:
        with self._lock:
            return iid in self._ids

    def update(self, ids: Iterable[str]) -> None:
        with self._lock:
            self._ids.update(ids)

    def snapshot(self) -> list[str]:
        """The ids known now (what a distributed worker is handed at the start of a run)."""
        with self._lock:
            return list(self._ids)


def read_source(src: FoundFile, max_bytes: int) -> tuple[bytes, int, int]:
    """The bytes of a source, its size and modification time; ``InputError`` saying why not."""
    if src.data is not None:
        return src.data, len(src.data), src.mtime_ns
    data, st = read_regular_file(src.path, max_bytes=max_bytes, missing="file vanished during indexing")
    return data, st.st_size, st.st_mtime_ns


class ImagePreparer:
    """Stage 1: read → hash → decode → EXIF → thumbnail, safe to call from many threads.

    Args:
        limits: Byte and pixel limits for decoding.
        known: Item ids already stored; such an image is hashed but not decoded.
        blobs: Where in-memory sources (uploads) are kept (a ``BlobStore``), named by content
            hash; they are then indexed under the blob's location. None for sources that are
            files already.
    """

    def __init__(self, limits: ImageLimits, known: KnownItems, *, blobs: BlobStore | None = None) -> None:
        self.limits = limits
        self.known = known
        self.blobs = blobs

    def __call__(self, src: FoundFile) -> PreparedImage | PrepareFailure:
        try:
            data, size, mtime_ns = read_source(src, self.limits.max_bytes)
            sha = hashlib.sha256(data).hexdigest()
            iid = item_id(sha)
            if iid in self.known:
                prep = PreparedImage(src, sha, iid, size, mtime_ns)
                if src.data is not None and self.blobs is not None:
                    prep = self._store_blob(prep, data, sniff_format(data))
                return prep
            name = src.path if src.data is None else (src.name or "upload")
            loaded = load_image_bytes(data, name=name, path=src.path, max_bytes=self.limits.max_bytes,
                                      max_pixels=self.limits.max_pixels, draft_long_side=self.limits.draft_long_side)
            prep = PreparedImage(src, sha, iid, size, mtime_ns, loaded, read_exif(data), make_thumbnail(loaded.image))
            if src.data is not None and self.blobs is not None:
                prep = self._store_blob(prep, data, loaded.info.format)
            return prep
        except InputError as e:
            return PrepareFailure(src, str(e))
        except (StoreFullError, StoreUnavailableError):
            raise  # the disk or the blob store, not the file: stop the run
        except Exception as e:  # noqa: BLE001 - one bad file never aborts the batch
            log.debug("preparing %s failed", src.path, exc_info=True)
            return PrepareFailure(src, f"{src.path}: {type(e).__name__}: {e}")

    def _store_blob(self, prep: PreparedImage, data: bytes, fmt: str | None) -> PreparedImage:
        """Keep an uploaded image's bytes in the blob store and index it under their location."""
        assert self.blobs is not None
        fmt = (fmt or "bin").lower()
        ext = {"jpeg": ".jpg", "mpo": ".jpg", "tiff": ".tif"}.get(fmt, f".{fmt}")
        where = self.blobs.put(content_key(prep.sha, ext), data)
        size, mtime_ns = len(data), prep.mtime_ns
        src = replace(prep.src, path=where, size=size, mtime_ns=mtime_ns)
        loaded = prep.loaded
        if loaded is not None:
            loaded = LoadedImage(loaded.image, replace(loaded.info, path=where))
        return replace(prep, src=src, size=size, mtime_ns=mtime_ns, loaded=loaded)


def _observe(vision: Vision, batch: Sequence[PreparedImage], ocr: bool) -> list[tuple[PreparedImage, Observation | str]]:
    by_src = {id(p.loaded): p for p in batch}
    out: list[tuple[PreparedImage, Observation | str]] = []
    for src, res in vision.observe_many([p.loaded for p in batch], batch_size=len(batch), ocr=ocr):
        out.append((by_src[id(src)], str(res) if isinstance(res, OculiError) else res))
    return out


def perceive_batch(vision: Vision, batch: Sequence[PreparedImage], *, ocr: bool) -> list[tuple[PreparedImage, Observation | str]]:
    """Stage 2: observe a batch of decoded images; each gets its observation or an error message.

    Raises:
        ModelAssetError: a model asset is missing or corrupt (no image can be perceived).
    """
    try:
        return _observe(vision, batch, ocr)
    except ModelAssetError:
        raise
    except Exception:  # noqa: BLE001 - isolate the image that broke the batch
        log.debug("batch failed; retrying one by one", exc_info=True)
    out: list[tuple[PreparedImage, Observation | str]] = []
    for p in batch:
        try:
            out.extend(_observe(vision, [p], ocr))
        except ModelAssetError:
            raise
        except Exception as e:  # noqa: BLE001
            out.append((p, f"{p.src.path}: perception failed ({type(e).__name__}: {e})"))
    return out


DESCRIBER_KEY = "describer"  # Observation.models key: the id of the model that wrote the stored caption


def describer_id(vision: Vision) -> str | None:
    """The id of the model that writes captions for ``vision``, when it says."""
    fn = getattr(vision, "model_id_for", None)
    return fn("describe") if callable(fn) else None


def describe_with(vision: Vision, obs: Observation, loaded: LoadedImage | None) -> str:
    """The caption of an observation, from the configured describer; the image goes along when
    ``vision`` takes it (a VLM describer looks at the pixels)."""
    fn = vision.describe_observation
    try:
        takes_image = "image" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        takes_image = False
    if takes_image and loaded is not None:
        return fn(obs, image=loaded)  # type: ignore[call-arg]
    return fn(obs)


def build_items(vision: Vision, perceived: Sequence[tuple[PreparedImage, Observation]], *,
                now: float | None = None) -> list[ItemRecord]:
    """Stage 3: the stored records of perceived images: document, text vector, visual vector."""
    if not perceived:
        return []
    describer = describer_id(vision)
    # each item names the models of its vectors too: a copy of the collection's vector spaces that
    # `collections repair` reads back when collection.json is lost (store.base.VECTOR_MODEL_KEYS)
    extra = {**vector_models_of(current_spaces(vision)), **({DESCRIBER_KEY: describer} if describer else {})}
    obs_list = [replace(o, image=replace(o.image, path=p.src.path), models={**o.models, **extra} if extra else o.models)
                for p, o in perceived]
    docs = [observation_document(o, describe_with(vision, o, p.loaded)) for (p, _), o in zip(perceived, obs_list)]
    text_vecs = np.asarray(vision.embed_texts([d.summary for d in docs]), dtype=np.float32)
    usable = getattr(vision, "observation_embeddings_usable", None)
    reuse = usable() if callable(usable) else True  # else the image embedder is another model: embed again
    missing = [i for i, o in enumerate(obs_list) if o.embedding is None or not reuse]
    img_vecs: dict[int, np.ndarray] = {}
    if missing:
        mats = vision.embed_images([perceived[i][0].loaded for i in missing])  # type: ignore[misc]
        img_vecs = {i: mats[j] for j, i in enumerate(missing)}
    now = time.time() if now is None else now
    items = []
    for i, ((p, _), obs, doc) in enumerate(zip(perceived, obs_list, docs)):
        info = obs.image
        items.append(ItemRecord(
            id=p.iid, sha256=p.sha, path=p.src.path, name=p.src.name or os.path.basename(p.src.path),
            width=info.width, height=info.height,
            text_vec=text_vecs[i], image_vec=img_vecs.get(i, obs.embedding),
            kind="frame" if info.frame_index is not None else "image",
            source_id=info.source_id, frame_index=info.frame_index, timestamp=info.timestamp,
            format=info.format, file_size=p.size,
            time=p.exif.taken_at if p.exif.taken_at is not None else p.mtime_ns / 1e9,
            taken_at=p.exif.taken_at, camera=p.exif.camera, gps_lat=p.exif.gps_lat, gps_lon=p.exif.gps_lon,
            caption=doc.caption, doc=doc.doc, labels=doc.labels, objects=doc.objects,
            object_terms=doc.object_terms, colours=doc.colours, text=doc.text, track_ids=doc.track_ids,
            observation=obs.to_dict(), thumbnail=p.thumb, indexed_at=now,
        ))
    return items


def file_record(prep: PreparedImage) -> FileRecord:
    """The record that says a file (path, size, mtime) holds an item."""
    return FileRecord(prep.src.path, prep.iid, prep.size, prep.mtime_ns, time.time())


class StoreWriter:
    """Stage 4: buffered writes to a collection (call inside ``coll.writer()``).

    Items are written before the file records that point at them: a run killed in between
    leaves items without files, which the next run relinks by content hash without perceiving.
    """

    def __init__(self, coll: Collection, *, flush_items: int | None = None, flush_seconds: float | None = None,
                 spaces: Mapping[str, Any] | None = None) -> None:
        self.coll = coll
        self.spaces = spaces  # the vector spaces of the items written (recorded with them)
        self.flush_items = FLUSH_ITEMS if flush_items is None else flush_items
        self.flush_seconds = FLUSH_SECONDS if flush_seconds is None else flush_seconds
        self.items: list[ItemRecord] = []
        self.files: list[FileRecord] = []
        self.models: dict[str, str] = {}
        self.last_flush = time.monotonic()

    def add_items(self, items: Sequence[ItemRecord], models: Mapping[str, str] | None = None) -> None:
        """Queue items; ``models`` (the versions that perceived them) are recorded once."""
        self.items.extend(items)
        if models and not self.models:
            self.models = dict(models)

    def add_files(self, files: Sequence[FileRecord]) -> None:
        self.files.extend(files)

    def maybe_flush(self, force: bool = False) -> None:
        due = (len(self.items) >= self.flush_items or len(self.files) >= 20 * self.flush_items
               or time.monotonic() - self.last_flush >= self.flush_seconds)
        if force or due:
            self.flush()

    def flush(self) -> None:
        if self.items:
            self.coll.add_items(self.items)
            record_spaces(self.coll, self.spaces)
            if self.models:
                self.coll.set_models(self.models)
        if self.files:
            self.coll.upsert_files(self.files)
        self.items = []
        self.files = []
        self.last_flush = time.monotonic()


def first_models(observations: Iterable[Observation]) -> dict[str, Any]:
    """The model versions named by the first observation that names any."""
    return next((dict(o.models) for o in observations if o.models), {})
