"""Index: walk folders, perceive each new or changed image once, and store what was found.

``index_paths`` is incremental and resumable:

1. **Walk** the given paths recursively (following symlinks, each directory once, so a symlink
   loop is reported and skipped; hidden entries and the store's own directory are skipped).
   Unreadable folders and broken links are listed as problems; they never stop the walk.
2. **Plan**: a file whose path, size and modification time match its stored file record (and
   whose item exists) is unchanged and is not even read. Every other file is read and hashed;
   if an item with that content hash exists (a copy, a rename, a touched file) only its file
   record is written — perception does not run again.
3. **Perceive** the rest in batches (``Engine.observe_many``), while a thread pool reads, hashes,
   decodes, reads EXIF and makes thumbnails for the next batches; embed each item's document
   with the sentence encoder; write items and then file records every ``FLUSH_ITEMS`` items.
4. **Finish**: with ``prune``, forget files that are gone; delete items no file points to any
   more (the old content of a changed file); compact and update/build the indexes.

A run killed at any moment leaves the store at its last committed write (see
``oculi.store.lance``); the next run skips what was written and completes the rest. A bad file
is recorded in the report and the batch goes on.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import stat as stat_mod
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
from PIL import Image

from oculi.core.errors import InputError, ModelAssetError, OculiError
from oculi.core.types import SCHEMA_VERSION, Observation
from oculi.imageio import IMAGE_SUFFIXES, LoadedImage, load_image_bytes
from oculi.language.describe import describe
from oculi.language.vocab import gloss, imagenet_index, imagenet_lemmas, imagenet_to_coco, number_word, plural
from oculi.perception.worker import DRAFT_LONG_SIDE
from oculi.store.base import DEFAULT_COLLECTION, FileRecord, ItemRecord, item_id

log = logging.getLogger(__name__)

#: Images perceived per model call.
BATCH_SIZE = 8
#: Items buffered before one write to the store (a killed run redoes at most this many).
FLUSH_ITEMS = 64
#: ... or after this many seconds, whichever comes first.
FLUSH_SECONDS = 20.0
THUMBNAIL_SIZE = 256
THUMBNAIL_QUALITY = 80
LABEL_KEEP = 0.05  # classifier labels kept in the ``labels`` column (the top one always)
LABEL_DOC = 0.10  # classifier labels written into the searchable document (the top one always)
MAX_DOC_TEXT = 2000  # OCR characters kept in the document
MAX_EMBED_TEXT = 300  # OCR characters in the embedded summary

INDEX_SUFFIXES = IMAGE_SUFFIXES  # HEIC/HEIF included: imageio registers pillow-heif


# --- the searchable document of an observation ----------------------------------------------

@dataclass(frozen=True)
class Document:
    """What is stored for search about one observation."""

    caption: str
    doc: str  # full-text document: caption, objects, labels with synonyms, colours, OCR text
    summary: str  # the shorter text that is embedded with the sentence encoder
    labels: tuple[str, ...]
    objects: tuple[str, ...]
    object_terms: tuple[str, ...]
    colours: tuple[str, ...]
    text: str
    track_ids: tuple[int, ...]


def label_words(name: str) -> list[str]:
    """An ImageNet label's plain gloss, all its lemmas and the COCO class it is a kind of."""
    idx = imagenet_index().get(name)
    lemmas = list(imagenet_lemmas()[idx]) if idx is not None else [name]
    coco = imagenet_to_coco(name)
    words = [gloss(name), *lemmas] + ([coco] if coco else [])
    return list(dict.fromkeys(w for w in words if w))


