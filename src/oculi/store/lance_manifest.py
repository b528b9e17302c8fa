"""Read a Lance table's version manifests: which files each version needs.

``collections check`` and ``repair`` need to know, for each table version, which data,
deletion and index files it references, so that a damaged file can be traced to the versions
and rows it affects, and the latest version can be repaired by dropping exactly the fragments
that lost their files. The Python ``lancedb`` package does not expose that (the ``pylance``
wheel that does is another 83 MB copy of the same Rust core), so this module reads the few
fields it needs from the manifest's protobuf (Lance's ``protos/table.proto``, a stable,
versioned on-disk format). Anything it does not understand makes the manifest count as
unreadable, which is the safe answer.

Manifest file layout (Lance 0.2 format)::

    [u32 len][Transaction]  (optional)  ...  [u32 len][IndexSection] (optional)
    [u32 len][Manifest]  [i64 manifest position][u16 major][u16 minor]["LANC"]
"""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass, field
from pathlib import Path

MAGIC = b"LANC"
#: ``_versions`` file names: V2 naming stores ``u64::MAX - version`` (so names sort newest first).
_U64_MAX = 2**64 - 1


@dataclass(frozen=True)
class FragmentRef:
    """One fragment of a version: its data files, deletion file and row counts."""

    id: int
    data_files: tuple[str, ...]  # relative to the table directory (``data/…``)
    deletion_file: str | None  # relative to the table directory (``_deletions/…``)
    physical_rows: int
    deleted_rows: int

    @property
    def rows(self) -> int:
        return max(0, self.physical_rows - self.deleted_rows)

    @property
    def files(self) -> tuple[str, ...]:
        return self.data_files + ((self.deletion_file,) if self.deletion_file else ())


@dataclass(frozen=True)
class IndexRef:
    """One index of a version: its name, the field ids it covers, its directory."""

    uuid: str
    name: str
    fields: tuple[int, ...] = ()
    files: tuple[str, ...] = ()  # file names inside ``_indices/<uuid>/`` when the manifest lists them

    @property
    def directory(self) -> str:
        return f"_indices/{self.uuid}"


@dataclass(frozen=True)
class Manifest:
    """What one table version references."""

    version: int
    fragments: tuple[FragmentRef, ...] = ()
    indices: tuple[IndexRef, ...] = ()
    transaction_file: str | None = None  # relative to the table directory
    timestamp: float | None = None
    path: str = ""

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.fragments)

    def fragments_using(self, relpath: str) -> list[FragmentRef]:
        return [f for f in self.fragments if relpath in f.files]

    def indices_using(self, relpath: str) -> list[IndexRef]:
        return [i for i in self.indices if relpath.startswith(i.directory + "/")]

    def references(self, relpath: str) -> bool:
        return bool(self.fragments_using(relpath) or self.indices_using(relpath)) or relpath == self.transaction_file


class ManifestError(ValueError):
    """The manifest is truncated, garbled or not a Lance manifest."""


def version_from_name(name: str) -> int | None:
    """Table version of a ``_versions/*.manifest`` file name (either naming scheme)."""
    stem, _, ext = name.partition(".")
    if ext != "manifest" or not stem.isdigit():
        return None
    n = int(stem)
    return _U64_MAX - n if n > 2**63 else n


# --- protobuf wire format: just enough to walk messages -------------------------------------

