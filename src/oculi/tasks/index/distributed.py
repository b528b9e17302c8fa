"""Distributed ingestion: the prepare and perceive stages on a Ray cluster, the store writer here.

``RayPipeline`` is the ``IndexPipeline`` of ``oculi index --engine ray``: the same stages
(``ImagePreparer`` → ``perceive_batch`` → ``build_items`` → ``StoreWriter``), with the first
three run by a Ray Data ``map_batches`` over an actor pool and the fourth on the driver:

- each actor (``IngestActor``) builds its own ``Vision`` once (an ``oculi.Engine`` with one
  perception worker, i.e. one ``oculi.perception.worker.PerceptionWorker`` and one-thread
  sessions, the same worker a local ``PerceptionPool`` runs) and, for each batch of files,
  reads, hashes and decodes them, perceives the new ones, and builds their stored records
  (caption, document, text vector). What comes back is the records, never the pixels;
- the driver (this process) holds the collection's writer lock and writes items, then the
  file records that point at them, through the same ``StoreWriter`` and flush rules as a local
  run, so an interrupted run (Ctrl-C, a killed driver, a lost worker) resumes exactly as a
  local one does: what was written is kept and skipped next time, the rest is done again.

Files are read by the workers, so on a cluster every node must see the indexed folders at the
same path (a shared mount), as it must see the model assets (``OCULI_ASSETS_DIR``). On one
machine Ray runs locally: ``ray.init(num_cpus=N, include_dashboard=False)``.

A file that cannot be read, decoded or perceived is a line in ``report.failed``, as locally;
a missing model asset stops the run with ``ModelAssetError`` (raised on the driver).
"""

from __future__ import annotations

import logging
import math
import os
import pickle
import time
import warnings
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterator, Mapping, Sequence

from oculi.core.errors import BackendError, ConfigError, ModelAssetError, OculiError
from oculi.imageio import ImageLimits
from oculi.store.base import Collection, ItemRecord
from oculi.tasks.index.report import IndexProgress, IndexReport, ProgressFn, StopFn
from oculi.tasks.index.stages import (
    DESCRIBER_KEY,
    ImagePreparer,
    KnownItems,
    PreparedImage,
    PrepareFailure,
    StoreWriter,
    build_items,
    describer_id,
    file_record,
    first_models,
    perceive_batch,
)
from oculi.tasks.index.walk import FoundFile
from oculi.tasks.vision import Vision

log = logging.getLogger(__name__)

#: At most this many Ray Data blocks per run: a block is the unit an actor takes at a time, so
#: small runs get one block per batch (every actor busy) and huge ones blocks of a few hundred
#: files (bounded bookkeeping on the driver).
MAX_BLOCKS = 4096

VisionFactory = Callable[[], Vision]


@dataclass(frozen=True)
class RayOptions:
    """Where and how wide a Ray ingestion runs.

    Attributes:
        address: A running cluster (``ray://head:10001`` through Ray Client, ``head:6379`` or
            ``auto`` from a cluster node); None starts Ray locally (or uses the one this process
            already started).
        workers: Actors, each holding the models and using one CPU; None: one per CPU the
            cluster has.
        local_cpus: CPUs a locally started Ray may use (None: all of this machine's).
    """

    address: str | None = None
    workers: int | None = None
    local_cpus: int | None = None


def _ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ConfigError("the ray engine needs Ray Data: pip install 'oculi[ray]' "
                          "(or use --engine local)") from e
    return ray


def _probe(address: str, timeout: float = 5.0) -> None:
    """Refuse an address nothing listens on at once (Ray itself retries for minutes)."""
    import socket
    from urllib.parse import urlsplit

    if address in ("auto", "local"):
        return
    parts = urlsplit(address if "://" in address else f"ray-gcs://{address}")
    try:
        host, port = parts.hostname, parts.port
    except ValueError as e:
        raise ConfigError(f"bad Ray address {address!r}: {e}") from None
    if not host or not port:
        raise ConfigError(f"bad Ray address {address!r}: give host:port, ray://host:port or auto")
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as e:
        raise ConfigError(f"cannot reach the Ray cluster at {address}: {e.strerror or e}") from None


