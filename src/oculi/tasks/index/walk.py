"""Walking folders for image files: each directory once, symlink loops and unreadable folders
reported as problems, never stopping the walk."""

from __future__ import annotations

import os
import stat as stat_mod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

from oculi.core.errors import InputError, input_error_from_os
from oculi.imageio import IMAGE_SUFFIXES, file_kind

INDEX_SUFFIXES = IMAGE_SUFFIXES  # HEIC/HEIF included: imageio registers pillow-heif


@dataclass(frozen=True)
class FoundFile:
    """One image to index: a file found by the walk, or in-memory bytes (``data``: an upload)."""

    path: str
    size: int
    mtime_ns: int
    name: str = ""
    data: bytes | None = None  # in-memory source (uploads)


@dataclass
class WalkResult:
    """The files a walk found, what it skipped (``problems``) and the folders it could not read."""

    files: list[FoundFile] = field(default_factory=list)
    problems: list[dict[str, str]] = field(default_factory=list)
    unreadable_dirs: list[str] = field(default_factory=list)
    missing_roots: list[str] = field(default_factory=list)  # with ``missing_ok``: roots that are gone


def walk_images(
    roots: Sequence[str | Path],
    *,
    suffixes: Iterable[str] = INDEX_SUFFIXES,
    exclude: Sequence[str | Path] = (),
    on_found: Callable[[int], None] | None = None,
    missing_ok: bool = False,
) -> WalkResult:
    """Image files under ``roots`` (recursively; each directory once).

    A root that is a file is taken whatever its suffix. Hidden files and folders (``.name``)
    and the ``exclude`` directories are skipped. An entry with an image suffix that is not a
    regular file (a FIFO, a device, a socket, or a link to one) is listed in ``problems`` and
    never opened; so is a broken symlink.

    Args:
        missing_ok: List a root that does not exist in ``missing_roots`` instead of raising.

    Raises:
        InputError: a root does not exist (unless ``missing_ok``) or cannot be read at all.
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
        if not _is_utf8(p):
            raise InputError(f"{root!r}: the path is not valid UTF-8; rename it to index it")
        try:
            st = os.stat(p)
        except FileNotFoundError as e:
            if missing_ok:
                res.missing_roots.append(p)
                continue
            raise input_error_from_os(str(root), e) from None
        except OSError as e:
            raise input_error_from_os(str(root), e) from None
        if stat_mod.S_ISREG(st.st_mode):
            add_file(p, st)
            continue
        if not stat_mod.S_ISDIR(st.st_mode):
            raise InputError(f"{root}: is {file_kind(st.st_mode)}, not a regular file or directory")
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
                if not _is_utf8(e.name):
                    # the store keeps paths as UTF-8 text: such a name cannot be stored faithfully
                    res.problems.append({"path": e.path, "problem": "name is not valid UTF-8 (rename it to index it); skipped"})
                    continue
                try:
                    if e.is_dir(follow_symlinks=True):
                        subdirs.append(e.path)
                        continue
                    if os.path.splitext(e.name)[1].lower() not in sfx:
                        continue
                    if e.is_file(follow_symlinks=True):
                        add_file(e.path, e.stat(follow_symlinks=True))
                        continue
                    try:
                        est = e.stat(follow_symlinks=True)
                    except FileNotFoundError:
                        if e.is_symlink():
                            res.problems.append({"path": e.path, "problem": "broken symlink; skipped"})
                        continue
                    # a FIFO named x.jpg would block the reader; a device would never end
                    res.problems.append({"path": e.path, "problem": f"is {file_kind(est.st_mode)}, not a regular file; skipped"})
                except FileNotFoundError:
                    continue  # vanished while walking
                except OSError as err:
                    res.problems.append({"path": e.path, "problem": f"cannot be read ({err.strerror or err}); skipped"})
            stack.extend(reversed(subdirs))
    return res


def _is_utf8(name: str) -> bool:
    """False for a name holding bytes that are not UTF-8 (decoded to lone surrogates)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def is_under(path: str, roots: Sequence[str]) -> bool:
    """Whether ``path`` is one of ``roots`` or inside one of them (by path, not by inode)."""
    for r in roots:
        if path == r or path.startswith(r.rstrip(os.sep) + os.sep):
            return True
    return False
