"""Search never waits behind image work: separate lanes, and image work at a lower OS priority."""

from __future__ import annotations

import sys
import threading
import time

import httpx
import pytest

from oculi.server.lanes import Lanes, lower_thread_priority, thread_nice
from tests.serverutil import ServerThread
from tests.unit.server.conftest import bearer, png_bytes

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread priority is Linux's")


@linux_only
def test_lowering_a_threads_priority_leaves_the_others_alone():
    base = thread_nice()
    got: list[int] = []
    t = threading.Thread(target=lambda: got.append(lower_thread_priority(5)))
    t.start()
    t.join()
    assert got == [min(19, base + 5)]
    assert thread_nice() == base


@linux_only
def test_lanes_run_at_their_priorities():
    import asyncio

    lanes = Lanes(model_workers=1, light_workers=1, model_nice=7)
    try:
        async def both() -> tuple[int, int]:
            from oculi.server.lanes import Lane

            return await lanes.run(Lane.MODEL, thread_nice), await lanes.run(Lane.LIGHT, thread_nice)

        model, light = asyncio.run(both())
        assert light == thread_nice() and model == min(19, light + 7)
    finally:
        lanes.shutdown()


def _wait_job(url: str, h: dict, job_id: str) -> dict:
    for _ in range(600):
        j = httpx.get(f"{url}/api/v1/jobs/{job_id}", headers=h).json()
        if j["state"] in ("done", "failed", "cancelled"):
            return j
        time.sleep(0.05)
    raise AssertionError("job did not finish")


@linux_only
def test_search_answers_while_every_image_worker_is_busy(settings, fake_engine, keys):
    """One image worker, stuck on a caption with two more queued: a text search still answers,
    and the image work ran at a lower priority than the search (the ingestion worker too)."""
    pytest.importorskip("lancedb")
    from oculi.server.app import create_app
    from oculi.server.config import ServerConfig

    app = create_app(settings, fake_engine, config=ServerConfig(rate_per_minute=0, inference_concurrency=1, model_nice=5),
                     store_factory="default")
    with ServerThread(app, ready_path="/readyz") as url:
        h = bearer(keys["write"])
        del fake_engine.threads[:]  # ready: the warm-up's calls are done
        r = httpx.post(f"{url}/api/v1/collections/photos/images", files=[("images", ("a.png", png_bytes(), "image/png"))], headers=h)
        assert _wait_job(url, h, r.json()["id"])["done"] == 1
        ingest = [(n, name) for call, n, name in fake_engine.threads]
        del fake_engine.threads[:]

        release = threading.Event()
        real = fake_engine.caption

        def stuck(*a, **k):
            release.wait(30)
            return real(*a, **k)

        fake_engine.caption = stuck
        results: list[int] = []
        callers = [threading.Thread(target=lambda: results.append(httpx.post(
            f"{url}/api/v1/caption", files={"image": ("a.png", png_bytes(), "image/png")}, headers=h, timeout=60).status_code))
            for _ in range(3)]
        for t in callers:
            t.start()
        try:
            r = httpx.post(f"{url}/api/v1/collections/photos/search", json={"text": "brown dog"}, headers=h, timeout=30)
            assert r.status_code == 200 and r.json()["results"], r.text
            r = httpx.post(f"{url}/v1/embeddings", json={"model": "oculi-text-embed", "input": "a dog"}, headers=h, timeout=30)
            assert r.status_code == 200
            assert not release.is_set() and results == []  # the captions were all still waiting
        finally:
            release.set()
            for t in callers:
                t.join(30)
        assert results == [200, 200, 200]

    base, low = thread_nice(), min(19, thread_nice() + 5)
    # ingestion (perception and the captions' text embeddings) ran in the job worker, lowered
    assert ingest and {n for n, _ in ingest} == {low} and {name for _, name in ingest} == {"oculi-jobs"}
    by_call = {call: {(n, name.split("_")[0]) for _, n, name in [(c, n, m) for c, n, m in fake_engine.threads if c == call]}
               for call in ("embed_texts", "observe")}
    assert by_call["embed_texts"] == {(base, "oculi-light")}  # the search and the embeddings
    assert by_call["observe"] == {(low, "oculi-model")}  # the captions
