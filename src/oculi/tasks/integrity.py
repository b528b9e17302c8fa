"""``oculi collections check`` / ``repair``: verify stored collections; repair and re-derive.

The store does the checking and the repair of its files (``Store.check_collection``,
``Store.repair_collection``; for the embedded store see ``oculi.store.lance_check`` and
``oculi.store.lance_repair``). This task adds what needs the models: items whose stored rows
were lost are perceived again from their source files, when those are still on disk.

Example:
    >>> from oculi import Settings
    >>> from oculi.store import open_store
    >>> store = open_store(Settings(home="/tmp/oculi-home"))  # doctest: +SKIP
    >>> check_collections(store).ok  # doctest: +SKIP
    True
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from oculi.core.errors import InputError, ModelAssetError, OculiError
from oculi.store.integrity import CheckReport, CollectionCheck, RepairReport

log = logging.getLogger(__name__)

EngineSource = Any  # an Engine, or a no-argument callable returning one (loaded only if needed)


def check_collections(store: Any, name: str | None = None, *, hashes: bool = True,
                      on_collection: Callable[[str], None] | None = None) -> CheckReport:
    """Check one collection (``name``) or all of them.

    A collection that is being written is not checked (a write in progress would look like
    damage): with ``name`` that raises ``InputError``; otherwise it is reported as skipped.

    Raises:
        NotFoundError: ``name`` is not a collection.
        InputError: ``name`` is being written.
    """
    report = CheckReport()
    names = [name] if name is not None else store.names()
    for n in names:
        if on_collection:
            on_collection(n)
        try:
            report.collections.append(store.check_collection(n, hashes=hashes))
        except InputError as e:
            if name is not None:
                raise
            c = CollectionCheck(name=n, path=str(getattr(store, "root", "")), skipped=str(e))
            report.collections.append(c)
    return report


def repair_collection(engine: EngineSource, store: Any, name: str, *, progress: Any = None,
                      should_stop: Callable[[], bool] | None = None) -> RepairReport:
    """Repair a collection, then re-index the source files whose items were lost.

    Args:
        engine: An ``Engine`` (or a callable returning one; it is only called when something
            must be re-indexed). ``None`` leaves re-indexing to a later ``oculi index``.
        store: The ``Store``.
        name: Collection name.
        progress: Passed to ``index_paths`` for the re-indexing.
        should_stop: Passed to ``index_paths``; an interrupted re-index is completed by running
            repair (or ``oculi index``) again.

    Returns:
        The ``RepairReport`` (``rederived``, ``rederive_failed`` and ``after`` include the
        re-indexing).
    """
    report = store.repair_collection(name)
    if not report.reindex_paths:
        return report
    eng = engine() if callable(engine) and not hasattr(engine, "observe_many") else engine
    if eng is None:
        report.actions.append(f"{len(report.reindex_paths)} source file(s) still to re-index: run "
                              f"`oculi collections repair {name}` with the models installed, or `oculi index` on them")
        return report
    from oculi.tasks.index import index_paths

    try:
        res = index_paths(eng, store, report.reindex_paths, name, progress=progress, should_stop=should_stop)
    except ModelAssetError as e:
        report.rederive_failed = [{"path": p, "error": str(e)} for p in report.reindex_paths]
        report.actions.append("could not re-index the lost items: " + str(e))
        return report
    report.rederived = res.added + res.relinked
    report.rederive_failed = list(res.failed)
    done = "re-indexed" if not res.interrupted else "interrupted while re-indexing; run repair again to finish:"
    report.actions.append(f"{done} {report.rederived} source file(s) whose items were lost")
    try:
        report.after = store.check_collection(name)
    except OculiError as e:
        log.debug("check after repair failed: %s", e)
    return report
