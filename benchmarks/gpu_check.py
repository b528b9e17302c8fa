"""Check the ``transformers`` (and ``diffusers``) backends on a GPU: ``python benchmarks/gpu_check.py``.

Builds tiny random-weight models from configs (tests/tiny_models.py: a CLIP, a LLaVA-style VLM, the
other VLM families users bring — Qwen2-VL, Qwen2.5-VL, Idefics3, SmolVLM, PaliGemma, BLIP — and a
Stable Diffusion pipeline), saves them to a temporary folder, and drives them through the real
backend load and inference path with ``device = "cuda"`` (``--device cpu`` runs the same on the
CPU, for comparison). Each step checks its result (shapes, normalisation, determinism, the device
the weights are on) and the script exits non-zero when one fails. Prints a Markdown table naming
the machine and the GPU. Needs torch with CUDA, transformers, and (optional) diffusers.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "src"), str(REPO), str(REPO / "benchmarks")]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda", help="cuda (default), cuda:1, or cpu")
    ap.add_argument("--dtype", default="auto", choices=["auto", "float32", "float16", "bfloat16"])
    args = ap.parse_args()

    import numpy as np
    import torch
    from PIL import Image

    from machine import machine
    from oculi.backends.base import ChatMessage, ChatOptions, ChatPart
    from oculi.backends.transformers_backend import TransformersBackend, TransformersOptions
    from oculi.config import Settings
    from tests.tiny_models import build_tiny_clip, build_tiny_llava, build_tiny_sd

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(f"torch {torch.__version__} sees no CUDA GPU; run with --device cpu, or on a machine with one", file=sys.stderr)
        return 2
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    rows: list[tuple[str, float, str, bool]] = []

    def step(name: str, fn: Callable[[], tuple[str, bool]]) -> None:
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        try:
            detail, ok = fn()
        except Exception as e:  # noqa: BLE001 - a check reports any failure
            detail, ok = f"{type(e).__name__}: {e}"[:160], False
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        rows.append((name, time.perf_counter() - t0, detail, ok))

    root = Path(tempfile.mkdtemp(prefix="oculi-gpu-check-"))
    settings = Settings(home=root / "home", read_config_files=False)
    clip_dir, vlm_dir = build_tiny_clip(root / "tiny-clip"), build_tiny_llava(root / "tiny-llava")
    opts: dict[str, Any] = {"backend": "transformers", "device": args.device, "dtype": args.dtype}
    clip = TransformersBackend("clip", TransformersOptions(path=str(clip_dir), **opts), settings)
    vlm = TransformersBackend("vlm", TransformersOptions(path=str(vlm_dir), max_new_tokens=8, **opts), settings)
    rng = np.random.default_rng(0)
    imgs = [Image.new("RGB", (48, 40), (220, 30, 30)), Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))]

    def on_device(b: Any) -> str:
        return str(next(b.model.parameters()).device)

    step("CLIP load", lambda: (f"weights on {(clip.load(), on_device(clip))[1]}, {clip.dtype}", on_device(clip).startswith(args.device.split(':')[0])))

    def embed() -> tuple[str, bool]:
        v = clip.embed_images(imgs * 8)  # [16, 16]
        t = clip.embed_texts(["a red cat", "a blue car"])
        ok = v.shape == (16, 16) and t.shape == (2, 16) and np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-2)
        return f"images {v.shape}, texts {t.shape}, unit norm", bool(ok)

    step("CLIP embed 16 images + 2 texts", embed)
    step("CLIP zero-shot classify", lambda: (lambda s: (", ".join(f"{c.label} {c.score:.2f}" for c in s),
                                                        abs(sum(c.score for c in s) - 1) < 1e-2))(clip.classify(imgs[0], ["cat", "dog", "car"])))
    step("VLM load", lambda: (f"weights on {(vlm.load(), on_device(vlm))[1]}, {vlm.dtype}", on_device(vlm).startswith(args.device.split(':')[0])))

    def caption() -> tuple[str, bool]:
        a, b = vlm.describe(imgs[0], None), vlm.describe(imgs[0], None)
        return f"{a!r} (deterministic: {a == b})", bool(a) and a == b

    step("VLM caption (greedy, 8 tokens)", caption)

    def chat() -> tuple[str, bool]:
        msgs = [ChatMessage("user", [ChatPart("image", image=imgs[0]), ChatPart("text", text="what colour is this ?")]),
                ChatMessage("assistant", [ChatPart("text", text="red")]),
                ChatMessage("user", [ChatPart("image", image=imgs[1]), ChatPart("image", image=imgs[0]), ChatPart("text", text="compare these")])]
        r = vlm.chat(msgs, ChatOptions(max_tokens=6))
        streamed = "".join(vlm.chat_stream(msgs, ChatOptions(max_tokens=6)))
        return f"{r.prompt_tokens} prompt tokens (3 images), {r.completion_tokens} new; stream equal: {streamed.strip() == r.text}", \
            r.completion_tokens == 6 and streamed.strip() == r.text

    step("VLM 3-image chat + stream", chat)

    from tests.tiny_models import VLM_BUILDERS

    for family in ("qwen2_vl", "qwen2_5_vl", "idefics3", "smolvlm", "paligemma", "blip"):
        def family_run(family: str = family) -> tuple[str, bool]:
            b = TransformersBackend(family, TransformersOptions(path=str(VLM_BUILDERS[family](root / family)), max_new_tokens=6,
                                                               **opts), settings)
            cap = b.describe(imgs[0], None)
            ans = b.answer(imgs[0], None, "what colour is this ?").answer
            r = b.chat([ChatMessage("user", [ChatPart("image", image=imgs[1]), ChatPart("text", text="compare these")])],
                       ChatOptions(max_tokens=4))
            return f"{cap!r} / {ans!r} / {r.text!r} on {on_device(b)}", bool(cap.strip() and ans.strip() and r.text.strip())

        step(f"{family}: caption, ask, chat", family_run)
    try:
        import diffusers  # noqa: F401

        from oculi.backends.diffusers_backend import DiffusersBackend, DiffusersOptions

        sd = DiffusersBackend("sd", DiffusersOptions(backend="diffusers", path=str(build_tiny_sd(root / "tiny-sd")),
                                                     device=args.device, steps=4), settings)

        def generate() -> tuple[str, bool]:
            a = sd.generate_image("a red bicycle", seed=1, width=32, height=32)[0]
            b = sd.generate_image("a red bicycle", seed=1, width=32, height=32)[0]
            same = np.array_equal(np.asarray(a), np.asarray(b))
            return f"{a.size}, same seed same pixels: {same}, pipeline on {sd.pipe.device}", a.size == (32, 32) and same

        step("diffusers text-to-image (4 steps)", generate)

        def edit() -> tuple[str, bool]:
            mask = Image.new("L", (64, 64), 0)
            mask.paste(255, (0, 0, 32, 64))  # repaint the left half
            out = np.asarray(sd.generate_image("a red bicycle", image=imgs[1], mask=mask, seed=1, strength=1.0)[0])
            kept = np.array_equal(out[:, 32:], np.asarray(imgs[1])[:, 32:])
            changed = not np.array_equal(out[:, :32], np.asarray(imgs[1])[:, :32])
            return f"inpainting on {sd.device}: right half kept: {kept}, left half changed: {changed}", kept and changed

        step("diffusers edit inside a mask (4 steps)", edit)
    except ImportError:
        rows.append(("diffusers text-to-image", 0.0, "diffusers not installed: skipped", True))

    import transformers

    print(f"\n**Machine:** {machine()}; GPU: {gpu}; torch {torch.__version__}, transformers {transformers.__version__}; "
          f"device={args.device}, dtype={args.dtype}\n")
    print("| step | seconds | result | ok |")
    print("|---|---:|---|---|")
    for name, secs, detail, ok in rows:
        print(f"| {name} | {secs:.2f} | {detail.replace('|', '/')} | {'yes' if ok else '**NO**'} |")
    return 0 if all(ok for *_, ok in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
