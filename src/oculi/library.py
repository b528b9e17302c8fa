"""The library: one typed front door to collections for the CLI, the server and the Python API.

A ``Library`` is built from an engine (what perceives, describes and embeds, with its
settings) and a ``Store``. Everything an interface does with collections goes through it:
list, create, open, drop, inspect; index folders, ingest uploaded bytes, refresh stored
documents; search by text or image, find duplicates, evaluate retrieval; browse items and
thumbnails. The tasks it calls (``oculi.tasks.index``, ``oculi.tasks.search``) take the
engine only through the small ``Vision`` / ``Embedder`` protocols and a ``Collection``, so
nothing below calls back up.

Example:
    >>> from oculi import Engine, Library
    >>> lib = Library(Engine())  # doctest: +SKIP
    >>> lib.index(["~/Pictures"], "photos").added  # doctest: +SKIP
    412
    >>> [r.path for r in lib.search("photos", text="a red car", top_k=3)]  # doctest: +SKIP
    ['/home/me/Pictures/2021/car.jpg', ...]
"""

from __future__ import annotations

import functools
import threading
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, Sequence

from oculi.config import Settings
from oculi.core.errors import ConfigError, InputError
from oculi.imageio import ImageLimits, ImageSource
from oculi.perception.worker import DRAFT_LONG_SIDE
from oculi.store.base import DEFAULT_COLLECTION, Collection, CollectionInfo, Filter, Store
from oculi.store.integrity import CheckReport, RepairReport
from oculi.tasks.evaluate import KS, RetrievalQuery, RetrievalReport, evaluate_retrieval, load_queries
from oculi.tasks.index.spaces import guard_collection
from oculi.tasks.index import BATCH_SIZE, IndexReport, ProgressFn, StopFn, index_paths, ingest_images, refresh_documents
from oculi.tasks.integrity import check_collections, repair_collection
from oculi.tasks.search import (
    DUPLICATE_THRESHOLD,
    DuplicatesReport,
    SearchQuery,
    SearchResults,
    find_duplicates,
    search,
    validate_threshold,
)
from oculi.tasks.vision import Vision

if TYPE_CHECKING:
    from oculi.engine import Engine
    from oculi.tasks.footage.watch import WatchOptions, WatchReport


class LibraryEngine(Vision, Protocol):
    """What a library needs of its engine: the ``Vision`` methods and the settings."""

    settings: Settings