def observation_document(obs: Observation, caption: str | None = None) -> Document:
    """Build the stored caption, keyword document and embedded summary from an observation.

    Example:
        >>> from oculi.core.types import ImageInfo, Label
        >>> d = observation_document(Observation(ImageInfo(64, 64), labels=(Label("espresso", 0.8),)))
        >>> "coffee" in d.doc and "espresso" in d.summary
        True
    """
    cap = caption if caption is not None else describe(obs)
    labels = tuple(lab.name for i, lab in enumerate(obs.labels) if i == 0 or lab.score >= LABEL_KEEP)
    label_phrases = [", ".join(label_words(lab.name)) for i, lab in enumerate(obs.labels) if i == 0 or lab.score >= LABEL_DOC]
    counts = obs.counts()
    objects = tuple(counts)
    terms: list[str] = []
    phrases: list[str] = []
    for lab, n in counts.items():
        terms.append(lab)
        colours = sorted({o.colour for o in obs.objects_of(lab) if o.colour})
        for c in colours:
            terms.append(f"{c} {lab}")
        col = f" ({', '.join(colours)})" if colours and lab not in ("person", "face") else ""
        phrases.append(f"{number_word(n)} {plural(lab, n)}{col}")
    colours_img = tuple(c.name for c in obs.colours)
    text = obs.full_text
    n_words = len(text.split())
    text_kind = ("A document or page with printed text." if len(obs.text) >= 3 or n_words >= 12
                 else "Contains text." if text else "")
    track_ids = tuple(sorted({o.track_id for o in obs.objects if o.track_id is not None}))
    parts = [cap]
    if phrases:
        parts.append("Objects: " + ", ".join(phrases) + ".")
    if label_phrases:
        parts.append("Labels: " + "; ".join(label_phrases) + ".")
    if colours_img:
        parts.append("Colours: " + ", ".join(colours_img) + ".")
    if text:
        parts.append(text_kind + " Text: " + text[:MAX_DOC_TEXT])
    summary_parts = [cap]
    if label_phrases:
        summary_parts.append("; ".join(label_phrases[:3]) + ".")
    if colours_img:
        summary_parts.append("Colours: " + ", ".join(colours_img) + ".")
    if text:
        summary_parts.append(text_kind)
        if text[:MAX_EMBED_TEXT] not in cap:
            summary_parts.append("Text: " + text[:MAX_EMBED_TEXT])
    return Document(
        caption=cap,
        doc="\n".join(parts),
        summary=" ".join(summary_parts),
        labels=labels,
        objects=objects,
        object_terms=tuple(dict.fromkeys(terms)),
        colours=colours_img,
        text=text,
        track_ids=track_ids,
    )


# --- metadata ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class ExifMeta:
    taken_at: float | None = None
    camera: str | None = None
    gps_lat: float | None = None
    gps_lon: float | None = None


def _exif_time(value: Any, offset: Any) -> float | None:
    if not isinstance(value, str):
        return None
    s = value.strip().replace("\x00", "")
    for fmt in ("%Y:%m:%d %H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y:%m:%d %H:%M", "%Y:%m:%d"):
        try:
            dt = datetime.strptime(s[: len(datetime(2000, 1, 1).strftime(fmt))], fmt)
            break
        except ValueError:
            continue
    else:
        return None
    tz = timezone.utc
    if isinstance(offset, str) and len(offset.strip()) >= 6 and offset.strip()[0] in "+-":
        o = offset.strip()
        try:
            delta = timedelta(hours=int(o[1:3]), minutes=int(o[4:6]))
            tz = timezone(delta if o[0] == "+" else -delta)
        except ValueError:
            pass
    try:
        return dt.replace(tzinfo=tz).timestamp()
    except (OverflowError, ValueError, OSError):
        return None


def _gps_coord(values: Any, ref: Any) -> float | None:
    try:
        d, m, s = (float(v) for v in values)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    v = d + m / 60.0 + s / 3600.0
    if isinstance(ref, bytes):
        ref = ref.decode(errors="ignore")
    if isinstance(ref, str) and ref.strip().upper() in ("S", "W"):
        v = -v
    return round(v, 7) if np.isfinite(v) else None


