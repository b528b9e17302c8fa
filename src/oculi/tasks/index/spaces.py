"""A collection's vector spaces: which model made its image and text vectors, and their size.

Vectors of two models are never comparable, even when their sizes agree (immich and Frigate
users met silent mismatches after changing the CLIP model). So a collection records
``{"image": {"model", "dim"}, "text": {"model", "dim"}}`` when vectors are first written, and
writing or searching with another embedder is refused with the command that re-indexes it.

Example:
    >>> check_spaces("photos", {"image": {"model": "builtin/a", "dim": 4}}, {"image": {"model": "builtin/a", "dim": 4}}, 3)
"""

from __future__ import annotations

from typing import Any, Mapping

from oculi.core.errors import ModelConfigError

KINDS = ("image", "text")


def current_spaces(vision: Any) -> dict[str, dict[str, Any]] | None:
    """The spaces of ``vision``'s embedders (``Engine.vector_spaces``), or None when it cannot say."""
    fn = getattr(vision, "vector_spaces", None)
    if not callable(fn):
        return None
    return {k: (v.to_dict() if hasattr(v, "to_dict") else dict(v)) for k, v in fn().items()}


def stored_spaces(coll: Any) -> dict[str, dict[str, Any]]:
    """What the collection records (empty for a store that does not record spaces)."""
    fn = getattr(coll, "vector_spaces", None)
    return fn() if callable(fn) else {}


def reindex_command(collection: str) -> str:
    return f"oculi index PATHS -c {collection} --reindex"


def check_spaces(collection: str, stored: Mapping[str, Any], current: Mapping[str, Any] | None, items: int, *,
                 searching: bool = False) -> None:
    """Refuse vectors of another model than the stored ones.

    Args:
        collection: The collection's name (for the message).
        stored, current: ``{"image"|"text": {"model", "dim"}}`` recorded / of the configured embedders.
        items: How many items the collection holds (an empty one takes any model).
        searching: Word the message for a search rather than a write.

    Raises:
        ModelConfigError: naming both models and the re-index command (exit 4).
    """
    if not current or items == 0:
        return
    for kind in KINDS:
        have, want = stored.get(kind), current.get(kind)
        if not have or not want or not have.get("model"):
            continue
        if have["model"] != want["model"] or (have.get("dim") is not None and int(have["dim"]) != int(want["dim"])):
            verb = "search" if searching else "add to"
            raise ModelConfigError(
                f"collection {collection!r} holds {kind} vectors of {have['model']} ({have.get('dim')}-d); the "
                f"configured {kind} embedder is {want['model']} ({want['dim']}-d), and vectors of two models cannot "
                f"be compared. To {verb} it, use the model it was indexed with, or re-index it with this one: "
                f"`{reindex_command(collection)}` (or index into a new collection)")


def guard_collection(coll: Any, vision: Any, *, searching: bool = False) -> dict[str, dict[str, Any]] | None:
    """Check ``vision``'s embedders against ``coll``; returns the current spaces (to record)."""
    current = current_spaces(vision)
    if current is not None:
        stored = stored_spaces(coll)
        if stored:
            check_spaces(coll.name, stored, current, coll.count(), searching=searching)
    return current


def record_spaces(coll: Any, spaces: Mapping[str, Any] | None) -> None:
    """Record the spaces of vectors just written (inside the collection's writer)."""
    fn = getattr(coll, "set_vector_spaces", None)
    if spaces and callable(fn):
        fn(dict(spaces))
