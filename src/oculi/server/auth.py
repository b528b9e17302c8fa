"""API keys: creation, hashed storage, verification and scopes.

A key looks like ``oculi_<id>_<secret>``: ``id`` is 12 hex characters that name the key (it
is what ``oculi keys list`` shows and ``revoke`` takes); ``secret`` is 32 random bytes in
URL-safe base64. Only ``sha256(salt || secret)`` with a per-key random salt is stored, in a
SQLite file under ``<home>/server/keys.db``; the secret is printed once at creation and can
never be read back. Verification looks the row up by id and compares the hashes with
``hmac.compare_digest`` (constant time); an unknown id is compared against a dummy hash, so it
takes the same path as a wrong secret. The file is 0600 in a 0700 folder. A 256-bit random
secret makes a slow password hash unnecessary, and SHA-256 keeps verification off the
request's critical path.

Scopes are ordered ``read < write < admin``:

* read: run the models (caption, ask, detect, read, classify, chat, embeddings), list and
  browse collections, search, see jobs;
* write: also create collections, upload images into them, cancel jobs;
* admin: also delete collections and read the metrics.

A key may be bound to one collection; it then sees only that collection: listing shows only
it, and naming any other one is refused with 403 whether or not that collection exists.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any

from oculi.core.errors import InputError, NotFoundError, StoreUnavailableError
from oculi.server.private import connect_private
from oculi.store.base import validate_collection_name

SCHEMA_VERSION = 1
KEY_PREFIX = "oculi_"
_KEY_RE = re.compile(r"^oculi_([0-9a-f]{12})_([A-Za-z0-9_-]{20,100})$")


class Scope(IntEnum):
    READ = 1
    WRITE = 2
    ADMIN = 3

    @classmethod
    def parse(cls, name: str) -> "Scope":
        try:
            return cls[name.strip().upper()]
        except KeyError:
            raise InputError(f"unknown scope {name!r}; use read, write or admin") from None

    def __str__(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class Principal:
    """Who is calling: a key's id, scope and optional collection binding."""

    key_id: str
    scope: Scope
    collection: str | None = None
    name: str = ""

    def can(self, scope: Scope) -> bool:
        return self.scope >= scope

    def may_see(self, collection: str) -> bool:
        return self.collection is None or self.collection == collection

    def to_dict(self) -> dict[str, Any]:
        return {"key_id": self.key_id, "scope": str(self.scope), "collection": self.collection, "name": self.name}


ANONYMOUS_ADMIN = Principal(key_id="local", scope=Scope.ADMIN, collection=None, name="no-auth (localhost)")


@dataclass(frozen=True)
class KeyInfo:
    key_id: str
    name: str
    scope: Scope
    collection: str | None
    created: float
    revoked: float | None
    last_used: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "key_id": self.key_id,
            "name": self.name,
            "scope": str(self.scope),
            "collection": self.collection,
            "created": self.created,
            "revoked": self.revoked,
            "last_used": self.last_used,
        }


def _hash(salt: bytes, secret: str) -> bytes:
    return hashlib.sha256(salt + secret.encode("utf-8", "surrogatepass")).digest()


_DUMMY_SALT = secrets.token_bytes(16)
_DUMMY_HASH = _hash(_DUMMY_SALT, secrets.token_urlsafe(32))


def open_keys(settings: Any) -> "KeyStore":
    """The key store for these settings: in the PostgreSQL store when collections are there
    (every replica then knows every key), else ``<home>/server/keys.db``."""
    from oculi.store import parse_store_url

    kind, url = parse_store_url(settings.store)
    if kind == "postgresql":
        return PgKeyStore(url)
    return KeyStore(settings.home)