def _varint(b: bytes, i: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if i >= len(b) or shift > 63:
            raise ManifestError("truncated varint")
        c = b[i]
        i += 1
        result |= (c & 0x7F) << shift
        shift += 7
        if c < 0x80:
            return result, i


def _fields(b: bytes) -> list[tuple[int, int | bytes]]:
    """``(field number, value)`` pairs of one message: ints for varints, bytes otherwise."""
    out: list[tuple[int, int | bytes]] = []
    i = 0
    while i < len(b):
        key, i = _varint(b, i)
        num, wire = key >> 3, key & 7
        if wire == 0:
            v, i = _varint(b, i)
            out.append((num, v))
        elif wire == 1:
            out.append((num, b[i : i + 8]))
            i += 8
        elif wire == 5:
            out.append((num, b[i : i + 4]))
            i += 4
        elif wire == 2:
            n, i = _varint(b, i)
            if i + n > len(b):
                raise ManifestError("truncated field")
            out.append((num, b[i : i + n]))
            i += n
        else:
            raise ManifestError(f"unknown wire type {wire}")
    if i != len(b):
        raise ManifestError("truncated message")
    return out


def _int(fs: list[tuple[int, int | bytes]], num: int, default: int = 0) -> int:
    for n, v in fs:
        if n == num and isinstance(v, int):
            return v
    return default


def _msg(fs: list[tuple[int, int | bytes]], num: int) -> bytes | None:
    for n, v in fs:
        if n == num and isinstance(v, bytes):
            return v
    return None


def _str(fs: list[tuple[int, int | bytes]], num: int) -> str:
    v = _msg(fs, num)
    return v.decode("utf-8") if v is not None else ""


def _block(data: bytes, pos: int) -> bytes:
    if pos < 0 or pos + 4 > len(data):
        raise ManifestError("section position outside the file")
    (n,) = struct.unpack_from("<I", data, pos)
    if pos + 4 + n > len(data):
        raise ManifestError("section runs past the end of the file")
    return data[pos + 4 : pos + 4 + n]


def _fragment(b: bytes) -> FragmentRef:
    fs = _fields(b)
    fid = _int(fs, 1)
    files = tuple("data/" + _str(_fields(v), 1) for n, v in fs if n == 2 and isinstance(v, bytes))
    deletion = None
    deleted = 0
    dmsg = _msg(fs, 3)
    if dmsg is not None:
        d = _fields(dmsg)
        ext = "bin" if _int(d, 1) == 1 else "arrow"
        deletion = f"_deletions/{fid}-{_int(d, 2)}-{_int(d, 3)}.{ext}"
        deleted = _int(d, 4)
    return FragmentRef(fid, files, deletion, _int(fs, 4), deleted)


def _index(b: bytes) -> IndexRef:
    fs = _fields(b)
    u = _msg(fs, 1)
    raw = _msg(_fields(u), 1) if u is not None else None
    if raw is None or len(raw) != 16:
        raise ManifestError("index without a uuid")
    packed = _msg(fs, 2)
    fields: tuple[int, ...] = ()
    if packed is not None:  # packed repeated int32
        vals, i = [], 0
        while i < len(packed):
            v, i = _varint(packed, i)
            vals.append(v)
        fields = tuple(vals)
    files = tuple(_str(_fields(v), 1) for n, v in fs if n == 10 and isinstance(v, bytes))
    return IndexRef(str(uuid.UUID(bytes=raw)), _str(fs, 3), fields, files)


def parse_manifest(data: bytes, *, path: str = "") -> Manifest:
    """Parse a manifest file's bytes.

    Raises:
        ManifestError: the bytes are not a complete Lance manifest.
    """
    if len(data) < 16 or data[-4:] != MAGIC:
        raise ManifestError("not a Lance manifest (too short or no end marker)")
    (pos,) = struct.unpack_from("<q", data, len(data) - 16)
    try:
        fs = _fields(_block(data, pos))
        version = _int(fs, 3)
        fragments = tuple(_fragment(v) for n, v in fs if n == 2 and isinstance(v, bytes))
        indices: tuple[IndexRef, ...] = ()
        section = _int(fs, 6, -1)
        if section >= 0:
            indices = tuple(_index(v) for n, v in _fields(_block(data, section)) if n == 1 and isinstance(v, bytes))
        tx = _str(fs, 12)
        ts = None
        tmsg = _msg(fs, 7)
        if tmsg is not None:
            t = _fields(tmsg)
            ts = _int(t, 1) + _int(t, 2) / 1e9
    except (IndexError, struct.error, UnicodeDecodeError) as e:
        raise ManifestError(f"garbled manifest ({e})") from None
    if version <= 0:
        raise ManifestError("manifest has no version number")
    return Manifest(version, fragments, indices, f"_transactions/{tx}" if tx else None, ts, path)


def read_manifest(path: Path) -> Manifest:
    """Parse one ``_versions/*.manifest`` file. Raises ``ManifestError`` or ``OSError``."""
    m = parse_manifest(path.read_bytes(), path=path.name)
    expected = version_from_name(path.name)
    if expected is not None and expected != m.version:
        raise ManifestError(f"file name says version {expected}, contents say {m.version}")
    return m


@dataclass
class TableVersions:
    """Every manifest of one table: the readable ones by version, and the unreadable ones."""

    readable: dict[int, Manifest] = field(default_factory=dict)
    unreadable: dict[str, tuple[int | None, str]] = field(default_factory=dict)  # file name -> (version, why)

    @property
    def latest(self) -> Manifest | None:
        return self.readable[max(self.readable)] if self.readable else None

    @property
    def newest_version(self) -> int | None:
        """The highest version number on disk, readable or not (what Lance would open)."""
        vs = list(self.readable) + [v for v, _ in self.unreadable.values() if v is not None]
        return max(vs) if vs else None


def read_versions(table_dir: Path, *, newest_only: bool = False) -> TableVersions:
    """Read the manifests under ``table_dir/_versions`` (with ``newest_only``: from the newest
    down to the first readable one, which is all that opening the table needs)."""
    out = TableVersions()
    vdir = table_dir / "_versions"
    if not vdir.is_dir():
        return out
    named = sorted(((v, p) for p in vdir.iterdir() if (v := version_from_name(p.name)) is not None),
                   key=lambda vp: -vp[0])
    for v, p in named:
        try:
            out.readable[v] = read_manifest(p)
        except (ManifestError, OSError) as e:
            out.unreadable[p.name] = (v, str(e))
            continue
        if newest_only:
            break
    return out
