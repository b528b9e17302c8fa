"""Fixtures for the server tests: a test double for the Engine, a tmp home, keys, a client.

The double implements the Engine's methods with the real image loader (so limits and bad
bytes behave as in production) and fixed, small results, so these tests need no models.
"""

from __future__ import annotations

import base64
import hashlib
import io
import threading
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from oculi.config import Settings
from oculi.core.errors import InputError
from oculi.core.types import (
    Answer,
    AnswerKind,
    Box,
    Caption,
    ClassScore,
    Classification,
    DetectedObject,
    Detections,
    Evidence,
    Label,
    Observation,
    Reading,
    TextLine,
)
from oculi.imageio import LoadedImage, load_image_bytes
from oculi.server.lanes import thread_nice


class FakeEngine:
    """Engine-shaped test double: real decoding and limits, canned perception."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.calls: list[str] = []
        self.threads: list[tuple[str, int, str]] = []  # (call, nice value and name of the thread it ran in)
        self.warmed = False
        self.lock = threading.Lock()

    def warmup(self) -> None:
        self.warmed = True

    def list_models(self, *, health: bool = True) -> dict[str, Any]:
        # the real listing of this home's configured models (no health check: that would load them)
        from oculi.engine import Engine

        return Engine(self.settings).list_models(health=False)

    def load_image(self, source: Any) -> LoadedImage:
        if isinstance(source, LoadedImage):
            return source
        if isinstance(source, (bytes, bytearray)):
            return load_image_bytes(bytes(source), max_bytes=self.settings.max_image_bytes, max_pixels=self.settings.max_image_pixels)
        raise InputError(f"cannot read an image from a {type(source).__name__}")

    def _record(self, name: str) -> None:
        with self.lock:
            self.calls.append(name)

    def observe(self, source: Any, *, ocr: bool = True) -> Observation:
        li = self.load_image(source)
        self._record("observe")
        self.threads.append(("observe", thread_nice(), threading.current_thread().name))
        w, h = li.info.width, li.info.height
        dog = DetectedObject("dog", 0.9, Box(0, 0, w / 2, h / 2), colour="brown")
        v = self._image_vec(li)
        return Observation(
            image=li.info, objects=(dog,), labels=(Label("golden retriever", 0.8),),
            text=(TextLine("HELLO", 0.95, Box(1, 1, 10, 5)),), embedding=v,
        )

    def observe_many(self, sources: Sequence[Any], *, batch_size: int = 8, ocr: bool = True):
        from oculi.core.errors import OculiError

        for src in sources:
            try:
                yield src, self.observe(src, ocr=ocr)
            except OculiError as e:
                yield src, e

    def describe_observation(self, observation: Observation, *, detailed: bool = False) -> str:
        return f"A photo of a brown dog ({observation.image.width}x{observation.image.height})."

    def caption(self, source: Any, *, detailed: bool = False) -> Caption:
        obs = self.observe(source)
        self._record("caption")
        return Caption("A photo of a brown dog, with text reading \"HELLO\"." + (" It is detailed." if detailed else ""), obs)

    def ask(self, source: Any, question: str) -> Answer:
        q = (question or "").strip()
        if not q:
            raise InputError("the question is empty")
        self.observe(source)
        self._record("ask")
        return Answer(q, "1 — there is one dog.", 0.9, AnswerKind.COUNT, (Evidence("object", "dog", 0.9, Box(0, 0, 1, 1)),))

    def detect(self, source: Any, *, min_score: float = 0.0) -> Detections:
        obs = self.observe(source)
        self._record("detect")
        return Detections(obs.image, tuple(o for o in obs.objects if o.score >= min_score))

    def read(self, source: Any) -> Reading:
        obs = self.observe(source)
        self._record("read")
        return Reading(obs.image, obs.text)

    def classify(self, source: Any, labels: str | list[str]) -> Classification:
        labs = [x.strip() for x in (labels.split(",") if isinstance(labels, str) else labels) if x.strip()]
        if len(labs) < 2:
            raise InputError("give at least two distinct labels")
        self.observe(source)
        self._record("classify")
        p = [0.7] + [0.3 / (len(labs) - 1)] * (len(labs) - 1)
        return Classification(tuple(ClassScore(lab, s) for lab, s in zip(labs, p)))

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        from oculi.server.app import WARMUP_TEXTS

        self.threads.append(("embed_texts", thread_nice(), threading.current_thread().name))
        if list(texts) != WARMUP_TEXTS:  # the server's own warm-up is not a request's call
            self._record("embed_texts")
        out = []
        for t in texts:
            v = np.frombuffer(hashlib.sha256(t.encode()).digest() * 12, dtype=np.uint8).astype(np.float32)[:384] - 127.5
            out.append(v / np.linalg.norm(v))
        return np.stack(out)

    @staticmethod
    def _image_vec(li: LoadedImage) -> np.ndarray:
        v = np.frombuffer(bytes.fromhex(li.info.sha256) * 32, dtype=np.uint8).astype(np.float32)[:1024] - 127.5
        return v / np.linalg.norm(v)

    def embed_images(self, sources: Sequence[Any]) -> np.ndarray:
        self._record("embed_images")
        return np.stack([self._image_vec(self.load_image(s)) for s in sources])


def png_bytes(w: int = 64, h: int = 48, colour: tuple[int, int, int] = (200, 30, 30), fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), colour).save(buf, format=fmt)
    return buf.getvalue()


def data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()


@pytest.fixture()
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture()
def settings(home: Path) -> Settings:
    return Settings(home=home, max_image_bytes=2_000_000, max_image_pixels=4_000_000)


@pytest.fixture()
def fake_engine(settings: Settings) -> FakeEngine:
    return FakeEngine(settings)


@pytest.fixture()
def make_client(settings: Settings, fake_engine: FakeEngine):
    """Build a TestClient around create_app with overrides; closes them at the end."""
    from oculi.server.app import create_app
    from oculi.server.config import ServerConfig

    clients: list[TestClient] = []

    def make(*, auth: bool = True, base_url: str = "http://127.0.0.1:8000", store_factory: Any = None,
             raise_server_exceptions: bool = True, **cfg: Any) -> TestClient:
        config = ServerConfig(**{"rate_per_minute": 0, **cfg})
        app = create_app(settings, fake_engine, auth=auth, config=config, store_factory=store_factory)
        c = TestClient(app, base_url=base_url, raise_server_exceptions=raise_server_exceptions)
        c.__enter__()
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.__exit__(None, None, None)


@pytest.fixture()
def keys(settings: Settings) -> dict[str, str]:
    """Keys of each scope, and collection-bound ones for 'alpha'."""
    from oculi.server.auth import KeyStore

    ks = KeyStore(settings.home)
    out = {
        "read": ks.create("read", name="r")[0],
        "write": ks.create("write", name="w")[0],
        "admin": ks.create("admin", name="a")[0],
        "alpha_read": ks.create("read", collection="alpha", name="ar")[0],
        "alpha_write": ks.create("write", collection="alpha", name="aw")[0],
        "alpha_admin": ks.create("admin", collection="alpha", name="aa")[0],
    }
    ks.close()
    return out


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(params=["sqlite", "postgresql"])
def job_store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """Where a footage or report queue keeps its jobs: ``None`` (SQLite under the home, as with
    the embedded store) or a ``PgStore`` on a fresh database (jobs shared by replicas)."""
    if request.param == "sqlite":
        yield None
        return
    import uuid

    from oculi.store.pg_store import PgStore
    from tests.pgutil import pg_database

    with pg_database(request.getfixturevalue("pg_server"), f"j_{uuid.uuid4().hex[:12]}") as url:
        store = PgStore(url, home=tmp_path)
        yield store
        store.close()