class Library:
    """Collections of indexed images, served by one engine and one store.

    Args:
        engine: An ``oculi.Engine`` (or anything with its ``Vision`` methods and ``settings``).
            Its settings give the image limits and the OCR default.
        store: The collection store; when omitted, ``oculi.store.open_store(settings)``.
        settings: Where the store lives when ``store`` is omitted (default: the engine's).
    """

    def __init__(self, engine: "Engine | LibraryEngine", store: Store | None = None, *,
                 settings: Settings | None = None) -> None:
        self.engine = engine
        if store is None:
            from oculi.store import open_store

            store = open_store(settings or engine.settings)
        self.store = store

    @property
    def settings(self) -> Settings:
        """The engine's settings (image limits, OCR default)."""
        return self.engine.settings

    # --- collections ---------------------------------------------------------------------------
    def collections(self) -> list[CollectionInfo]:
        """Every collection with its counts and dates."""
        return self.store.list_collections()

    def exists(self, name: str) -> bool:
        return self.store.exists(name)

    def create(self, name: str, *, exist_ok: bool = True) -> CollectionInfo:
        """Create a collection (``InputError`` if it exists and ``exist_ok`` is False)."""
        return self.store.create_collection(name, exist_ok=exist_ok).info()

    def open(self, name: str) -> Collection:
        """An existing collection (``NotFoundError`` naming the ones there are)."""
        return self.store.open_collection(name)

    def info(self, name: str) -> CollectionInfo:
        return self.open(name).info()

    def stats(self, name: str) -> dict[str, Any]:
        """Counts, disk use, indexes, time range, frequent objects and labels, models."""
        return self.open(name).stats()

    def drop(self, name: str) -> None:
        """Delete a collection and everything stored in it (not the original image files);
        a damaged collection can be dropped too."""
        self.store.drop_collection(name)

    # --- integrity -----------------------------------------------------------------------------
    def check(self, name: str | None = None, *, on_collection: Any = None) -> CheckReport:
        """Verify one collection or all: checksums of every stored file, every table version,
        every table read to the end, every index. See ``oculi.tasks.integrity``.

        Raises:
            NotFoundError: ``name`` is not a collection.
            InputError: ``name`` is being written (check it when that finishes).
        """
        return check_collections(self.store, name, on_collection=on_collection)

    def repair(self, name: str, *, progress: ProgressFn | None = None,
               should_stop: StopFn | None = None) -> RepairReport:
        """Repair a damaged collection and re-index the source files whose items were lost;
        says what was lost. A healthy collection is left alone (``nothing_to_do``)."""
        return repair_collection(self.store, name, reindex=lambda paths: self.index(
            paths, name, progress=progress, should_stop=should_stop))

    # --- indexing ------------------------------------------------------------------------------
    def index(
        self,
        paths: Sequence[str | Path],
        collection: str = DEFAULT_COLLECTION,
        *,
        prune: bool = False,
        ocr: bool | None = None,
        progress: ProgressFn | None = None,
        should_stop: StopFn | None = None,
        batch_size: int = BATCH_SIZE,
        workers: int | None = None,
        reindex: bool = False,
        engine: str | None = None,
        address: str | None = None,
    ) -> IndexReport:
        """Index files and folders into a collection (created if needed); incremental and
        resumable. See ``oculi.tasks.index.index_paths``; ``ocr`` defaults to ``settings.ocr``.

        ``reindex`` empties the collection first and indexes ``paths`` again with the
        configured models: what changing the embedding model of a collection takes (items
        whose files are not under ``paths``, and uploaded images, are not in it afterwards).

        Args:
            engine: ``"local"`` or ``"ray"`` (default ``settings.engine``). With ``"ray"`` the
                files are read, decoded and perceived by actors on a Ray cluster
                (``oculi.tasks.index.distributed``), ``workers`` of them (default: one per
                cluster CPU), each holding an engine built from this library's settings;
                this process writes the store. ``address`` (default ``settings.ray_address``)
                names the cluster; none starts Ray on this machine.

        Raises:
            InputError: no path, a path that does not exist, or another process is writing.
            ModelConfigError: the collection holds vectors of another embedder (without ``reindex``).
            ConfigError: an unknown engine, Ray not installed, or a cluster that cannot be reached.
        """
        if not paths:
            raise InputError("give at least one file or folder to index")
        kind = engine or self.settings.engine
        if kind not in ("local", "ray"):
            raise ConfigError(f"unknown index engine {kind!r}; the engines are: local, ray")
        ray_kw: dict[str, Any] = {}
        if kind == "ray":
            from oculi.engine import worker_engine
            from oculi.tasks.index.distributed import RayOptions, connect

            options = RayOptions(address=address or self.settings.ray_address, workers=workers)
            connect(options)  # before the walk of a large folder: an unreachable cluster fails now
            ray_kw = {"ray": options, "vision_factory": functools.partial(worker_engine, self.settings)}
            workers = None
        missing = [str(p) for p in paths if not Path(p).expanduser().exists()]
        if reindex and missing:  # nothing is dropped for a typo
            raise InputError(f"{missing[0]}: no such file or directory")
        if reindex and self.store.exists(collection):
            self.store.drop_collection(collection)
        coll = self.store.create_collection(collection, exist_ok=True)
        root = getattr(self.store, "root", None)
        return index_paths(
            self.engine, coll, paths, limits=self._limits(), ocr=self._ocr(ocr), prune=prune,
            exclude=[root] if root is not None else [], progress=progress, should_stop=should_stop,
            batch_size=batch_size, workers=workers, **ray_kw,
        )

    def ingest(
        self,
        collection: str,
        items: Sequence[tuple[str, bytes]],
        *,
        ocr: bool | None = None,
        progress: ProgressFn | None = None,
        should_stop: StopFn | None = None,
        batch_size: int = BATCH_SIZE,
    ) -> IndexReport:
        """Index images given as ``(name, bytes)`` (uploads) into a collection (created if
        needed); their bytes are kept in the collection's blob folder. See
        ``oculi.tasks.index.ingest_images``."""
        coll = self.store.create_collection(collection, exist_ok=True)
        return ingest_images(
            self.engine, coll, items, blobs=self.store.blobs(coll.name), limits=self._limits(),
            ocr=self._ocr(ocr), progress=progress, should_stop=should_stop, batch_size=batch_size,
        )

    def refresh(self, collection: str, *, progress: ProgressFn | None = None, batch_size: int = 256) -> int:
        """Rewrite every stored caption, document and text vector from the stored observations
        (no image is read, no perception runs). Returns how many items were rewritten."""
        return refresh_documents(self.engine, self.open(collection), progress=progress, batch_size=batch_size)

    # --- search --------------------------------------------------------------------------------
    def search(
        self,
        collection: str = DEFAULT_COLLECTION,
        *,
        text: str | None = None,
        image: ImageSource | None = None,
        top_k: int = 10,
        where: str | Sequence[str] | Filter | None = None,
        after: Any = None,
        before: Any = None,
        path_glob: str | None = None,
        adapter: str | None = None,
    ) -> SearchResults:
        """Search a collection by text (hybrid), by image (visual similarity), or both.
        See ``oculi.tasks.search.SearchQuery.build`` for the arguments; ``adapter`` names a
        trained retrieval adapter (``oculi train adapter``) that text queries also go through.

        Raises:
            InputError: no query, an empty query, a bad filter, a query image that is not one.
            NotFoundError: the collection does not exist.
        """
        query = SearchQuery.build(text=text, image=image, top_k=top_k, where=where, after=after,
                                  before=before, path_glob=path_glob)
        coll = self.open(collection)
        guard_collection(coll, self.engine, searching=True)
        return search(self.engine, coll, query, adapter_vec=self._adapter_vec(coll, adapter, query.text))

    def duplicates(self, collection: str = DEFAULT_COLLECTION, *, threshold: float = DUPLICATE_THRESHOLD) -> DuplicatesReport:
        """Groups of near-duplicate images and of identical files."""
        validate_threshold(threshold)
        return find_duplicates(self.open(collection), threshold=threshold)

    def evaluate_retrieval(
        self,
        collection: str,
        queries: Sequence[RetrievalQuery] | str | Path,
        *,
        ks: Sequence[int] = KS,
        adapter: str | None = None,
    ) -> RetrievalReport:
        """Recall@K and MRR of search over labelled queries (a JSONL file or ``RetrievalQuery``s),
        through a trained retrieval adapter when ``adapter`` names one."""
        qs = load_queries(queries) if isinstance(queries, (str, Path)) else list(queries)
        coll = self.open(collection)
        guard_collection(coll, self.engine, searching=True)
        adapt = (lambda text: self._adapter_vec(coll, adapter, text)) if adapter else None
        return evaluate_retrieval(self.engine, coll, qs, ks=ks, adapter=adapt)

    def _adapter_vec(self, coll: Collection, adapter: str | None, text: str | None) -> Any:
        """The text query projected by a trained adapter, after checking the collection's image
        vectors are in the adapter's space (``InputError`` naming the re-index otherwise)."""
        if adapter is None or text is None:
            return None
        from oculi.store.trained import TrainedStore
        from oculi.tasks.train.adapter import Adapter

        ad = Adapter(TrainedStore.for_home(self.settings.home).load(adapter))
        space = collection_image_space(coll)
        if space is not None and space != ad.feature_space["model"]:
            raise InputError(f"adapter {ad.name!r} maps text onto {ad.feature_space['model']} image vectors; collection "
                             f"{coll.name!r} holds {space} vectors: re-index it with that image embedder, or train the "
                             "adapter with this one")
        return ad.project(self.engine.embed_texts([text]))[0]

    # --- browsing ------------------------------------------------------------------------------
    def items(self, collection: str, *, columns: Sequence[str], offset: int = 0,
              limit: int = 60) -> tuple[list[dict[str, Any]], int]:
        """A page of items (``columns`` of each) in store order, and the collection's item count."""
        out: list[dict[str, Any]] = []
        seen = 0
        for batch in self.open(collection).iter_items(list(columns), batch_size=1000):
            for row in batch:
                if seen >= offset and len(out) < limit:
                    out.append({k: row.get(k) for k in columns})
                seen += 1
        return out, seen

    def item(self, collection: str, item_id: str, *, columns: Sequence[str] | None = None) -> dict[str, Any] | None:
        """One item's stored fields, or None if the collection holds no such item."""
        rows = self.open(collection).get_items([item_id], columns=list(columns) if columns else None)
        return dict(rows[0]) if rows else None

    def thumbnail(self, collection: str, item_id: str) -> bytes:
        """An item's JPEG thumbnail (empty when it has none)."""
        return self.open(collection).thumbnail(item_id)

    # --- footage -------------------------------------------------------------------------------
    def watch(self, uri: str, options: "WatchOptions", *, progress: Any = None, should_stop: StopFn | None = None,
              detector: Any = None) -> "WatchReport":
        """Watch a video file or stream into ``options.collection``: tracks, events and keyframes;
        resumable and idempotent. See ``oculi.tasks.footage.watch.watch_source``."""
        from oculi.tasks.footage.watch import watch_source

        return watch_source(self.engine, self.store, uri, options, progress=progress, should_stop=should_stop,
                            detector=detector)

    def sources(self, collection: str) -> list[Any]:
        """The watched sources (``SourceRecord``), oldest footage first."""
        return self.open(collection).query_records("sources", order_by="start_time")

    def events(self, collection: str, **filters: Any) -> list[Any]:
        """Footage events (``EventRecord``), oldest first; ``filters`` as
        ``oculi.tasks.footage.query.find_events`` (camera, types, labels, zone, after, before ...)."""
        from oculi.tasks.footage.query import find_events

        return find_events(self.open(collection), **filters)

    def timeline(self, collection: str, source_id: str) -> dict[str, Any]:
        """One source with its events, tracks and keyframes (what the web UI draws).

        Raises:
            NotFoundError: no such source in the collection.
        """
        from oculi.tasks.footage.query import source_timeline

        return source_timeline(self.open(collection), source_id)

    def ask_footage(self, collection: str, question: str, *, now: Any = None, tz: Any = None,
                    use_model: bool = True) -> Any:
        """Answer a question about a collection's footage, with evidence (``FootageAnswer``).
        ``now`` is the reference for "today"; ``tz`` defaults to ``settings.timezone``.

        Where a model serving ``chat`` is configured (``[tasks] chat = "NAME"``, or ``--model``),
        it answers by calling the same query functions as tools
        (``oculi.tasks.footage.agent``; ``method`` is ``"model"``), falling back to the rules
        when it gives no usable reply; otherwise (or with ``use_model=False``) the rules answer.
        """
        from oculi.tasks.footage.ask import ask_footage

        coll = self.open(collection)
        zone = tz or self.timezone()
        chat = self._footage_chat() if use_model else None
        if chat is not None:
            from datetime import datetime

            from oculi.tasks.footage.agent import ask_with_tools

            return ask_with_tools(coll, question, chat, now=now or datetime.now(zone), tz=zone)
        return ask_footage(coll, question, now=now, tz=zone)

    def _footage_chat(self) -> Any:
        """The configured chat model as a tool-calling ``ToolChat``, or None (the built-in model
        does not chat; footage questions then go to the rules)."""
        from oculi.backends.registry import BUILTIN_MODEL
        from oculi.tasks.footage.agent import BackendToolChat

        engine: Any = self.engine
        if not hasattr(engine, "model_name_for"):
            return None
        if engine.model_name_for("chat") == BUILTIN_MODEL:
            return None
        return BackendToolChat(engine.backend("chat"))  # a configured model that cannot chat: ModelConfigError

    def footage_report(self, collection: str, camera: str, day: Any, *, tz: Any = None, tz_name: str | None = None,
                       usual_hours: tuple[int, int] = (7, 19)) -> Any:
        """A day (``date`` or ``YYYY-MM-DD``) of one camera as a ``FootageReport``."""
        import datetime as dt

        from oculi.tasks.footage.report import build_footage_report

        d = dt.date.fromisoformat(day) if isinstance(day, str) else day
        return build_footage_report(self.open(collection), camera, d, tz=tz or self.timezone(),
                                    tz_name=tz_name or self.settings.timezone or "local", usual_hours=usual_hours)

    def report(self, images: Sequence[str | Path], *, kind: str = "general", records: Any = None,
               records_encoding: str | None = None, inspector: str | None = None, collection: str | None = None,
               camera: str | None = None, day: Any = None, tz: Any = None, title: str | None = None,
               progress: Any = None, **kw: Any) -> Any:
        """Images (and records, and a collection's footage events) → a ``Report``
        (``oculi.tasks.report``); write it with ``oculi.tasks.report.write_report``.

        Args:
            images: Image files.
            kind: ``inspection``, ``incident``, ``medical`` or ``general``.
            records: A records file (``.csv``/``.json``/``.md``) or parsed ``Records``.
            inspector: A fitted inspection model to score each image.
            collection / camera: Footage whose events the records' times are checked against
                (``day`` narrows them to one day, and dates records that give only a time).
            tz: Time zone of record and footage times (default ``settings.timezone``).
            **kw: More of ``create_report``'s options, e.g. ``model="NAME"``: a configured chat
                model narrates the summary (grounded and claim-checked; ``report.narrator``).

        Raises:
            InputError: no readable image, bad records, an unknown kind.
        """
        import datetime as dt

        from oculi.tasks.report import create_report

        d = dt.date.fromisoformat(day) if isinstance(day, str) else day
        zone = tz or self.timezone()
        events: list[Any] = []
        if collection is not None:
            filters: dict[str, Any] = {"camera": camera} if camera else {}
            if d is not None:
                filters["after"] = dt.datetime.combine(d, dt.time(0), tzinfo=zone).timestamp()
                filters["before"] = dt.datetime.combine(d + dt.timedelta(days=1), dt.time(0), tzinfo=zone).timestamp()
            events = self.events(collection, **filters)
        return create_report(self.engine, images, kind=kind, records=records, records_encoding=records_encoding,
                             inspector=inspector, events=events, day=d, tz=zone, title=title, progress=progress, **kw)

    def timezone(self, name: str | None = None) -> Any:
        """The time zone ``name`` (or ``settings.timezone``, or this machine's)."""
        from oculi.tasks.footage.zones import resolve_tz

        return resolve_tz(name or self.settings.timezone)

    # --- helpers -------------------------------------------------------------------------------
    def _limits(self) -> ImageLimits:
        # indexing decodes large JPEGs at the reduced size the built-in models still see in full
        return replace(ImageLimits.from_settings(self.settings), draft_long_side=DRAFT_LONG_SIDE)

    def _ocr(self, ocr: bool | None) -> bool:
        return self.settings.ocr if ocr is None else ocr


def collection_image_space(coll: Collection) -> str | None:
    """The model id of a collection's stored image vectors, when the collection records it."""
    spaces = getattr(coll, "vector_spaces", None)
    if callable(spaces):
        image = spaces().get("image") or {}
        if image.get("model"):
            return str(image["model"])
    models = (getattr(coll, "_meta", None) or {}).get("models") or {}  # collections written before spaces were recorded
    return f"builtin/{models['classifier']}" if "classifier" in models else None


_default: Library | None = None
_default_lock = threading.Lock()


def default_library() -> Library:
    """The process-wide library of ``oculi.default_engine()`` and its settings' store."""
    from oculi.engine import default_engine

    global _default
    engine = default_engine()
    with _default_lock:
        if _default is None or _default.engine is not engine:
            _default = Library(engine)
        return _default
