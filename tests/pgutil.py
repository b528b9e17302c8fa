"""A real PostgreSQL with pgvector for tests, from the ``pgserver`` PyPI package (PostgreSQL 16
binaries and pgvector in a wheel; no system install, works in CI)."""

from __future__ import annotations

import contextlib
import re
from pathlib import Path
from typing import Iterator


def start_server(folder: Path) -> tuple[object, str]:
    """Start (or reuse) a server with its data under ``folder``; returns ``(server, url)``."""
    import pgserver

    srv = pgserver.get_server(str(folder), cleanup_mode="stop")
    return srv, srv.get_uri()


def db_url(server_url: str, db: str) -> str:
    """The server URL pointing at database ``db``."""
    return re.sub(r"/postgres(\?|$)", f"/{db}\\1", server_url, count=1)


@contextlib.contextmanager
def pg_database(server_url: str, db: str) -> Iterator[str]:
    """A fresh database (with the vector extension) for one test, dropped afterwards."""
    import psycopg

    with psycopg.connect(server_url, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{db}"')
    url = db_url(server_url, db)
    try:
        yield url
    finally:
        with contextlib.suppress(psycopg.Error), psycopg.connect(server_url, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')  # the server goes at the session's end anyway
