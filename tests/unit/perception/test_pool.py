"""PerceptionWorker and PerceptionPool on the real models: same observations as one perceiver,
in order, errors in place, and no worker left behind after an exception or Ctrl-C."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data

from oculi.config import Settings
from oculi.core.errors import ConfigError, InputError, ModelAssetError, OculiError
from oculi.imageio import load_image, load_image_bytes
from oculi.perception.pipeline import FACE_GATE, PERSON, BuiltinPerceiver
from oculi.perception.pool import PerceptionPool
from oculi.perception.worker import PerceptionWorker, single_thread_runtime

pytestmark = pytest.mark.slow

NAMES = ("astronaut", "coffee", "chelsea", "page", "rocket")


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    d = tmp_path_factory.mktemp("pool-photos")
    out = []
    for name in NAMES:
        p = d / f"{name}.jpg"
        Image.fromarray(getattr(data, name)()).convert("RGB").save(p, quality=92)
        out.append(p)
    return out


@pytest.fixture(scope="module")
def reference(photos: list[Path]) -> list:
    """The single-perceiver path: the engine's own perceiver, default threads."""
    per = BuiltinPerceiver(Settings())
    try:
        per.load()
    except ModelAssetError as e:
        pytest.skip(f"model assets missing: {e}")
    return [per.observe(li.image, li.info) for li in (load_image(p) for p in photos)]


def _same(a: list, b: list) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x == y  # objects, labels, text, colours, image info
        np.testing.assert_allclose(x.embedding, y.embedding, atol=1e-5)


def _no_new_workers(before: set, seconds: float = 15.0) -> bool:
    """No worker beyond ``before`` is alive within ``seconds`` (a worker process the executor was
    still starting while the pool closed exits once it finds the pool's queue shut)."""
    end = time.monotonic() + seconds
    while _workers() - before:
        if time.monotonic() > end:
            return False
        time.sleep(0.05)
    return True


def _workers() -> set:
    """Live perception worker threads and child processes (other tests' engines may own some)."""
    return {t for t in threading.enumerate() if t.name.startswith("oculi-perceive")} | set(
        multiprocessing.active_children())


@pytest.mark.parametrize("kind", ["thread", "process"])
def test_pool_gives_the_single_perceiver_observations_in_order(photos: list[Path], reference: list, kind: str) -> None:
    loaded = [load_image(p) for p in photos] * 2  # more images than workers x in-flight tasks
    before = _workers()
    with PerceptionPool(Settings(), workers=2, kind=kind) as pool:
        got = list(pool.observe(iter(loaded), task_images=1))
    _same(got, reference * 2)
    assert _no_new_workers(before)


def test_worker_observes_like_the_perceiver_and_pins_threads(photos: list[Path], reference: list) -> None:
    import cv2
    from threadpoolctl import threadpool_info

    w = PerceptionWorker(Settings(threads=2))
    assert w.settings.threads == 1  # one intra-op thread per session, whatever the caller set
    _same(w.observe([load_image(p) for p in photos]), reference)
    assert cv2.getNumThreads() == 1
    numpy_blas = [i for i in threadpool_info() if i["user_api"] == "blas" and "numpy" in i["filepath"]]
    assert numpy_blas and all(i["num_threads"] == 1 for i in numpy_blas)
    single_thread_runtime()  # idempotent


def test_engine_observe_many_keeps_order_and_puts_errors_in_place(photos: list[Path], reference: list,
                                                                  tmp_path: Path) -> None:
    from oculi.engine import Engine

    bad = tmp_path / "broken.jpg"
    bad.write_bytes(photos[0].read_bytes()[:200])  # truncated
    sources = [bad, photos[0], tmp_path / "missing.jpg", *photos[1:], bad]
    eng = Engine(Settings(perception_workers=2))
    before = _workers()
    try:
        out = list(eng.observe_many(sources))
    finally:
        eng.close()
    assert [src for src, _ in out] == sources
    assert [type(r) for _, r in out].count(InputError) == 3
    _same([r for _, r in out if not isinstance(r, OculiError)], reference)
    assert _no_new_workers(before)