def connect(options: RayOptions) -> Any:
    """Connect to the Ray cluster of ``options`` (start a local one if none); returns ``ray``.

    Raises:
        ConfigError: Ray is not installed, or the cluster cannot be reached.
    """
    ray = _ray()
    if not ray.is_initialized():
        if options.address:
            _probe(options.address)
        try:
            with warnings.catch_warnings():
                # Ray starts its processes with fork+exec; lancedb's warning about forking (a
                # deadlock risk only for a child that goes on running Python) does not apply
                warnings.filterwarnings("ignore", message="lancedb fork support", category=RuntimeWarning)
                if options.address:
                    ray.init(address=options.address, logging_level=logging.WARNING, log_to_driver=False)
                else:
                    ray.init(num_cpus=options.local_cpus, include_dashboard=False, logging_level=logging.WARNING,
                             log_to_driver=False)
        except Exception as e:  # noqa: BLE001 - Ray raises ConnectionError, RuntimeError, ValueError...
            where = options.address or "a local Ray"
            raise ConfigError(f"cannot start or reach {where}: {type(e).__name__}: {e}") from e
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # the CLI draws its own progress from the driver
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    return ray


def cluster_cpus(ray: Any) -> int:
    """CPUs the connected cluster has (at least 1)."""
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


@dataclass
class RemoteResult:
    """What a worker sends back for one file: a new item, a known content, or a failure."""

    kind: str  # "added" | "relink" | "failed"
    prep: PreparedImage | PrepareFailure
    item: ItemRecord | None = None
    models: dict[str, Any] = field(default_factory=dict)
    error: str = ""


class IngestActor:
    """A Ray Data callable class: prepare → perceive → build items for batches of files.

    Args:
        vision_factory: Builds this actor's ``Vision`` (once, in the actor's process).
        limits: Byte and pixel limits for decoding.
        known_ids: Item ids stored when the run began: such content is hashed, not decoded.
        ocr: Run OCR.
    """

    def __init__(self, vision_factory: VisionFactory, limits: ImageLimits, known_ids: Sequence[str], ocr: bool) -> None:
        self.vision = vision_factory()
        self.preparer = ImagePreparer(limits, KnownItems(known_ids))
        self.ocr = ocr

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[bytes]]:
        try:
            results = self.process([pickle.loads(b) for b in batch["src"]])
            return {"result": [pickle.dumps(r, protocol=pickle.HIGHEST_PROTOCOL) for r in results]}
        except ModelAssetError as e:  # no image can be perceived: the driver raises it
            return {"result": [pickle.dumps(e)]}

    def process(self, srcs: Sequence[FoundFile]) -> list[RemoteResult | OculiError]:
        t0 = time.monotonic()
        prepared = [self.preparer(s) for s in srcs]
        out: list[RemoteResult | OculiError] = []  # new items first: a copy's file record follows its item
        rest: list[RemoteResult | OculiError] = []
        todo: list[PreparedImage] = []
        copies: list[PreparedImage] = []  # the same content as an image of this batch being perceived
        seen: set[str] = set()
        for p in prepared:
            if isinstance(p, PrepareFailure):
                rest.append(RemoteResult("failed", p, error=p.error))
            elif p.loaded is None:  # stored already: only its file record
                rest.append(RemoteResult("relink", p))
            elif p.iid in seen:
                copies.append(replace(p, loaded=None))
            else:
                seen.add(p.iid)
                todo.append(p)
        good = []
        failed: dict[str, str] = {}
        for p, res in perceive_batch(self.vision, todo, ocr=self.ocr) if todo else []:
            if isinstance(res, str):
                failed[p.iid] = res
                rest.append(RemoteResult("failed", replace(p, loaded=None), error=res))
            else:
                good.append((p, res))
        for p in copies:  # a copy shares its original's fate
            rest.append(RemoteResult("failed", p, error=failed[p.iid]) if p.iid in failed else RemoteResult("relink", p))
        models = first_models(o for _, o in good)
        describer = describer_id(self.vision)
        if describer:
            models[DESCRIBER_KEY] = describer  # the collection names the model that wrote its captions
        for (p, _), item in zip(good, build_items(self.vision, good)):
            out.append(RemoteResult("added", replace(p, loaded=None, thumb=b""), item=item, models=models))
        log.debug("worker %d: %d files in %.2f s", os.getpid(), len(srcs), time.monotonic() - t0)
        return out + rest


