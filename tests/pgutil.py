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


class RestartableServer:
    """A PostgreSQL server of its own that a test stops and starts again on the same data folder
    and socket (so the same URL), to see what survives a restart. Every wait is bounded: pg_ctl
    waits at most ``WAIT_S`` and is killed if it outlives that by much."""

    WAIT_S = 30

    def __init__(self, folder: Path) -> None:
        self.srv, self.url = start_server(folder)
        self.socket_dir = self.srv.get_postmaster_info().socket_dir

    def _pg_ctl(self, *args: str) -> None:
        from pgserver._commands import pg_ctl

        pg_ctl(["-w", "-t", str(self.WAIT_S), *args], pgdata=self.srv.pgdata, user=self.srv.system_user,
               timeout=self.WAIT_S + 15)

    def stop(self) -> None:
        """Shut the server down (``-m fast``: sessions are ended, as in a real restart)."""
        self._pg_ctl("-m", "fast", "stop")

    def start(self) -> None:
        """Start it again with the options pgserver gave it: same data, same socket."""
        from pgserver.utils import PostmasterInfo

        self._pg_ctl("-o", '-h ""', "-o", f"-k {self.socket_dir}", "-l", str(self.srv.log), "start")
        # pgserver stops the postmaster it knows of at cleanup: tell it of the new one
        self.srv._postmaster_info = PostmasterInfo.read_from_pgdata(self.srv.pgdata)

    def cleanup(self) -> None:
        self.srv.cleanup()
