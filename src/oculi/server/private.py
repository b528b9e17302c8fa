"""Files only the server's user may read: the key and job databases and the upload spool.

``keys.db`` holds key hashes and ``jobs.db`` and ``spool/`` hold what clients uploaded, so
the ``server`` folder is 0700 and the databases (with SQLite's ``-wal``/``-shm`` files,
which SQLite creates with the database file's mode) are 0600, whatever the umask; folders
and files left world-readable by an older version are tightened on open.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) and make ``path`` itself 0700."""
    path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    _chmod(path, DIR_MODE)
    return path


def connect_private(path: Path, **kwargs: Any) -> sqlite3.Connection:
    """``sqlite3.connect`` to a database file that is created, or tightened to, 0600."""
    private_dir(path.parent)
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE))
    for suffix in ("", "-wal", "-shm", "-journal"):
        p = path.with_name(path.name + suffix)
        if p.exists():
            _chmod(p, FILE_MODE)
    return sqlite3.connect(str(path), **kwargs)


def _chmod(path: Path, mode: int) -> None:
    try:
        if (path.stat().st_mode & 0o777) != mode:
            os.chmod(path, mode)
    except OSError as e:  # not the owner: say so, do not fail the server
        log.warning("cannot restrict %s to %o: %s", path, mode, e)
