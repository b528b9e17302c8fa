"""Trained models on disk: versioned, checksummed, verified on load.

What ``oculi train`` makes (a classifier head, a retrieval adapter, an answer model, a LoRA
adapter) is kept under ``OCULI_HOME/models`` — the folder of models oculi makes, whose
``NAME/model.toml`` (when present) the model configuration reads as ``[models.NAME]``::

    models/
      defect-type/
        v1/  manifest.json  weights.safetensors  confusion.png
        v2/  ...                       # training the same name again adds a version
      .work/defect-type/checkpoint.pt  # training in progress (``--resume``)

``manifest.json`` names the kind, the version, what the model needs as input (its feature
space), its classes or answers, the metrics measured when it was trained, and the SHA-256 of
every other file of the version. A version is written into a temporary folder and renamed into
place, so a crash never leaves a half-written version; ``load`` uses the newest version and
checks every file against the manifest (``ModelAssetError``, exit 3, naming the fix, when one
is missing or damaged). ``check`` verifies all of them (``oculi train check``).

Example:
    >>> import tempfile
    >>> store = TrainedStore(tempfile.mkdtemp())
    >>> t = store.save("demo", "classifier", {"w.bin": b"1234"}, {"classes": ["a", "b"]})
    >>> (t.name, t.version, store.load("demo").manifest["classes"])
    ('demo', 1, ['a', 'b'])
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Mapping

from oculi.core.errors import InputError, ModelAssetError, NotFoundError

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
MANIFEST_FORMAT = "oculi-trained"
MANIFEST_VERSION = 1  # of the manifest layout; a newer one is refused
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_VERSION_RE = re.compile(r"^v([0-9]{1,6})$")


class TrainedKind(StrEnum):
    """What a trained model is."""

    CLASSIFIER = "classifier"  # a head over visual features: image → one of the user's classes
    ADAPTER = "adapter"  # a contrastive projection: text vectors → the visual feature space
    VQA = "vqa"  # image features + question embedding → one of the training answers
    LORA = "lora"  # a peft LoRA adapter for a transformers vision-language model
    INSPECTOR = "inspector"  # a PatchCore memory bank of good parts' patch features (oculi inspect)


def validate_name(name: str) -> str:
    """A trained model's name: 1-64 of ``[A-Za-z0-9_.-]``, starting alphanumeric, never a path."""
    n = name.strip() if isinstance(name, str) else ""
    if not NAME_RE.fullmatch(n) or ".." in n:
        raise InputError(f"invalid model name {name!r}: use 1-64 letters, digits, '_', '-' or '.', starting with a letter or digit")
    return n


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class Trained:
    """One verified version of a trained model: its folder and manifest."""

    name: str
    version: int
    path: Path
    manifest: dict[str, Any]

    @property
    def kind(self) -> TrainedKind:
        return TrainedKind(self.manifest["kind"])

    def file(self, name: str) -> Path:
        """A file of this version (``ModelAssetError`` when the manifest does not list it)."""
        if name not in self.manifest.get("files", {}):
            raise ModelAssetError(f"trained model {self.name!r} v{self.version} has no file {name!r}")
        return self.path / name

    def to_dict(self) -> dict[str, Any]:
        m = self.manifest
        return {"name": self.name, "version": self.version, "kind": m["kind"], "path": str(self.path),
                "created_at": m.get("created_at"), "feature_space": m.get("feature_space"),
                "classes": m.get("classes"), "metrics": m.get("metrics", {})}


@dataclass(frozen=True)
class TrainedState:
    """What ``check`` found for one version: ``ok``, ``damaged`` (with what) or ``unreadable``."""

    name: str
    version: int
    kind: str | None
    state: str
    detail: str
    path: Path

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "kind": self.kind, "state": self.state,
                "detail": self.detail, "path": str(self.path)}