class RayPipeline:
    """Runs sources through the stages on Ray actors and writes on the driver.

    Same constructor shape and ``run(todo)`` as ``IndexPipeline`` so ``index_paths`` drives
    either; ``done`` and ``total`` are the progress counters.

    Args:
        vision_factory: Builds each actor's ``Vision``; it must pickle (a ``functools.partial``
            of a module-level function over ``Settings`` does).
        coll: The collection written to (the caller holds its writer lock).
        report: Filled in as the run goes.
        preparer: Gives the limits and the known item ids (the driver's ``KnownItems``).
        ocr: Run OCR.
        batch_size: Files per actor call.
        options: Cluster address and number of actors.
        progress, should_stop: As for ``IndexPipeline``. On stop, results already back are
            written; files still in the workers are done again by the next run.
    """

    def __init__(self, vision_factory: VisionFactory, coll: Collection, report: IndexReport, preparer: ImagePreparer, *,
                 ocr: bool, batch_size: int, options: RayOptions = RayOptions(),
                 progress: ProgressFn | None = None, should_stop: StopFn | None = None,
                 spaces: Mapping[str, Any] | None = None) -> None:
        self.vision_factory = vision_factory
        self.report = report
        self.preparer = preparer
        self.known: KnownItems = preparer.known
        self.writer = StoreWriter(coll, spaces=spaces)  # the vector spaces recorded with what is written
        self.ocr = ocr
        self.batch_size = max(1, batch_size)
        self.options = options
        self.progress = progress
        self.should_stop = should_stop or (lambda: False)
        self.t0 = time.monotonic()
        self.done = 0
        self.total = 0
        self.workers = 0

    def _tick(self, current: str = "") -> None:
        if self.progress:
            self.progress(IndexProgress("indexing", self.done, self.total, len(self.report.failed), current,
                                        time.monotonic() - self.t0))

    def _results(self, todo: Sequence[FoundFile]) -> Iterator[list[bytes]]:
        ray = connect(self.options)
        self.workers = self.options.workers or cluster_cpus(ray)
        known_ids = self.known.snapshot()  # a snapshot; the driver still checks every result
        blocks = max(1, min(MAX_BLOCKS, math.ceil(len(todo) / self.batch_size)))
        ds = ray.data.from_items([{"src": pickle.dumps(f)} for f in todo], override_num_blocks=blocks)
        out = ds.map_batches(
            IngestActor, batch_size=self.batch_size, batch_format="numpy", num_cpus=1,
            compute=ray.data.ActorPoolStrategy(size=max(1, min(self.workers, blocks))),
            fn_constructor_kwargs={"vision_factory": self.vision_factory, "limits": self.preparer.limits,
                                   "known_ids": known_ids, "ocr": self.ocr},
        )
        for batch in out.iter_batches(batch_size=None, batch_format="numpy"):
            yield list(batch["result"])

    def run(self, todo: Sequence[FoundFile]) -> None:
        self.total = len(todo)
        self.t0 = time.monotonic()
        self._tick()
        results = self._results(todo)
        try:
            for blobs in results:
                self._ensure_space(len(blobs))
                for blob in blobs:
                    res = pickle.loads(blob)
                    if isinstance(res, BaseException):
                        raise res
                    self._record(res)
                self.writer.maybe_flush()
                if self.should_stop() and self.done < self.total:
                    self.report.interrupted = True
                    break
        except OculiError:
            raise
        except Exception as e:  # a worker that died, a cluster that went away
            if type(e).__module__.startswith("ray"):
                raise BackendError(f"the Ray ingestion failed ({type(e).__name__}: {e}); what was written is "
                                   "kept, run the same command again to finish") from e
            raise
        finally:
            results.close()  # stops the Ray Data execution and its actors
            self.writer.flush()
        self._tick()

    def _ensure_space(self, n: int) -> None:
        ensure_space = getattr(self.writer.coll, "ensure_space", None)
        if ensure_space is not None:
            ensure_space(n + len(self.writer.items))

    def _record(self, res: RemoteResult) -> None:
        p = res.prep
        self.done += 1
        if res.kind == "failed":
            self.report.failed.append({"path": p.src.path, "error": res.error})
        elif res.kind == "added" and res.item is not None and res.item.id not in self.known:
            self.writer.add_items([res.item], res.models)
            self.known.update([res.item.id])
            self._add_file(p)  # type: ignore[arg-type]
            self.report.added += 1
        else:  # known content (stored, or perceived twice in this run): only the file record
            self._add_file(p)  # type: ignore[arg-type]
            self.report.relinked += 1
        if self.done % max(1, self.batch_size) == 0:
            self._tick(p.src.path)

    def _add_file(self, prep: PreparedImage) -> None:
        self.report.ids[prep.src.path] = prep.iid
        self.writer.add_files([file_record(prep)])
