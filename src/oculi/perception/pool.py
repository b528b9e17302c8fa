"""N perception workers fed from one shared queue: the throughput path of indexing and footage.

``PerceptionPool`` starts ``workers`` ``PerceptionWorker``s, as threads (default) or as
processes, and streams work through them: ``observe`` and ``detect`` take an iterable,
keep a bounded number of small tasks in flight (so memory stays flat on a long folder or
video), and yield results in input order. A task is a few images; whichever worker is free
takes the next one, so a slow image (a page full of text) never holds the others back.

Threads or processes: onnxruntime, OpenCV and PIL release the GIL while they compute, so
threads share one process's memory and need no pickling; processes sidestep the GIL for
the Python parts (decode, NMS, fusion, colour rules) at the cost of a copy of the models per
worker and pickled images. Both give identical observations (tests check it); the
benchmark (``benchmarks/bench_index.py --pool process``) measures both.

Cleanup: leaving the ``with`` block, ``close()``, an exception in the caller or Ctrl-C stop
the workers: queued tasks are cancelled, worker processes are terminated if they do not
exit, and worker threads finish the task they hold (a second or less) and end. A worker
process that dies (killed, out of memory) fails the call with ``BackendError`` and the next
call starts fresh workers.

Example:
    >>> with PerceptionPool(Settings(), workers=2) as pool:  # doctest: +SKIP
    ...     for obs in pool.observe(engine.load_image(p) for p in paths):
    ...         print(obs.counts())
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
from collections import deque
from concurrent.futures import BrokenExecutor, Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from itertools import islice
from typing import Any, Callable, Iterable, Iterator, Literal, Sequence, TypeVar

from oculi.config import Settings
from oculi.core.errors import BackendError, ConfigError, OculiError
from oculi.core.types import DetectedObject, Observation
from oculi.perception.worker import PerceptionWorker

log = logging.getLogger(__name__)

PoolKind = Literal["thread", "process"]
#: Images per task: small, so that workers balance; one image per model call is as fast as more.
TASK_IMAGES = 2
#: Tasks in flight per worker: enough that a worker never waits for the caller.
TASKS_PER_WORKER = 3

T = TypeVar("T")

# one worker per thread (thread pools) or per process (process pools)
_local = threading.local()


def _init_worker(settings: Settings, in_process: bool) -> None:
    if in_process:  # Ctrl-C goes to the whole process group: the parent decides, workers carry on
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    _local.worker = PerceptionWorker(settings)


def _end_processes(procs: Sequence[Any]) -> None:
    """End worker processes: a worker deep in a model call gets a moment, then is terminated, then killed."""
    for p in procs:
        p.join(timeout=5)
        if p.is_alive():
            p.terminate()
            p.join(timeout=5)
        if p.is_alive():
            p.kill()
            p.join()


def _worker() -> PerceptionWorker:
    return _local.worker


def _load_task() -> int:
    _worker().load()
    return os.getpid()


def _observe_task(images: Sequence[Any], ocr: bool) -> list[Observation | OculiError]:
    return _worker().observe(images, ocr=ocr)


def _detect_task(images: Sequence[Any]) -> list[list[DetectedObject]]:
    return _worker().detect(images)


def default_workers() -> int:
    """One worker per usable CPU core."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class PerceptionPool:
    """Runs N ``PerceptionWorker``s over streams of images (see the module notes).

    Args:
        settings: Settings for the workers (each uses one thread per session).
        workers: How many; default one per CPU core.
        kind: ``"thread"`` or ``"process"``.

    Raises:
        ConfigError: an unknown ``kind`` or fewer than one worker.
    """

    def __init__(self, settings: Settings, workers: int | None = None, *, kind: PoolKind = "thread") -> None:
        if kind not in ("thread", "process"):
            raise ConfigError(f"perception pool kind must be 'thread' or 'process', got {kind!r}")
        n = default_workers() if workers is None else int(workers)
        if n < 1:
            raise ConfigError(f"a perception pool needs at least one worker, got {n}")
        self.settings = settings
        self.workers = n
        self.kind = kind
        self._executor: Executor | None = None
        self._children: dict[int, Any] = {}  # every worker process the executor has started
        self._live_children: dict[int, Any] | None = None
        self._lock = threading.Lock()

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> "PerceptionPool":
        """Start the workers and load their models (idempotent).

        Raises:
            ModelAssetError: a model asset is missing (from the first worker that loads).
        """
        with self._lock:
            if self._executor is not None:
                return self
            if self.kind == "thread":
                from oculi.perception.worker import single_thread_runtime

                single_thread_runtime()
                ex: Executor = ThreadPoolExecutor(self.workers, thread_name_prefix="oculi-perceive",
                                                  initializer=_init_worker, initargs=(self.settings, False))
            else:
                ctx = multiprocessing.get_context("spawn")  # never fork a process holding ORT/OpenMP threads
                ex = ProcessPoolExecutor(self.workers, mp_context=ctx, initializer=_init_worker,
                                         initargs=(self.settings, True))
            self._executor = ex
        try:
            loads = [self._submit(ex, _load_task) for _ in range(self.workers)]
            for f in loads:
                f.result()
        except BaseException:
            self.close()
            raise
        log.info("perception pool: %d %s worker(s)", self.workers, self.kind)
        return self

    def close(self) -> None:
        """Stop the workers: cancel queued tasks, end threads and processes (idempotent)."""
        with self._lock:
            ex, self._executor = self._executor, None
        if ex is None:
            return
        self._track(ex)
        live = self._live_children or {}
        procs = list({**self._children, **live}.values())
        self._children, self._live_children = {}, None
        ex.shutdown(wait=not procs, cancel_futures=True)
        _end_processes(procs)
        manager = getattr(ex, "_executor_manager_thread", None)
        if manager is not None:  # it may start a worker while it winds down: wait for it, then end those too
            manager.join(timeout=10)
            _end_processes([p for p in list(live.values()) if p not in procs])

    def _submit(self, ex: Executor, fn: Callable, *args: Any) -> Future:
        fut = ex.submit(fn, *args)
        self._track(ex)  # a process pool starts its worker processes inside submit
        return fut

    def _track(self, ex: Executor) -> None:
        """Remember the executor's worker processes (its own table is dropped on shutdown)."""
        if isinstance(ex, ProcessPoolExecutor):
            live = getattr(ex, "_processes", None)
            if live is not None:
                self._children.update(live)
                self._live_children = live  # the same dict object the executor's manager thread updates

    def __enter__(self) -> "PerceptionPool":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def running(self) -> bool:
        return self._executor is not None

    # --- work ------------------------------------------------------------------------------
    def observe(self, images: Iterable[Any], *, ocr: bool = True,
                task_images: int = TASK_IMAGES) -> Iterator[Observation | OculiError]:
        """Observe a stream of ``LoadedImage``s; yields one ``Observation`` (or the image's
        ``OculiError``) per image, in input order.

        Raises:
            ModelAssetError: a model is missing (no image can be observed).
        """
        return self._stream(images, lambda chunk: (_observe_task, chunk, ocr), task_images)

    def detect(self, frames: Iterable[Any], *, task_images: int = 1) -> Iterator[list[DetectedObject]]:
        """Objects (detector, colours, faces) for a stream of PIL images, in input order.

        One frame per task by default: the lowest latency per frame for live footage, with
        ``workers`` frames in flight.
        """
        return self._stream(frames, lambda chunk: (_detect_task, chunk), task_images)

    def _stream(self, items: Iterable[T], task: Callable[[list[T]], tuple], size: int) -> Iterator[Any]:
        ex = self.start()._executor
        assert ex is not None
        size = max(1, int(size))
        it = iter(items)
        pending: deque[Future] = deque()
        window = self.workers * TASKS_PER_WORKER
        try:
            while True:
                while len(pending) < window:
                    chunk = list(islice(it, size))
                    if not chunk:
                        break
                    fn, *args = task(chunk)
                    pending.append(self._submit(ex, fn, *args))
                if not pending:
                    return
                try:
                    results = pending.popleft().result()
                except BrokenExecutor as exc:  # a worker process died (killed, out of memory, crashed)
                    self.close()  # the next call starts fresh workers
                    raise BackendError(f"a perception worker stopped unexpectedly ({exc}); it is restarted on the next call") from exc
                yield from results
        finally:
            for f in pending:
                f.cancel()