class TrainedStore:
    """The trained models under one folder (``Settings.home / "models"``).

    Args:
        root: The folder; created on the first ``save``.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @classmethod
    def for_home(cls, home: str | Path) -> "TrainedStore":
        return cls(Path(home) / "models")

    # --- where things are ----------------------------------------------------------------------
    def work_dir(self, name: str) -> Path:
        """Where training in progress keeps its checkpoint (``--resume``)."""
        return self.root / ".work" / validate_name(name)

    def versions(self, name: str) -> list[int]:
        """The complete versions of a model, oldest first (empty when there is none)."""
        d = self.root / validate_name(name)
        out = []
        try:
            entries = list(d.iterdir())
        except (FileNotFoundError, NotADirectoryError):
            return []
        for p in entries:
            m = _VERSION_RE.fullmatch(p.name)
            if m and (p / MANIFEST).is_file():
                out.append(int(m.group(1)))
        return sorted(out)

    def names(self) -> list[str]:
        """Every trained model that has at least one complete version, sorted."""
        try:
            entries = sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))
        except FileNotFoundError:
            return []
        return [n for n in entries if NAME_RE.fullmatch(n) and self.versions(n)]

    # --- write ---------------------------------------------------------------------------------
    def save(self, name: str, kind: str, files: Mapping[str, bytes | Path], manifest: Mapping[str, Any]) -> Trained:
        """Write a new version of ``name`` atomically and return it (verified).

        Args:
            name: The model's name.
            kind: A ``TrainedKind``.
            files: File name → bytes, or → a path whose file (or folder) is copied in.
            manifest: What to record besides kind, version, files and creation time.
        """
        n = validate_name(name)
        kind = TrainedKind(kind)
        folder = self.root / n
        folder.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=folder))
        try:
            for fname, content in files.items():
                if "/" in fname or fname.startswith(".") or fname == MANIFEST:
                    raise ValueError(f"bad file name {fname!r} for a trained model")
                dest = tmp / fname
                if isinstance(content, Path):
                    if content.is_dir():
                        shutil.copytree(content, dest)
                    else:
                        shutil.copyfile(content, dest)
                else:
                    dest.write_bytes(content)
            sums = {p.relative_to(tmp).as_posix(): sha256_file(p) for p in sorted(tmp.rglob("*")) if p.is_file()}
            taken = [int(m.group(1)) for p in folder.iterdir() if (m := _VERSION_RE.fullmatch(p.name))]
            version = max(taken, default=0) + 1  # past any wreck too: a version number is never reused
            doc = {**manifest, "format": MANIFEST_FORMAT, "manifest_version": MANIFEST_VERSION, "name": n,
                   "kind": str(kind), "version": version, "created_at": time.time(), "files": sums}
            (tmp / MANIFEST).write_text(json.dumps(doc, indent=2, ensure_ascii=False), encoding="utf-8")
            _fsync_tree(tmp)
            os.rename(tmp, folder / f"v{version}")
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        log.info("saved trained model %s v%d (%s)", n, version, kind)
        return self.load(n, version)

    def remove(self, name: str, version: int | None = None) -> list[int]:
        """Delete every version of ``name`` (or one); returns the versions removed."""
        n = validate_name(name)
        have = self.versions(n)
        if not have:
            raise NotFoundError(self._unknown(n))
        gone = have if version is None else [version]
        if version is not None and version not in have:
            raise NotFoundError(f"trained model {n!r} has no version {version}; versions: {', '.join(map(str, have))}")
        for v in gone:
            shutil.rmtree(self.root / n / f"v{v}")
        if version is None or not self.versions(n):  # nothing left: the folder (and its model.toml) goes too
            shutil.rmtree(self.root / n, ignore_errors=True)
            shutil.rmtree(self.root / ".work" / n, ignore_errors=True)
        return gone

    # --- read ----------------------------------------------------------------------------------
    def load(self, name: str, version: int | None = None, *, verify: bool = True) -> Trained:
        """The newest (or the given) version of ``name``, its files checked against the manifest.

        Raises:
            NotFoundError: no such model or version (listing the trained models).
            ModelAssetError: the manifest or a file is unreadable, missing or damaged.
        """
        n = validate_name(name)
        have = self.versions(n)
        if not have:
            raise NotFoundError(self._unknown(n))
        v = have[-1] if version is None else version
        if v not in have:
            raise NotFoundError(f"trained model {n!r} has no version {v}; versions: {', '.join(map(str, have))}")
        path = self.root / n / f"v{v}"
        manifest = self._read_manifest(n, v, path)
        if verify:
            problem = _verify(path, manifest)
            if problem:
                again = (f"oculi inspect fit --good DIR --name {n}" if manifest["kind"] == TrainedKind.INSPECTOR
                         else f"oculi train {manifest['kind']} ... --name {n}")
                raise ModelAssetError(f"trained model {n!r} v{v} is damaged: {problem}. Train it again "
                                      f"(`{again}`) or remove it (`oculi train remove {n}`)")
        return Trained(n, v, path, manifest)

    def list(self) -> list[Trained]:
        """The newest version of every trained model (unverified; ``check`` verifies)."""
        out = []
        for n in self.names():
            try:
                out.append(self.load(n, verify=False))
            except ModelAssetError as e:
                log.warning("%s", e)
        return out

    def check(self) -> list[TrainedState]:
        """Verify every version of every trained model."""
        out = []
        for n in self.names():
            for v in self.versions(n):
                path = self.root / n / f"v{v}"
                try:
                    m = self._read_manifest(n, v, path)
                except ModelAssetError as e:
                    out.append(TrainedState(n, v, None, "unreadable", str(e), path))
                    continue
                problem = _verify(path, m)
                out.append(TrainedState(n, v, m.get("kind"), "damaged" if problem else "ok", problem or "checksums match", path))
        return out

    def _read_manifest(self, name: str, version: int, path: Path) -> dict[str, Any]:
        try:
            m = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as e:
            raise ModelAssetError(f"trained model {name!r} v{version}: its manifest cannot be read ({e}); "
                                  f"remove it with `oculi train remove {name}`") from None
        if not isinstance(m, dict) or m.get("format") != MANIFEST_FORMAT or not isinstance(m.get("files"), dict):
            raise ModelAssetError(f"trained model {name!r} v{version}: {MANIFEST} is not an oculi trained-model manifest")
        if int(m.get("manifest_version", 0)) > MANIFEST_VERSION:
            raise ModelAssetError(f"trained model {name!r} v{version} was written by a newer oculi "
                                  f"(manifest version {m['manifest_version']}); upgrade oculi to use it")
        try:
            TrainedKind(m.get("kind"))
        except ValueError:
            raise ModelAssetError(f"trained model {name!r} v{version}: unknown kind {m.get('kind')!r}") from None
        return m

    def _unknown(self, name: str) -> str:
        have = self.names()
        return (f"no trained model named {name!r}; trained models: {', '.join(have)}" if have
                else f"no trained model named {name!r}; there are none yet (train one with `oculi train classifier DIR --name NAME`)")


def _verify(path: Path, manifest: Mapping[str, Any]) -> str | None:
    for fname, want in manifest["files"].items():
        p = path / fname
        try:
            got = sha256_file(p)
        except FileNotFoundError:
            return f"{fname} is missing"
        except OSError as e:
            return f"{fname} cannot be read ({e.strerror or e})"
        if got != want:
            return f"{fname} fails its SHA-256 check"
    return None


def _fsync_tree(folder: Path) -> None:
    for p in folder.rglob("*"):
        if p.is_file():
            with open(p, "rb") as f:
                os.fsync(f.fileno())