def read_exif(data: bytes) -> ExifMeta:
    """Capture time (``DateTimeOriginal``, else ``DateTime``), camera and GPS from EXIF.

    Naive EXIF times (no ``OffsetTimeOriginal``) are read as UTC, so ``--after 2021-06-01``
    compares wall-clock dates as written by the camera.
    """
    try:
        with Image.open(io.BytesIO(data)) as img:
            exif = img.getexif()
            if not exif:
                return ExifMeta()
            sub = exif.get_ifd(0x8769)
            taken = _exif_time(sub.get(0x9003) or sub.get(0x9004) or exif.get(0x0132), sub.get(0x9011) or sub.get(0x9010))
            make = str(exif.get(0x010F) or "").strip().strip("\x00")
            model = str(exif.get(0x0110) or "").strip().strip("\x00")
            camera = model if make and model.lower().startswith(make.lower()) else " ".join(x for x in (make, model) if x)
            gps = exif.get_ifd(0x8825)
            lat = _gps_coord(gps.get(2), gps.get(1)) if gps else None
            lon = _gps_coord(gps.get(4), gps.get(3)) if gps else None
            if lat is not None and not -90 <= lat <= 90:
                lat = None
            if lon is not None and not -180 <= lon <= 180:
                lon = None
            return ExifMeta(taken, camera or None, lat, lon)
    except Exception:  # noqa: BLE001 - EXIF is best effort; a bad EXIF block never fails a file
        return ExifMeta()


def make_thumbnail(img: Image.Image, size: int = THUMBNAIL_SIZE) -> bytes:
    """A JPEG thumbnail no larger than ``size`` on its longer side."""
    t = img.copy()
    t.thumbnail((size, size), Image.Resampling.BILINEAR, reducing_gap=2.0)
    buf = io.BytesIO()
    t.convert("RGB").save(buf, format="JPEG", quality=THUMBNAIL_QUALITY, optimize=True)
    return buf.getvalue()


# --- walking ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class FoundFile:
    path: str
    size: int
    mtime_ns: int
    name: str = ""
    data: bytes | None = None  # in-memory source (uploads)


@dataclass
class WalkResult:
    files: list[FoundFile] = field(default_factory=list)
    problems: list[dict[str, str]] = field(default_factory=list)
    unreadable_dirs: list[str] = field(default_factory=list)


def walk_images(
    roots: Sequence[str | Path],
    *,
    suffixes: Iterable[str] = INDEX_SUFFIXES,
    exclude: Sequence[str | Path] = (),
    on_found: Callable[[int], None] | None = None,
) -> WalkResult:
    """Image files under ``roots`` (recursively; each directory once).

    A root that is a file is taken whatever its suffix. Hidden files and folders (``.name``)
    and the ``exclude`` directories are skipped.

    Raises:
        InputError: a root does not exist or cannot be read at all.
    """
    sfx = frozenset(s.lower() for s in suffixes)
    res = WalkResult()
    seen_dirs: set[tuple[int, int]] = set()
    seen_files: set[str] = set()
    for ex in exclude:
        try:
            st = os.stat(ex)
            seen_dirs.add((st.st_dev, st.st_ino))
        except OSError:
            pass

    def add_file(path: str, st: os.stat_result) -> None:
        if path in seen_files:
            return
        seen_files.add(path)
        res.files.append(FoundFile(path, st.st_size, st.st_mtime_ns, os.path.basename(path)))
        if on_found and len(res.files) % 200 == 0:
            on_found(len(res.files))

    for root in roots:
        p = os.path.abspath(os.fspath(root))
        try:
            st = os.stat(p)
        except FileNotFoundError:
            raise InputError(f"{root}: no such file or directory") from None
        except PermissionError:
            raise InputError(f"{root}: permission denied") from None
        except OSError as e:
            raise InputError(f"{root}: cannot be read ({e.strerror or e})") from None
        if stat_mod.S_ISREG(st.st_mode):
            add_file(p, st)
            continue
        if not stat_mod.S_ISDIR(st.st_mode):
            raise InputError(f"{root}: not a file or directory")
        stack = [p]
        while stack:
            d = stack.pop()
            try:
                dst = os.stat(d)
            except OSError:
                continue  # vanished
            key = (dst.st_dev, dst.st_ino)
            if key in seen_dirs:
                if os.path.islink(d):
                    res.problems.append({"path": d, "problem": "symlink to a folder already walked (loop?); skipped"})
                continue
            seen_dirs.add(key)
            try:
                with os.scandir(d) as it:
                    entries = sorted(it, key=lambda e: e.name)
            except PermissionError:
                res.unreadable_dirs.append(d)
                res.problems.append({"path": d, "problem": "folder cannot be read (permission denied); skipped"})
                continue
            except FileNotFoundError:
                continue
            except OSError as e:
                res.unreadable_dirs.append(d)
                res.problems.append({"path": d, "problem": f"folder cannot be read ({e.strerror or e}); skipped"})
                continue
            subdirs = []
            for e in entries:
                if e.name.startswith("."):
                    continue
                try:
                    if e.is_dir(follow_symlinks=True):
                        subdirs.append(e.path)
                        continue
                    if os.path.splitext(e.name)[1].lower() not in sfx:
                        continue
                    if e.is_file(follow_symlinks=True):
                        add_file(e.path, e.stat(follow_symlinks=True))
                    elif e.is_symlink():
                        res.problems.append({"path": e.path, "problem": "broken symlink; skipped"})
                except FileNotFoundError:
                    continue  # vanished while walking
                except OSError as err:
                    res.problems.append({"path": e.path, "problem": f"cannot be read ({err.strerror or err}); skipped"})
            stack.extend(reversed(subdirs))
    return res