@pytest.mark.parametrize("kind", ["thread", "process"])
def test_workers_are_stopped_when_the_consumer_raises(photos: list[Path], kind: str) -> None:
    loaded = [load_image(p) for p in photos] * 4
    before = _workers()
    with pytest.raises(RuntimeError, match="consumer failed"):
        with PerceptionPool(Settings(), workers=2, kind=kind) as pool:
            for i, _obs in enumerate(pool.observe(loaded, task_images=1)):
                if i == 1:
                    raise RuntimeError("consumer failed")
    assert not pool.running
    assert _no_new_workers(before)


@pytest.mark.parametrize("kind", ["thread", "process"])
def test_ctrl_c_stops_the_workers(photos: list[Path], kind: str) -> None:
    import gc

    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        pytest.skip("this process was started with SIGINT ignored (a background job of a non-interactive shell)")
    loaded = [load_image(p) for p in photos] * 4
    before = _workers()
    gc.disable()  # a KeyboardInterrupt that lands inside a finaliser run by the collector is swallowed
    try:
        with pytest.raises(KeyboardInterrupt):
            with PerceptionPool(Settings(), workers=2, kind=kind) as pool:
                for _obs in pool.observe(loaded, task_images=1):
                    os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C in the terminal delivers
    finally:
        gc.enable()
    assert _no_new_workers(before)


def test_pool_rejects_bad_configuration() -> None:
    with pytest.raises(ConfigError, match="thread"):
        PerceptionPool(Settings(), kind="fibre")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="at least one"):
        PerceptionPool(Settings(), workers=0)


def test_detect_stream_equals_detect_objects(photos: list[Path]) -> None:
    frames = [load_image(p).image for p in photos]
    per = BuiltinPerceiver(Settings())
    with PerceptionPool(Settings(), workers=2) as pool:
        assert list(pool.detect(frames)) == [per.detect_objects(f) for f in frames]


def test_face_cascade_runs_where_the_person_signal_is_and_finds_the_close_up() -> None:
    """The astronaut's head and shoulders: the detector sees no person but its person heat map
    passes the gate, and the face is found; on the coffee cup the gate stays shut."""
    per = BuiltinPerceiver(Settings())
    close_up = Image.fromarray(data.astronaut()).crop((60, 0, 460, 380)).resize((640, 608))
    dets, signal = per.detector.detect_with_signal(close_up)
    assert signal.shape == (80,) and not any(o.label == "person" for o in dets)
    assert signal[PERSON] >= FACE_GATE
    assert [o.label for o in per.detect_objects(close_up)].count("face") == 1
    coffee = Image.fromarray(data.coffee())
    _, signal = per.detector.detect_with_signal(coffee)
    assert signal[PERSON] < FACE_GATE and "face" not in [o.label for o in per.detect_objects(coffee)]


def test_a_draft_decoded_photo_is_observed_in_its_original_pixels(tmp_path: Path) -> None:
    """A 2048-px JPEG decoded at 1/2 gives the same objects, boxes in the full image's pixels."""
    big = Image.fromarray(data.chelsea()).resize((2048, 1364), Image.Resampling.BICUBIC)
    p = tmp_path / "big.jpg"
    big.save(p, quality=92)
    full, small = load_image(p), load_image(p, draft_long_side=1000)
    assert small.image.size == (1024, 682) and (small.info.width, small.info.height) == (2048, 1364)
    per = BuiltinPerceiver(Settings())
    a, b = per.observe(full.image, full.info), per.observe(small.image, small.info)
    assert [o.label for o in a.objects] == [o.label for o in b.objects] and a.objects
    for x, y in zip(a.objects, b.objects):
        assert x.box.iou(y.box) > 0.9
        assert 0 <= y.box.x2 <= 2048 and 0 <= y.box.y2 <= 1364
    assert a.labels[0].name in {lab.name for lab in b.labels[:3]}  # chelsea is a near tie: tiger / Egyptian cat
    assert load_image_bytes(p.read_bytes(), draft_long_side=1000).info.sha256 == full.info.sha256


def test_a_killed_worker_process_fails_the_call_and_the_pool_recovers(photos: list[Path]) -> None:
    from oculi.core.errors import BackendError

    loaded = [load_image(p) for p in photos]
    before = _workers()
    with PerceptionPool(Settings(), workers=1, kind="process") as pool:
        (victim,) = _workers() - before
        victim.kill()
        with pytest.raises(BackendError, match="stopped unexpectedly"):
            list(pool.observe(loaded))
        assert len(list(pool.observe(loaded[:2]))) == 2  # fresh workers
    assert _no_new_workers(before)
