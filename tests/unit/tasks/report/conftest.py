"""The hand-made footage collection (no models) the incident cross-checks read events from."""

from __future__ import annotations

from pathlib import Path

import pytest

from oculi.store.lance import LanceStore
from tests.footage_records import fill_collection


@pytest.fixture()
def coll(tmp_path: Path):
    c = LanceStore(tmp_path / "c").create_collection("footage")
    fill_collection(c)
    return c