# --- report and progress -----------------------------------------------------------------------

@dataclass
class IndexProgress:
    """Passed to the ``progress`` callback: ``phase`` is ``scanning``, ``indexing`` or ``finishing``."""

    phase: str
    done: int = 0
    total: int = 0
    failed: int = 0
    current: str = ""
    elapsed: float = 0.0

    @property
    def rate(self) -> float:
        return self.done / self.elapsed if self.elapsed > 0 else 0.0


@dataclass
class IndexReport:
    """What an index run did.

    Attributes:
        found: Image files seen by the walk (or items given to ``ingest_images``).
        added: New items perceived and stored.
        relinked: Files recorded against an item already stored (copies, renames, touched files).
        unchanged: Files skipped because size and modification time matched.
        changed: Files whose content changed since the last run (counted in ``added``/``relinked`` too).
        removed: File records forgotten because the file is gone (``prune``).
        missing: Files gone since the last run but kept because ``prune`` was off.
        items_removed: Items deleted because no file holds them any more.
        failed: ``[{"path", "error"}]`` files that could not be indexed.
        problems: ``[{"path", "problem"}]`` folders or links skipped by the walk.
        interrupted: The run was stopped before it finished (rerun to complete it).
        ids: ``{path: item id}`` of every file indexed in this run (new or relinked).
    """

    collection: str
    found: int = 0
    added: int = 0
    relinked: int = 0
    unchanged: int = 0
    changed: int = 0
    removed: int = 0
    missing: int = 0
    items_removed: int = 0
    failed: list[dict[str, str]] = field(default_factory=list)
    problems: list[dict[str, str]] = field(default_factory=list)
    interrupted: bool = False
    elapsed_s: float = 0.0
    perceive_s: float = 0.0
    items_total: int = 0
    ids: dict[str, str] = field(default_factory=dict)

    @property
    def images_per_s(self) -> float:
        return self.added / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "collection": self.collection,
            "found": self.found,
            "added": self.added,
            "relinked": self.relinked,
            "unchanged": self.unchanged,
            "changed": self.changed,
            "removed": self.removed,
            "missing": self.missing,
            "items_removed": self.items_removed,
            "items_total": self.items_total,
            "failed": self.failed,
            "problems": self.problems,
            "interrupted": self.interrupted,
            "elapsed_s": round(self.elapsed_s, 3),
            "images_per_s": round(self.images_per_s, 2),
            "ids": self.ids,
        }


ProgressFn = Callable[[IndexProgress], None]
StopFn = Callable[[], bool]


# --- the pipeline -------------------------------------------------------------------------------

@dataclass
class _Prepared:
    src: FoundFile
    sha: str
    iid: str
    size: int
    mtime_ns: int
    loaded: LoadedImage | None = None
    exif: ExifMeta = field(default_factory=ExifMeta)
    thumb: bytes = b""


@dataclass
class _Failed:
    src: FoundFile
    error: str