class KeyStore:
    """The API keys of one oculi home. Thread-safe; several processes may share the file."""

    TABLE = "keys"

    def __init__(self, home: Path) -> None:
        self.path = Path(home) / "server" / "keys.db"
        self._lock = threading.Lock()
        self._db = connect_private(self.path, check_same_thread=False, timeout=10, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._init()
        self._touched: dict[str, float] = {}

    def _init(self) -> None:
        with self._lock:
            self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            row = self._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if row is None:
                self._db.execute(
                    """CREATE TABLE IF NOT EXISTS keys (
                        key_id TEXT PRIMARY KEY, name TEXT NOT NULL, scope INTEGER NOT NULL,
                        collection TEXT, salt BLOB NOT NULL, hash BLOB NOT NULL,
                        created REAL NOT NULL, revoked REAL, last_used REAL)"""
                )
                self._db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            elif int(row[0]) > SCHEMA_VERSION:
                raise InputError(f"{self.path} has key schema {row[0]}, newer than this oculi ({SCHEMA_VERSION}); upgrade oculi")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # --- management ----------------------------------------------------------------------
    def create(self, scope: Scope | str, *, collection: str | None = None, name: str = "") -> tuple[str, KeyInfo]:
        """Create a key; returns ``(secret_key, info)``. The secret is not stored."""
        sc = Scope.parse(scope) if isinstance(scope, str) else Scope(scope)
        if collection is not None:
            validate_collection_name(collection)
        name = (name or "").strip()[:100]
        key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        salt = secrets.token_bytes(16)
        now = time.time()
        with self._lock:
            self._db.execute(
                f"INSERT INTO {self.TABLE} (key_id, name, scope, collection, salt, hash, created) VALUES (?,?,?,?,?,?,?)",
                (key_id, name, int(sc), collection, salt, _hash(salt, secret), now),
            )
        info = KeyInfo(key_id, name, sc, collection, now, None, None)
        return f"{KEY_PREFIX}{key_id}_{secret}", info

    def list(self, *, include_revoked: bool = False) -> list[KeyInfo]:
        q = f"SELECT key_id, name, scope, collection, created, revoked, last_used FROM {self.TABLE}"
        if not include_revoked:
            q += " WHERE revoked IS NULL"
        with self._lock:
            rows = self._db.execute(q + " ORDER BY created").fetchall()
        return [KeyInfo(r[0], r[1], Scope(r[2]), r[3], r[4], r[5], r[6]) for r in rows]

    def revoke(self, key_id: str) -> None:
        key_id = key_id.strip()
        if key_id.startswith(KEY_PREFIX):  # a whole key was pasted: take its id
            m = _KEY_RE.match(key_id)
            key_id = m.group(1) if m else key_id
        with self._lock:
            cur = self._db.execute(f"UPDATE {self.TABLE} SET revoked=? WHERE key_id=? AND revoked IS NULL", (time.time(), key_id))
        if cur.rowcount == 0:
            raise NotFoundError(f"no active key with id {key_id!r}; see `oculi keys list`")

    # --- verification --------------------------------------------------------------------
    def verify(self, presented: str) -> Principal | None:
        """The principal a presented key stands for, or None if it is unknown/revoked/wrong."""
        m = _KEY_RE.fullmatch(presented.strip()) if presented else None
        key_id, secret = (m.group(1), m.group(2)) if m else (None, presented or "")
        row = None
        if key_id is not None:
            with self._lock:
                row = self._db.execute(
                    f"SELECT name, scope, collection, salt, hash, revoked FROM {self.TABLE} WHERE key_id=?", (key_id,)
                ).fetchone()
        # An unknown id is checked against a dummy hash: every refusal hashes and compares
        # once, so the time taken does not tell whether a key id exists.
        salt, stored = (row[3], row[4]) if row is not None else (_DUMMY_SALT, _DUMMY_HASH)
        ok = hmac.compare_digest(_hash(salt, secret), stored)
        if row is None or not ok or row[5] is not None:  # unknown, wrong secret, revoked
            return None
        name, scope, collection = row[0], row[1], row[2]
        self._touch(key_id)
        return Principal(key_id=key_id, scope=Scope(scope), collection=collection, name=name)

    def _touch(self, key_id: str) -> None:
        now = time.time()
        if now - self._touched.get(key_id, 0.0) < 60:
            return
        self._touched[key_id] = now
        try:
            with self._lock:
                self._db.execute(f"UPDATE {self.TABLE} SET last_used=? WHERE key_id=?", (now, key_id))
        except Exception:  # noqa: BLE001 - a busy database must not fail the request
            pass


class _PgKeysDb:
    """The few calls ``KeyStore`` makes on its SQLite connection, on a PostgreSQL one that comes
    back after a server restart (``oculi.store.pg_store.PgConnection``: a lookup that met the
    ended connection runs again, a change does not; while the server is down, 503 / exit 7)."""

    def __init__(self, url: str) -> None:
        import psycopg

        from oculi.store.pg_store import PgConnection, redact

        def connect() -> Any:
            try:
                return psycopg.connect(url, autocommit=True, connect_timeout=10)
            except psycopg.OperationalError as e:
                raise StoreUnavailableError(f"cannot connect to the PostgreSQL store {redact(url)}: "
                                            f"{str(e).strip().splitlines()[0]}") from None

        self.conn = PgConnection(connect, redact(url))

    def execute(self, sql: str, args: tuple = ()) -> Any:
        return self.conn.execute(sql.replace("?", "%s"), args)

    def close(self) -> None:
        self.conn.close()


class PgKeyStore(KeyStore):
    """API keys in the PostgreSQL store's database (table ``oculi_keys``), shared by every
    server replica: a key created on one (``oculi --store postgresql://... keys create``) is
    accepted by all, and revoking it anywhere revokes it everywhere."""

    TABLE = "oculi_keys"

    def __init__(self, url: str) -> None:
        from oculi.store.pg_store import redact

        self.path = Path(redact(url))
        self._lock = threading.Lock()
        self._db = _PgKeysDb(url)
        self._init()
        self._touched: dict[str, float] = {}

    def _init(self) -> None:
        with self._lock:
            self._db.execute(
                """CREATE TABLE IF NOT EXISTS oculi_keys (
                    key_id text PRIMARY KEY, name text NOT NULL, scope integer NOT NULL, collection text,
                    salt bytea NOT NULL, hash bytea NOT NULL, created double precision NOT NULL,
                    revoked double precision, last_used double precision)"""
            )
