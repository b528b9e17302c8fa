"""What the backend seams cost: ``python benchmarks/bench_backends.py``.

On tiny random-weight models built from configs (tests/tiny_models.py), so the figures are the
overhead around a model rather than a model's own speed:

* a 3-image chat through the ``transformers`` backend in-process, and the same chat through the
  ``openai`` backend talking to ``oculi serve`` on loopback (that server running the same folder):
  the cost of the HTTP hop, PNG data: URLs and JSON;
* CLIP image embeddings at batch size 1 and 16 (``batch_size``).

Prints a Markdown table naming the machine.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "src"), str(REPO), str(REPO / "benchmarks")]


def _median_ms(fn, n: int) -> float:
    fn()  # warm
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main() -> None:
    import os

    import numpy as np
    from PIL import Image

    from machine import machine
    from oculi.backends.base import ChatMessage, ChatOptions, ChatPart
    from oculi.backends.openai_backend import OpenAIBackend, OpenAIOptions
    from oculi.backends.transformers_backend import TransformersBackend, TransformersOptions
    from oculi.config import Settings
    from oculi.engine import Engine
    from oculi.server.app import create_app
    from oculi.server.auth import KeyStore
    from oculi.server.config import ServerConfig
    from tests.serverutil import ServerThread
    from tests.tiny_models import build_tiny_clip, build_tiny_llava

    root = Path(tempfile.mkdtemp(prefix="oculi-bench-backends-"))
    vlm_dir, clip_dir = build_tiny_llava(root / "tiny-llava"), build_tiny_clip(root / "tiny-clip")
    settings = Settings(home=root / "home", read_config_files=False,
                        models={"vlm": {"backend": "transformers", "path": str(vlm_dir), "device": "cpu"}}, tasks={"chat": "vlm"})
    local = TransformersBackend("vlm", TransformersOptions(backend="transformers", path=str(vlm_dir), device="cpu"), settings)
    rng = np.random.default_rng(0)
    photo = Image.fromarray(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8))  # a 640x480 image: the data: URL is ~0.9 MB
    msgs = [ChatMessage("user", [ChatPart("image", image=photo), ChatPart("image", image=photo), ChatPart("image", image=photo),
                                 ChatPart("text", text="compare these")])]
    opts = ChatOptions(max_tokens=8)
    rows = []
    n = 15
    rows.append(("3-image chat, 8 tokens: transformers in-process", _median_ms(lambda: local.chat(msgs, opts), n)))
    key, _ = KeyStore(settings.home).create("read", name="bench")
    os.environ["OCULI_BENCH_KEY"] = key
    app = create_app(settings, Engine(settings), config=ServerConfig(rate_per_minute=0), warmup=False, start_jobs=False, store_factory=None)
    with ServerThread(app) as url:
        remote = OpenAIBackend("remote", OpenAIOptions(backend="openai", base_url=url + "/v1", model="vlm", api_key_env="OCULI_BENCH_KEY"),
                               settings)
        assert remote.chat(msgs, opts).text == local.chat(msgs, opts).text
        rows.append(("3-image chat, 8 tokens: openai backend → oculi serve (loopback)", _median_ms(lambda: remote.chat(msgs, opts), n)))
        rows.append(("same, streamed (to the last piece)", _median_ms(lambda: list(remote.chat_stream(msgs, opts)), n)))
    imgs = [photo] * 64
    for bs in (1, 16):
        clip = TransformersBackend("clip", TransformersOptions(backend="transformers", path=str(clip_dir), device="cpu", batch_size=bs), settings)
        ms = _median_ms(lambda: clip.embed_images(imgs), 3)
        rows.append((f"CLIP embed 64 images, batch_size {bs} (per image)", ms / 64))
    print(f"\n**Machine:** {machine()}; median of {n} runs (embeddings: of 3); tiny random-weight models\n")
    print("| what | ms |")
    print("|---|---:|")
    for what, ms in rows:
        print(f"| {what} | {ms:.1f} |")


if __name__ == "__main__":
    main()