def _read(src: FoundFile, max_bytes: int) -> tuple[bytes, int, int]:
    if src.data is not None:
        return src.data, len(src.data), src.mtime_ns
    try:
        with open(src.path, "rb") as f:
            st = os.fstat(f.fileno())
            if st.st_size > max_bytes:
                raise InputError(f"{src.path}: {st.st_size:,} bytes is over the limit of {max_bytes:,} (OCULI_MAX_IMAGE_BYTES)")
            data = f.read(max_bytes + 1)
    except FileNotFoundError:
        raise InputError(f"{src.path}: file vanished during indexing") from None
    except PermissionError:
        raise InputError(f"{src.path}: permission denied") from None
    except IsADirectoryError:
        raise InputError(f"{src.path}: is a directory") from None
    except OSError as e:
        raise InputError(f"{src.path}: cannot be read ({e.strerror or e})") from None
    return data, st.st_size, st.st_mtime_ns


class _Pipeline:
    """One run: prepare (threads) → perceive (engine) → write (store)."""

    def __init__(self, engine: Any, coll: Any, report: IndexReport, *, ocr: bool, batch_size: int,
                 workers: int | None, progress: ProgressFn | None, should_stop: StopFn | None,
                 blob_dir: Path | None = None) -> None:
        self.engine = engine
        self.coll = coll
        self.report = report
        self.ocr = ocr
        self.batch_size = max(1, batch_size)
        self.workers = workers or max(1, min(4, os.cpu_count() or 1))
        self.progress = progress
        self.should_stop = should_stop or (lambda: False)
        self.blob_dir = blob_dir
        self.settings = engine.settings
        self.known: set[str] = set()
        self.known_lock = threading.Lock()
        self.pending_items: list[ItemRecord] = []
        self.pending_files: list[FileRecord] = []
        self.last_flush = time.monotonic()
        self.t0 = time.monotonic()
        self.done = 0
        self.total = 0
        self.models: dict[str, str] = {}

    # worker threads
    def prepare(self, src: FoundFile) -> _Prepared | _Failed:
        try:
            data, size, mtime_ns = _read(src, self.settings.max_image_bytes)
            sha = hashlib.sha256(data).hexdigest()
            iid = item_id(sha)
            with self.known_lock:
                known = iid in self.known
            if known:
                prep = _Prepared(src, sha, iid, size, mtime_ns)
                if src.data is not None and self.blob_dir is not None:
                    prep = self._store_blob(prep, data, _sniff_format(data))
                return prep
            name = src.path if src.data is None else (src.name or "upload")
            loaded = load_image_bytes(
                data, name=name, path=src.path, max_bytes=self.settings.max_image_bytes,
                max_pixels=self.settings.max_image_pixels, draft_long_side=DRAFT_LONG_SIDE,
            )
            prep = _Prepared(src, sha, iid, size, mtime_ns, loaded, read_exif(data), make_thumbnail(loaded.image))
            if src.data is not None and self.blob_dir is not None:
                prep = self._store_blob(prep, data, loaded.info.format)
            return prep
        except InputError as e:
            return _Failed(src, str(e))
        except Exception as e:  # noqa: BLE001 - one bad file never aborts the batch
            log.debug("preparing %s failed", src.path, exc_info=True)
            return _Failed(src, f"{src.path}: {type(e).__name__}: {e}")

    def _store_blob(self, prep: _Prepared, data: bytes, fmt: str | None) -> _Prepared:
        """Keep an uploaded image's bytes under ``blobs/`` (atomically) and index it from there."""
        assert self.blob_dir is not None
        fmt = (fmt or "bin").lower()
        ext = {"jpeg": ".jpg", "mpo": ".jpg", "tiff": ".tif"}.get(fmt, f".{fmt}")
        dest = self.blob_dir / prep.sha[:2] / f"{prep.sha}{ext}"
        if not dest.exists():
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_name(f".{dest.name}.{os.getpid()}.{threading.get_ident()}.tmp")
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, dest)
        st = dest.stat()
        src = replace(prep.src, path=str(dest), size=st.st_size, mtime_ns=st.st_mtime_ns)
        loaded = prep.loaded
        if loaded is not None:
            loaded = LoadedImage(loaded.image, replace(loaded.info, path=str(dest)))
        return replace(prep, src=src, size=st.st_size, mtime_ns=st.st_mtime_ns, loaded=loaded)

    # main thread
    def _tick(self, current: str = "") -> None:
        if self.progress:
            self.progress(IndexProgress("indexing", self.done, self.total, len(self.report.failed), current,
                                        time.monotonic() - self.t0))

    def _file_record(self, prep: _Prepared) -> FileRecord:
        self.report.ids[prep.src.name if prep.src.data is not None else prep.src.path] = prep.iid
        return FileRecord(prep.src.path, prep.iid, prep.size, prep.mtime_ns, time.time())

    def _perceive(self, batch: list[_Prepared]) -> list[tuple[_Prepared, Observation | str]]:
        t0 = time.monotonic()
        try:
            out = self._observe(batch)
        except ModelAssetError:
            raise
        except Exception:  # noqa: BLE001 - isolate the image that broke the batch
            log.debug("batch failed; retrying one by one", exc_info=True)
            out = []
            for p in batch:
                try:
                    out.extend(self._observe([p]))
                except ModelAssetError:
                    raise
                except Exception as e:  # noqa: BLE001
                    out.append((p, f"{p.src.path}: perception failed ({type(e).__name__}: {e})"))
        self.report.perceive_s += time.monotonic() - t0
        return out

    def _observe(self, batch: list[_Prepared]) -> list[tuple[_Prepared, Observation | str]]:
        by_src = {id(p.loaded): p for p in batch}
        out: list[tuple[_Prepared, Observation | str]] = []
        for src, res in self.engine.observe_many([p.loaded for p in batch], batch_size=len(batch), ocr=self.ocr):
            p = by_src[id(src)]
            out.append((p, str(res) if isinstance(res, OculiError) else res))
        return out

    def process(self, batch: list[_Prepared]) -> None:
        results = self._perceive(batch)
        good: list[tuple[_Prepared, Observation]] = []
        for p, res in results:
            if isinstance(res, str):
                self.report.failed.append({"path": p.src.path, "error": res})
            else:
                good.append((p, res))
        if good:
            obs_list = [replace(o, image=replace(o.image, path=p.src.path)) for p, o in good]
            describe_fn = getattr(self.engine, "describe_observation", describe)
            docs = [observation_document(o, describe_fn(o)) for o in obs_list]
            text_vecs = np.asarray(self.engine.embed_texts([d.summary for d in docs]), dtype=np.float32)
            missing = [i for i, o in enumerate(obs_list) if o.embedding is None]
            img_vecs: dict[int, np.ndarray] = {}
            if missing:
                mats = self.engine.embed_images([good[i][0].loaded for i in missing])
                img_vecs = {i: mats[j] for j, i in enumerate(missing)}
            now = time.time()
            for i, ((p, _), obs, doc) in enumerate(zip(good, obs_list, docs)):
                assert p.loaded is not None
                if not self.models and obs.models:
                    self.models = dict(obs.models)
                info = obs.image
                self.pending_items.append(ItemRecord(
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
                self.pending_files.append(self._file_record(p))
                self.report.added += 1
        self.done += len(batch)
        self._tick(batch[-1].src.path)
        self.maybe_flush()

    def relink(self, p: _Prepared) -> None:
        self.pending_files.append(self._file_record(p))
        self.report.relinked += 1
        self.done += 1
        if self.done % 50 == 0:
            self._tick(p.src.path)

    def maybe_flush(self, force: bool = False) -> None:
        due = (len(self.pending_items) >= FLUSH_ITEMS or len(self.pending_files) >= 20 * FLUSH_ITEMS
               or time.monotonic() - self.last_flush >= FLUSH_SECONDS)
        if force or due:
            self.flush()

    def flush(self) -> None:
        # items first, then the file records that point at them: a run killed in between leaves
        # items without files, which the next run relinks by content hash without perceiving
        if self.pending_items:
            self.coll.add_items(self.pending_items)
            if self.models:
                self.coll.set_models(self.models)
        if self.pending_files:
            self.coll.upsert_files(self.pending_files)
        self.pending_items = []
        self.pending_files = []
        self.last_flush = time.monotonic()

    def run(self, todo: list[FoundFile]) -> None:
        self.total = len(todo)
        self._tick()
        window = self.batch_size * 3
        batch: list[_Prepared] = []
        batch_ids: set[str] = set()
        with ThreadPoolExecutor(self.workers, thread_name_prefix="oculi-index") as ex:
            queue: deque[Future] = deque()
            it = iter(todo)
            try:
                for src in it:
                    queue.append(ex.submit(self.prepare, src))
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
            finally:
                for fut in queue:
                    fut.cancel()
                self.flush()

    def _consume(self, res: _Prepared | _Failed, batch: list[_Prepared], batch_ids: set[str]) -> bool:
        """Route one prepared file; returns True when ``batch`` was processed (caller resets it)."""
        if isinstance(res, _Failed):
            self.report.failed.append({"path": res.src.path, "error": res.error})
            self.done += 1
            self._tick(res.src.path)
            return False
        with self.known_lock:
            known = res.iid in self.known or res.iid in batch_ids
        if res.loaded is None or known:
            self.relink(res)
            return False
        batch.append(res)
        batch_ids.add(res.iid)
        if len(batch) >= self.batch_size:
            self.process(batch)
            with self.known_lock:
                self.known.update(batch_ids)
            return True
        return False


def _sniff_format(data: bytes) -> str | None:
    try:
        with Image.open(io.BytesIO(data)) as img:
            return (img.format or "").lower() or None
    except Exception:  # noqa: BLE001
        return None


def _under(path: str, roots: Sequence[str]) -> bool:
    for r in roots:
        if path == r or path.startswith(r.rstrip(os.sep) + os.sep):
            return True
    return False


def index_paths(
    engine: Any,
    store: Any,
    paths: Sequence[str | Path],
    collection: str = DEFAULT_COLLECTION,
    *,
    prune: bool = False,
    progress: ProgressFn | None = None,
    should_stop: StopFn | None = None,
    ocr: bool | None = None,
    batch_size: int = BATCH_SIZE,
    workers: int | None = None,
) -> IndexReport:
    """Index image files and folders into a collection (created if needed); incremental.

    Args:
        engine: An ``oculi.Engine`` (perception, sentence encoder).
        store: A ``Store`` (``oculi.store.open_store(settings)``).
        paths: Files and folders; folders are walked recursively.
        collection: Collection name.
        prune: Forget indexed files under ``paths`` that no longer exist.
        progress: Called with an ``IndexProgress`` as work advances.
        should_stop: Polled between files; when it returns True the run writes what it has and
            returns with ``report.interrupted`` set. A rerun completes it.
        ocr: Run OCR (default: ``engine.settings.ocr``).
        batch_size: Images per perception call.
        workers: Threads reading/decoding ahead of the models (default: cores, at most 4).

    Raises:
        InputError: a path does not exist, or the collection is being written by another process.
        NotFoundError: never (the collection is created).
    """
    if not paths:
        raise InputError("give at least one file or folder to index")
    t0 = time.monotonic()
    coll = store.create_collection(collection, exist_ok=True)
    report = IndexReport(collection=coll.name)
    if progress:
        progress(IndexProgress("scanning"))
    roots = [os.path.abspath(os.fspath(p)) for p in paths]
    walk = walk_images(paths, exclude=[store.root] if hasattr(store, "root") else [],
                       on_found=(lambda n: progress(IndexProgress("scanning", n, 0))) if progress else None)
    report.found = len(walk.files)
    report.problems = walk.problems
    with coll.writer():
        existing = coll.file_states()
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
        gone = [p for p in existing if p not in seen_paths and _under(p, roots)
                and not _under(p, walk.unreadable_dirs)]
        pipe = _Pipeline(engine, coll, report, ocr=engine.settings.ocr if ocr is None else ocr,
                         batch_size=batch_size, workers=workers, progress=progress, should_stop=should_stop)
        pipe.known = set(ids)
        try:
            if todo:
                pipe.run(todo)
        finally:
            report.changed = sum(1 for p, old in old_ids.items() if report.ids.get(p, old) != old)
            if not report.interrupted:
                if progress:
                    progress(IndexProgress("finishing", pipe.done, pipe.total, len(report.failed)))
                if prune and gone:
                    report.removed = coll.delete_files(gone)
                else:
                    report.missing = len(gone)
                if report.changed or report.removed:
                    _finish_removals(coll, report)
                if report.added or report.relinked or report.removed or report.items_removed:
                    coll.optimize()
    report.items_total = coll.count()
    report.elapsed_s = time.monotonic() - t0
    return report


def _finish_removals(coll: Any, report: IndexReport) -> None:
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
    engine: Any,
    store: Any,
    collection: str,
    items: Sequence[tuple[str, bytes]],
    *,
    progress: ProgressFn | None = None,
    should_stop: StopFn | None = None,
    ocr: bool | None = None,
    batch_size: int = BATCH_SIZE,
) -> IndexReport:
    """Index images given as ``(name, bytes)`` (uploads) into a collection (created if needed).

    Each decodable image's bytes are kept under the collection's ``blobs/`` folder (named by
    content hash) and indexed like a file there; ``name`` is what results show. The same bytes
    uploaded twice are one item. Bad images are listed in ``report.failed`` under their name.
    """
    t0 = time.monotonic()
    coll = store.create_collection(collection, exist_ok=True)
    report = IndexReport(collection=coll.name, found=len(items))
    blob_dir = Path(coll.path) / "blobs"
    srcs = []
    for i, (name, data) in enumerate(items):
        nm = os.path.basename(str(name or f"upload-{i}"))[:255] or f"upload-{i}"
        srcs.append(FoundFile(path=nm, size=len(data or b""), mtime_ns=time.time_ns(), name=nm, data=bytes(data or b"")))
    with coll.writer(wait=True):
        pipe = _Pipeline(engine, coll, report, ocr=engine.settings.ocr if ocr is None else ocr,
                         batch_size=batch_size, workers=None, progress=progress, should_stop=should_stop,
                         blob_dir=blob_dir)
        pipe.known = coll.item_ids()
        if srcs:
            pipe.run(srcs)
        if report.added or report.relinked:
            coll.optimize()
    report.items_total = coll.count()
    report.elapsed_s = time.monotonic() - t0
    return report


def refresh_documents(engine: Any, store: Any, collection: str, *, progress: ProgressFn | None = None,
                      batch_size: int = 256) -> int:
    """Rewrite every item's caption, keyword document and text vector from its stored
    observation — after a change of the document builder or of the sentence encoder — without
    reading an image or running perception. Returns how many items were rewritten."""
    from oculi.core.types import Observation as Obs
    from oculi.store.base import item_from_row

    coll = store.open_collection(collection)
    total = coll.count()
    done = 0
    t0 = time.monotonic()
    describe_fn = getattr(engine, "describe_observation", describe)
    with coll.writer():
        ids = sorted(coll.item_ids())
        for start in range(0, len(ids), batch_size):
            rows = coll.get_items(ids[start : start + batch_size], columns=list(_ALL_ITEM_COLUMNS))
            items = [item_from_row(r) for r in rows]
            docs = [observation_document(o, describe_fn(o)) for o in (Obs.from_dict(it.observation) for it in items)]
            vecs = np.asarray(engine.embed_texts([d.summary for d in docs]), dtype=np.float32)
            coll.update_items([
                replace(it, caption=d.caption, doc=d.doc, labels=d.labels, objects=d.objects,
                        object_terms=d.object_terms, colours=d.colours, text=d.text, track_ids=d.track_ids,
                        text_vec=vecs[i])
                for i, (it, d) in enumerate(zip(items, docs))
            ])
            done += len(items)
            if progress:
                progress(IndexProgress("refreshing", done, total, 0, "", time.monotonic() - t0))
        coll.optimize()
    return done


_ALL_ITEM_COLUMNS = tuple(ItemRecord.__dataclass_fields__)
