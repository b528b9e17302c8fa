"""Two lanes of worker threads, so searches never wait behind image work.

* The **model lane** runs the image models (caption, ask, detect, read, classify, image
  embeddings, image search): at most ``inference_concurrency`` calls at once, the rest wait in
  line. Its threads run at a lower OS priority (``model_nice`` steps, Linux): while a search
  is running the kernel gives the cores to it first, and image work takes whatever is left.
* The **light lane** runs text search and text embeddings (tens of milliseconds each) in its
  own ``light_concurrency`` threads at normal priority.

A separate line is not enough on its own: the issue's 16-client run had its own lane for
search, yet search p95 reached 3.1 s because the image models' threads (two calls × the ONNX
Runtime and torch intra-op threads, on two cores) took the CPU from it. Priority is set per
thread and is inherited by the threads a thread creates, so the image models' runtime thread
pools, created while warming up in a model-lane thread, are low priority too; the text
encoder is warmed up from the light lane first so its thread pools are not.

The ingestion worker (``oculi.server.jobs``) lowers its own thread the same way.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from enum import StrEnum
from typing import Any, Callable

log = logging.getLogger(__name__)


class Lane(StrEnum):
    MODEL = "model"
    LIGHT = "light"


def lower_thread_priority(steps: int) -> int:
    """Make the calling thread ``steps`` nice levels less favoured; returns its nice value.

    Linux sets priority per thread (``setpriority`` on the thread id); elsewhere it would
    apply to the whole process, so nothing is changed there. A process may always lower its
    own priority, never raise it back: the lanes' threads keep theirs for life.
    """
    if steps <= 0 or not sys.platform.startswith("linux"):
        return thread_nice()
    tid = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + steps))
    except OSError as e:  # a sandbox without setpriority: run at the same priority
        log.warning("cannot lower the priority of thread %s: %s", threading.current_thread().name, e)
    return thread_nice()


def thread_nice() -> int:
    """The calling thread's nice value (0 where threads have none of their own)."""
    if not sys.platform.startswith("linux"):
        return 0
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


class Lanes:
    """The server's two thread pools.

    Args:
        model_workers: Image-model calls run at once.
        light_workers: Light calls (text search, text embeddings) run at once.
        model_nice: How many nice levels lower the model lane runs (0 = same priority).
    """

    def __init__(self, model_workers: int, light_workers: int, model_nice: int) -> None:
        self.model_nice = model_nice
        self._pools = {
            Lane.MODEL: ThreadPoolExecutor(max(1, model_workers), "oculi-model", initializer=lower_thread_priority,
                                           initargs=(model_nice,)),
            Lane.LIGHT: ThreadPoolExecutor(max(1, light_workers), "oculi-light"),
        }

    async def run(self, lane: Lane, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``fn`` in a lane's thread; waits in line while the lane is busy.

        A request cancelled while waiting (the client went away) never starts.
        """
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pools[lane], functools.partial(fn, *args, **kwargs))

    def submit(self, lane: Lane, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``fn`` in a lane from outside the event loop; returns a ``concurrent.futures.Future``."""
        return self._pools[lane].submit(fn, *args, **kwargs)

    def shutdown(self) -> None:
        for pool in self._pools.values():
            pool.shutdown(wait=False, cancel_futures=True)
