"""Model assets: the catalogue, and fetching, verifying and locating the files."""

from oculi.assets.catalog import CATALOG, Asset, AssetFile, Registry, get_asset
from oculi.assets.manager import AssetStatus, asset_path, list_assets, pull_assets, require_asset

__all__ = [
    "CATALOG",
    "Asset",
    "AssetFile",
    "AssetStatus",
    "Registry",
    "asset_path",
    "get_asset",
    "list_assets",
    "pull_assets",
    "require_asset",
]
